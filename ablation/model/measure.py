"""The efficiency figures of a trained detector: inference speed, training memory, FLOPs and parameters.

Speed is measured as mmdet's benchmark tool does (tools/analysis_tools/benchmark.py): batch 1, a few warm-up
images first, then each timed image's ``test_step`` alone, between CUDA synchronisations on a GPU; fps is
timed images over their summed time. FLOPs and parameters come from mmengine's complexity analysis (as mmdet's
get_flops.py), on one image of the sweep's test size.
"""

from __future__ import annotations

import itertools
import platform
import resource
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

import torch
from mmengine.hooks import Hook
from torch import nn

__all__ = ["PeakCudaMemory", "complexity", "device_name", "inference_fps", "peak_rss_mb"]

MB = 1024 * 1024


class PeakCudaMemory(Hook):  # type: ignore[misc]
    """The peak of ``torch.cuda.max_memory_allocated`` over training, in MB.

    mmengine's logger reads and resets the peak at every log line, so this hook, registered above it, reads
    it first after every iteration: its maximum is the maximum of the figures mmdet logs as ``memory``.
    """

    def __init__(self) -> None:
        self.peak_mb = 0.0

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if torch.cuda.is_available():
            self.peak_mb = max(self.peak_mb, torch.cuda.max_memory_allocated() / MB)


def peak_rss_mb() -> float:
    """This process' peak resident set size so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_model()} ({torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference_fps(
    model: nn.Module, batches: Iterable[Any], warmup: int, images: int, device: torch.device
) -> float:
    """Images per second of ``model.test_step`` on batches of one image, after ``warmup`` untimed ones.

    The batches are cycled when there are fewer than ``warmup + images``.
    """
    model.eval()
    elapsed = 0.0
    with torch.no_grad():
        for index, batch in enumerate(itertools.islice(itertools.cycle(batches), warmup + images)):
            _synchronize(device)
            start = time.perf_counter()
            model.test_step(batch)  # type: ignore[operator]
            _synchronize(device)
            if index >= warmup:
                elapsed += time.perf_counter() - start
    return images / elapsed


# mmcv's deformable convolutions reach the tracer as Python ops it has no counter for; counted here as the
# convolution they compute (multiply-adds of the kernel at each output position, the sampling not counted).
_DEFORMABLE = ("prim::PythonOp.DeformConv2dFunction", "prim::PythonOp.ModulatedDeformConv2dFunction")


def _deformable_conv_flops(inputs: list[Any], outputs: list[Any]) -> int:
    from mmengine.analysis.jit_handles import conv_flop_count, get_shape

    x, weight = get_shape(inputs[0]), get_shape(inputs[2])
    return int(conv_flop_count(x, weight, get_shape(outputs[0])))


def complexity(model: nn.Module, height: int, width: int, device: torch.device) -> tuple[float, int]:
    """FLOPs (multiply-adds, as mmengine and fvcore count them) and parameters of the detector on one
    ``height`` x ``width`` image, padded as its preprocessor pads, from a traced forward pass."""
    from mmdet.structures import DetDataSample
    from mmengine.analysis import FlopAnalyzer, parameter_count

    preprocessor = getattr(model, "data_preprocessor", None)
    pad = int(getattr(preprocessor, "pad_size_divisor", 1) or 1)
    height, width = -(-height // pad) * pad, -(-width // pad) * pad
    shape = (height, width)
    meta = dict(
        img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape, scale_factor=(1.0, 1.0)
    )
    inputs = torch.zeros(1, 3, height, width, device=device)
    model.eval()
    original = model.forward
    model.forward = partial(original, data_samples=[DetDataSample(metainfo=meta)], mode="tensor")
    try:
        analyzer = FlopAnalyzer(model, (inputs,))
        analyzer.set_op_handle(**{op: _deformable_conv_flops for op in _DEFORMABLE})
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        with torch.no_grad():
            flops = analyzer.total()
    finally:
        del model.forward
    return float(flops), int(parameter_count(model)[""])
