"""Forward+backward time of a deformable 3x3 convolution on CPU: mmcv's op, ablation's, and the plain conv.

    .venv/bin/python bench/dcn.py [--repeat 5] [--threads 2]

At the 3x3 convolutions of ResNet-50 stages 3 to 5 (the ones DCN replaces in the dconv-c3-c5 configs) of a
192x128 image (the smoke sweep's scale), batch 2, of stage 3 at 800x1333 (the model zoo's), and of the
study's slim R-50 (a quarter of the channels) at its batch of 8 (the stride-1 blocks), it times three
layers with the same weights, learnt-looking offsets (not mmcv's zero initialisation) and input:

- mmcv: ``mmcv.ops.DeformConv2dPack`` (2.1.0, its compiled CPU op);
- ablation: ``ablation.model.deform.DeformConv2dPack`` (the same layer in torch ops on CPU);
- conv: the plain ``nn.Conv2d`` DCN replaces (what the convolution costs without the sampling).

Each timing is the median of --repeat forward+backward passes after one warm-up, the three layers
alternating in one process so that the machine's load moves them alike. It prints the milliseconds and the
ratios mmcv/ablation (above 1: ablation is faster) and ablation/conv (the cost of the sampling), and the
largest difference between the outputs of mmcv and ablation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from mmcv.ops import DeformConv2dPack as MmcvDeformConv2dPack
from torch import nn

from ablation.model.deform import DeformConv2dPack

# name: (batch, channels, height, width, stride) at the 3x3 conv's input
SHAPES = {
    "192x128 stage 3": (2, 128, 32, 48, 2),
    "192x128 stage 4": (2, 256, 16, 24, 2),
    "192x128 stage 5": (2, 512, 8, 12, 2),
    "192x128 stage 4 (stride 1)": (2, 256, 8, 12, 1),
    "800x1333 stage 3": (2, 128, 100, 168, 1),
    # the study's slim R-50 (a quarter of the channels), batch 8: each stage's stride-1 blocks
    "study stage 3 (batch 8)": (8, 32, 16, 24, 1),
    "study stage 4 (batch 8)": (8, 64, 8, 12, 1),
    "study stage 5 (batch 8)": (8, 128, 4, 6, 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeat}")
    columns = ("mmcv ms", "ablation ms", "conv ms", "mmcv/abl", "abl/conv", "max diff")
    header = f"{'shape':28} " + " ".join(f"{name:>{max(9, len(name))}}" for name in columns)
    print(header)
    print("-" * len(header))
    for name, (n, c, h, w, stride) in SHAPES.items():
        torch.manual_seed(0)
        mmcv = MmcvDeformConv2dPack(c, c, 3, stride=stride, padding=1)
        with torch.no_grad():
            mmcv.conv_offset.weight.normal_(0, 0.05)
        ours = DeformConv2dPack(c, c, 3, stride=stride, padding=1)
        ours.load_state_dict(mmcv.state_dict())
        conv = nn.Conv2d(c, c, 3, stride=stride, padding=1, bias=False)
        x = torch.randn(n, c, h, w, requires_grad=True)
        layers = {"mmcv": mmcv, "ablation": ours, "conv": conv}
        times: dict[str, list[float]] = {key: [] for key in layers}
        for index in range(args.repeat + 1):
            for key, layer in layers.items():
                start = time.perf_counter()
                layer(x).sum().backward()
                if index:
                    times[key].append(time.perf_counter() - start)
        with torch.no_grad():
            difference = (mmcv(x) - ours(x)).abs().max().item()
        ms = {key: 1000 * statistics.median(values) for key, values in times.items()}
        print(
            f"{name:28} {ms['mmcv']:9.1f} {ms['ablation']:12.1f} {ms['conv']:9.1f} "
            f"{ms['mmcv'] / ms['ablation']:8.1f}x {ms['ablation'] / ms['conv']:8.1f}x {difference:9.1e}"
        )


if __name__ == "__main__":
    main()
