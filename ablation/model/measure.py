"""The efficiency figures of a trained detector: inference speed, training memory, FLOPs and parameters.

Speed is measured as mmdet's benchmark tool does (tools/analysis_tools/benchmark.py): batch 1, a few warm-up
images first, then each timed image's ``test_step`` alone, between CUDA synchronisations on a GPU; fps is
timed images over their summed time. FLOPs and parameters come from mmengine's complexity analysis (as mmdet's
get_flops.py), on one image of the sweep's test size.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from mmengine.hooks import Hook
from torch import nn

__all__ = [
    "PeakCudaMemory",
    "attention_flops",
    "complexity",
    "device_name",
    "inference_fps",
    "peak_rss_mb",
    "tensor_peak",
]

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


def tensor_peak(step: Callable[[], object]) -> tuple[int, int]:
    """Peak bytes of tensors held while ``step`` runs, above those held before it, and its largest single
    allocation, from torch's profiler (every allocation and free of its CPU and CUDA allocators is a
    '[memory]' event): a count of tensors only, the same on every run, unlike the resident set size.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(path))
        trace = json.loads(path.read_text(encoding="utf-8"))["traceEvents"]
    events = [e["args"] for e in sorted(trace, key=lambda e: e.get("ts", 0)) if e.get("name") == "[memory]"]
    if not events:
        return 0, 0
    before = events[0]["Total Allocated"] - events[0]["Bytes"]  # held when profiling began
    return max(e["Total Allocated"] for e in events) - before, max(e["Bytes"] for e in events)


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


def _is_attention(module: nn.Module) -> bool:
    """Whether ``module`` is a generalized attention block: ours, or mmcv's (they share their attributes)."""
    from mmcv.cnn.bricks.generalized_attention import GeneralizedAttention as MmcvAttention

    from ablation.model.attention import GeneralizedAttention

    return isinstance(module, GeneralizedAttention | MmcvAttention)


def attention_flops(module: nn.Module, shape: tuple[int, ...]) -> int:
    """The multiply-adds of one generalized attention block on an input of ``shape`` (n, c, h, w): those of
    the block's math, the same for every implementation of it (the fused kernel's padded head size and
    augmented keys are how it computes, not what).

    With the query map h x w (strided by q_stride), the key map h_kv x w_kv (by kv_stride), Q = h w queries,
    K = h_kv w_kv keys, H heads of d channels (C = H d), E the position embedding size: the 1x1 convolutions
    (value and, where the code uses them, query and key: n K C C, n Q C C, n K C C), the position features'
    linear maps (w w_kv + h h_kv) (E/2) C, the energy terms (query-key or key content: n H Q K d, or n H K d
    for key content alone, which no query changes; query & position: n H Q (w_kv + h_kv) d, position alone:
    H (w w_kv + h h_kv) d), the attention-weighted sum of the values (n H Q K d) and the output projection
    (n Q C C), and with a query stride the bilinear resize back to the input (4 per value, as mmengine
    counts an upsampling). A code no query changes (0000, 0010) without a window attends once for every
    query: Q is 1 in the sum and the projection, and nothing is resized. Softmax, masks and additions are
    not multiply-adds."""
    settings: dict[str, Any] = vars(module)  # plain attributes, as both modules keep them
    qk, pos, key_only, pos_only = (bool(b) for b in settings["attention_type"])
    n, channels, height, width = shape
    heads, d = int(settings["num_heads"]), int(settings["qk_embed_dim"])
    inner = heads * d
    q_stride, kv_stride = int(settings["q_stride"]), int(settings["kv_stride"])
    h, w = -(-height // q_stride), -(-width // q_stride)
    h_kv, w_kv = -(-height // kv_stride), -(-width // kv_stride)
    queries, keys = h * w, h_kv * w_kv
    attending = queries if (qk or pos or pos_only or int(settings["spatial_range"]) >= 0) else 1
    flops = n * keys * channels * inner  # value
    flops += n * queries * channels * inner if (qk or pos) else 0  # query
    flops += n * keys * channels * inner if (qk or key_only) else 0  # key
    if pos or pos_only:
        flops += (w * w_kv + h * h_kv) * (int(settings["position_embedding_dim"]) // 2) * inner
    if qk:
        flops += n * heads * queries * keys * d
    elif key_only:
        flops += n * heads * keys * d
    if pos:
        flops += n * heads * queries * (w_kv + h_kv) * d
    elif pos_only:
        flops += heads * (w * w_kv + h * h_kv) * d
    flops += n * heads * attending * keys * d  # attention x values
    flops += n * attending * inner * channels  # output projection
    if attending > 1 and (h, w) != (height, width):  # resized back to the input: bilinear, 4 per value
        flops += 4 * n * channels * height * width
    return flops


@contextlib.contextmanager
def _every_proposal(model: nn.Module) -> Iterator[None]:
    """The RPN keeps its ``max_per_img`` best proposals, no NMS in between (IoU threshold 1.0), while the
    model is traced: the RoI head then counts the same number of proposals whatever the weights, where NMS
    on the weights at hand would keep some other number (641 or 761 of an untrained 1111 detector on one
    128x192 image, by the seed: 12% of its FLOPs)."""
    head = getattr(model, "rpn_head", None)
    settings = getattr(head, "test_cfg", None)
    if head is None or not isinstance(settings, dict) or "nms" not in settings:
        yield
        return
    head.test_cfg = copy.deepcopy(settings)
    head.test_cfg["nms"]["iou_threshold"] = 1.0
    try:
        yield
    finally:
        head.test_cfg = settings


def complexity(model: nn.Module, height: int, width: int, device: torch.device) -> tuple[float, int]:
    """FLOPs (multiply-adds, as mmengine and fvcore count them) and parameters of the detector on one
    ``height`` x ``width`` image, padded as its preprocessor pads, from a traced forward pass; each
    generalized attention block counted by :func:`attention_flops` (on the input it met in the trace), not
    by what its implementation's kernels trace as, so every implementation of a cell counts alike. A
    two-stage detector's RoI head is counted on the RPN's ``max_per_img`` proposals (:func:`_every_proposal`),
    so the figure is the architecture's, not the trained weights'."""
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
    blocks = {name: m for name, m in model.named_modules() if _is_attention(m)}
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str, _: nn.Module, args: tuple[Any, ...]) -> None:  # None: the input as it is
        seen.setdefault(name, tuple(int(size) for size in args[0].shape))  # traced: sizes are tensors

    hooks = [m.register_forward_pre_hook(partial(record, name)) for name, m in blocks.items()]
    try:
        analyzer = FlopAnalyzer(model, (inputs,))
        analyzer.set_op_handle(**{op: _deformable_conv_flops for op in _DEFORMABLE})
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        with torch.no_grad(), _every_proposal(model):
            flops = analyzer.total()
            traced = analyzer.by_module()
    finally:
        del model.forward
        for hook in hooks:
            hook.remove()
    for name, seen_shape in seen.items():
        flops += attention_flops(blocks[name], seen_shape) - traced[name]
    return float(flops), int(parameter_count(model)[""])
