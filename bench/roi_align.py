"""Forward+backward time of RoIAlign on CPU over a Faster R-CNN's FPN levels: mmcv's op and ablation's.

    .venv/bin/python bench/roi_align.py [--repeat 5] [--threads 1]

1024 RoIs are drawn once per scale (sizes log-uniform from 8 pixels to the image's short side, aspect ratios
1:3 to 3:1, centres uniform, clipped to the image, spread evenly over the images) and split over the four FPN
levels as mmdet's ``SingleRoIExtractor`` splits them (by size); each level's RoIAlign (output 7x7) pools its
RoIs from its map (a level without RoIs is skipped, as the extractor skips it), at two scales:

- study: the study sweep's detector, 8 images of 192x128, 64 channels, sampling_ratio 2;
- coco-1x: the model zoo's, 2 images of 800x1333 (padded to 800x1344), 256 channels, sampling_ratio 0
  (adaptive: ceil(RoI size / 7) samples per bin and axis).

The two layers have the same arguments: mmcv's ``mmcv.ops.RoIAlign`` (2.1.0, its compiled CPU op) and
``ablation.model.roi_align.RoIAlign``. Each timing is the median of --repeat forward and backward passes (the
map's gradient, from a fixed random output gradient) after one warm-up, the two layers alternating in one
process so that the machine's load moves them alike. It prints the milliseconds per level and for the whole
extraction (the sum of the levels' medians), their ratio mmcv/ablation (above 1: ablation is faster) and the
largest differences between the two outputs and between the two gradients. --threads is 1 by default, as
the study runs each cell; with more, time on an idle machine: ablation's layer is a hundred torch ops, and
each waits for a thread that another process keeps off its core.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from mmcv.ops import RoIAlign as MmcvRoIAlign
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

from ablation.model.roi_align import RoIAlign

STRIDES = (4, 8, 16, 32)
ROIS = 1024
# name: (images, channels, height, width, sampling_ratio), the batch as padded to a multiple of 32
SHAPES = {
    "study": (8, 64, 128, 192, 2),
    "coco-1x": (2, 256, 800, 1344, 0),
}


def rois(images: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """ROIS boxes as (image, x1, y1, x2, y2)."""
    largest = float(torch.tensor(float(min(height, width))).log())
    size = torch.exp(torch.empty(ROIS).uniform_(2.0, largest, generator=generator))
    aspect = torch.exp(torch.empty(ROIS).uniform_(-0.55, 0.55, generator=generator))  # sqrt(w / h)
    w, h = size * aspect, size / aspect
    cx, cy = torch.rand(ROIS, generator=generator) * width, torch.rand(ROIS, generator=generator) * height
    x1, x2 = (cx - w / 2).clamp(0, width), (cx + w / 2).clamp(0, width)
    y1, y2 = (cy - h / 2).clamp(0, height), (cy + h / 2).clamp(0, height)
    image = torch.arange(ROIS) % images
    return torch.stack((image.float(), x1, y1, x2, y2), 1)


def time_level(
    layers: dict[str, torch.nn.Module], x: torch.Tensor, boxes: torch.Tensor, repeat: int
) -> tuple[dict[str, float], float, float]:
    """The median forward+backward ms of each layer, and the largest output and gradient differences."""
    grad = torch.randn(len(boxes), *x.shape[1:2], 7, 7, generator=torch.Generator().manual_seed(1))
    times: dict[str, list[float]] = {key: [] for key in layers}
    results = {}
    for index in range(repeat + 1):
        for key, layer in layers.items():
            x.grad = None
            start = time.perf_counter()
            out = layer(x, boxes)
            out.backward(grad)
            if index:
                times[key].append(time.perf_counter() - start)
            results[key] = out.detach(), x.grad
    (out_mmcv, grad_mmcv), (out_ours, grad_ours) = results["mmcv"], results["ablation"]
    assert grad_mmcv is not None and grad_ours is not None
    return (
        {key: 1000 * statistics.median(values) for key, values in times.items()},
        (out_mmcv - out_ours).abs().max().item(),
        (grad_mmcv - grad_ours).abs().max().item(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)  # as the study runs: one thread per cell
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeat}, {ROIS} RoIs")
    columns = ("RoIs", "mmcv ms", "ablation ms", "mmcv/abl", "out diff", "grad diff")
    header = f"{'scale, level: map':32} " + " ".join(f"{name:>{max(9, len(name))}}" for name in columns)
    print(header)
    print("-" * len(header))
    for name, (n, c, height, width, sampling_ratio) in SHAPES.items():
        generator = torch.Generator().manual_seed(0)
        boxes = rois(n, height, width, generator)
        extractor = SingleRoIExtractor(
            roi_layer=dict(type="RoIAlign", output_size=7), out_channels=c, featmap_strides=list(STRIDES)
        )
        levels = extractor.map_roi_levels(boxes, len(STRIDES))
        total = {"mmcv": 0.0, "ablation": 0.0}
        for level, stride in enumerate(STRIDES):
            x = torch.randn(n, c, height // stride, width // stride, generator=generator).requires_grad_()
            layers = {
                "mmcv": MmcvRoIAlign(7, 1 / stride, sampling_ratio),
                "ablation": RoIAlign(7, 1 / stride, sampling_ratio),
            }
            chosen = boxes[levels == level]
            if not len(chosen):  # mmdet's extractor calls no layer then
                continue
            ms, out_diff, grad_diff = time_level(layers, x, chosen, args.repeat)
            for key in total:
                total[key] += ms[key]
            where = f"{name}, {level}: {n}x{c}x{height // stride}x{width // stride}"
            print(
                f"{where:32} {len(chosen):9d} {ms['mmcv']:9.1f} {ms['ablation']:11.1f} "
                f"{ms['mmcv'] / ms['ablation']:8.1f}x {out_diff:9.1e} {grad_diff:9.1e}"
            )
        print(
            f"{name + ', all levels':32} {ROIS:9d} {total['mmcv']:9.1f} {total['ablation']:11.1f} "
            f"{total['mmcv'] / total['ablation']:8.1f}x"
        )


if __name__ == "__main__":
    main()
