"""Time and peak memory of one training step of a sweep's detector, for a few attention cells.

    .venv/bin/python bench/detector.py [--sweep coco-1x] [--codes 0000,0010,1111]
        [--implementations reference,sdpa] [--repeat 2] [--steps 2] [--threads 2] [--batch N] [--dcn]
        [--device cpu|cuda] [--profile]

For each configuration (a code, and for a code whose attention depends on the query an implementation of
``ablation.model.attention.GeneralizedAttention``: 0000 has no attention block, and 0010 with global attention
takes the same one-query shortcut in both implementations, so each runs once) it builds the real mmdet
detector from the cell's config as ``ablation plan`` renders it (the sweep's [model], [schedule] and
[overrides]; no pretrained weights: initialised from scratch) and its optimizer (the config's optim_wrapper,
at the learning rate of the first warm-up iteration). The input is a batch of synthetic images of the
sweep's train size (the train pipeline's largest Resize scale, landscape: 800x1333 for coco-1x), --batch of
them (default: the sweep's images_per_gpu), uniform noise, each with a few random ground-truth boxes. A
step is ``model.train_step``: data preprocessor, forward with the losses, backward, optimizer step, as
mmengine's Runner runs one iteration.

Every measurement runs in its own fresh process (this script with a hidden flag), --repeat processes per
configuration, interleaved (A, B, C, D, A, B, ...), so that a slow spell of the machine does not fall on one
configuration only. Each process sets --threads torch threads, builds the detector, runs one warm-up step
and then --steps timed ones:

- step s: the median over every timed step of every process of that configuration;
- peak MB: the median over the processes of the peak during the steps (warm-up included) above the
  process's level just before the first step: on CPU the resident set size (the kernel's high-water mark,
  reset to the current level before the first step; ``ru_maxrss`` where it cannot be reset), so it also
  counts what the allocator keeps and the library code the first step pages in; on CUDA
  ``torch.cuda.max_memory_allocated``.

The table gives both with their ratios to the 0010 cell, and which attention each process ran (the
implementation of its blocks and, for sdpa, the path each block took (``GeneralizedAttention.sdpa_path`` at
the input it saw), the SDPA kernels the first block's forward+backward runs) with how many threads.

--profile instead runs one process per configuration that profiles one step after the warm-up
(``torch.profiler`` with shapes and memory) and hooks the attention blocks, and prints where the time and
memory of the blocks go: forward and backward time of the blocks, the tensors they save for backward (by
line of ablation/model/attention.py), the ops with the most self time and allocations inside them, and the
allocated memory at the step's peak by category (torch's memory profiler).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: bench/ is on the path, the checkout is not
    sys.path.insert(0, str(ROOT))

from ablation.model.modules import ATTENTION_IMPLEMENTATIONS  # noqa: E402
from bench.attention import ratio, sdpa_kernels  # noqa: E402

ALL_CODES = [f"{i:04b}" for i in range(16)]
BASELINE = "0010"  # the ratios' denominator: the cheapest attention cell
BOXES = 5  # synthetic ground-truth boxes per image
MB = 2**20
ATTENTION_SOURCES = [ROOT / "ablation" / "model" / name for name in ("attention.py", "attention_kernels.py")]


@dataclass(frozen=True)
class Configuration:
    code: str
    implementation: str  # the requested one; "-" for 0000 (no attention block)

    @property
    def label(self) -> str:
        return self.code if self.implementation == "-" else f"{self.code} {self.implementation}"


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sweep", default="coco-1x", help="sweep name or .toml path (%(default)s)")
    parser.add_argument("--codes", default="0000,0010,1111", help='comma-separated, or "all" (%(default)s)')
    parser.add_argument("--implementations", default="reference,sdpa", help="comma-separated (%(default)s)")
    parser.add_argument("--dcn", action="store_true", help="the cells with DCN on (default: off)")
    parser.add_argument("--repeat", type=int, default=2, help="processes per configuration (%(default)s)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per process, after a warm-up")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (%(default)s)")
    parser.add_argument("--batch", type=int, help="images per step (default: the sweep's images_per_gpu)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--profile", action="store_true", help="profile one step of each instead")
    parser.add_argument("--measure", nargs=2, metavar=("CODE", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.codes = ALL_CODES if args.codes == "all" else [c.strip() for c in args.codes.split(",") if c.strip()]
    bad = [c for c in args.codes if c not in ALL_CODES]
    if bad:
        parser.error(f"bad codes {bad}: each is 4 characters of 0 and 1, or 'all'")
    args.implementations = [i.strip() for i in args.implementations.split(",") if i.strip()]
    wrong = [i for i in args.implementations if i not in ATTENTION_IMPLEMENTATIONS]
    if wrong or not args.implementations:
        parser.error(f"bad implementations {wrong}: each one of {', '.join(ATTENTION_IMPLEMENTATIONS)}")
    if args.repeat < 1 or args.steps < 1 or args.threads < 1 or (args.batch is not None and args.batch < 1):
        parser.error("--repeat, --steps, --threads and --batch are at least 1")
    return args


def query_independent(code: str, spatial_range: int | None) -> bool:
    """Whether the code's attention is alike for every query (as the module decides its one-query
    shortcut): bits 1, 2 and 4 clear, and global attention."""
    return code[0] == code[1] == code[3] == "0" and (spatial_range is None or spatial_range < 0)


def configurations(args: argparse.Namespace) -> list[Configuration]:
    from ablation.grid.sweep import load_sweep

    spatial_range = load_sweep(args.sweep).model.attention.spatial_range
    found: list[Configuration] = []
    for code in args.codes:
        if code == "0000":
            found.append(Configuration(code, "-"))
        elif query_independent(code, spatial_range):  # both implementations run the same shortcut
            found.append(Configuration(code, args.implementations[0]))
        else:
            found += [Configuration(code, implementation) for implementation in args.implementations]
    return found


# ---- the child: build the detector, run steps ------------------------------------------------------------


def load_config(sweep_name: str, code: str, implementation: str, dcn: bool) -> Any:
    """The mmengine Config of the cell as ``ablation plan`` renders it, with the implementation set and no
    pretrained weights (nothing can be downloaded)."""
    import dataclasses

    from mmengine.config import Config

    from ablation.grid.axes import apply
    from ablation.grid.cells import Selection, select
    from ablation.grid.render import render
    from ablation.grid.sweep import load_sweep
    from ablation.model.codes import AttentionCode

    sweep = load_sweep(sweep_name)
    changes: dict[str, Any] = {"model.pretrained": False}
    if implementation != "-":
        changes["model.attention.implementation"] = implementation
    sweep = dataclasses.replace(sweep, settings=apply(sweep.settings, changes))
    cell = select(sweep.cells, Selection(codes=(AttentionCode(code),), dcn=dcn), sweep.axes)[0]
    rendered = render(sweep, cell)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{rendered.name}.py"
        path.write_text(rendered.text(sweep), encoding="utf-8")
        return Config.fromfile(str(path))


def train_size(cfg: Any) -> tuple[int, int]:
    """(height, width) of a landscape image at the largest scale of the train pipeline's resizes."""
    pipeline = cfg.train_dataloader.dataset.get("pipeline") or cfg.get("train_pipeline") or []
    scales: list[tuple[int, int]] = []
    for step in pipeline:
        if step.get("type") in ("Resize", "RandomResize", "RandomChoiceResize"):
            given = step.get("scale", step.get("scales"))
            given = [given] if given and isinstance(given[0], int) else list(given or [])
            scales += [(min(s), max(s)) for s in given]
    if not scales:
        return 800, 1333  # mmdet's standard
    return max(s[0] for s in scales), max(s[1] for s in scales)


def synthetic_batch(cfg: Any, size: tuple[int, int], batch: int) -> dict[str, Any]:
    """What the train dataloader would give: uint8 images and data samples with a few gt boxes."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    height, width = size
    classes = cfg.model.roi_head.bbox_head.num_classes
    generator = torch.Generator().manual_seed(0)
    images, samples = [], []
    for index in range(batch):
        images.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator))
        corner = torch.rand(BOXES, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
        extent = 32 + torch.rand(BOXES, 2, generator=generator) * torch.tensor([width, height]) * 0.3
        boxes = torch.cat([corner, corner + extent], dim=1)
        sample = DetDataSample(
            metainfo=dict(img_id=index, img_shape=size, ori_shape=size, scale_factor=(1.0, 1.0), flip=False)
        )
        labels = torch.randint(0, classes, (BOXES,), generator=generator)
        sample.gt_instances = InstanceData(bboxes=boxes, labels=labels)
        samples.append(sample)
    return dict(inputs=images, data_samples=samples)


def first_lr_factor(cfg: Any) -> float:
    """The learning rate factor of the first iteration: the start of a LinearLR warm-up, else 1."""
    for scheduler in cfg.get("param_scheduler") or []:
        if scheduler.get("type") == "LinearLR" and scheduler.get("begin", 0) == 0:
            return float(scheduler.get("start_factor", 1.0 / 3))
    return 1.0


def build(args: argparse.Namespace, code: str, implementation: str) -> tuple[Any, Any, dict[str, Any], Any]:
    """The detector, its optimizer wrapper, a synthetic batch and the config, all on args.device."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.optim import build_optim_wrapper

    register_all_modules(init_default_scope=True)
    cfg = load_config(args.sweep, code, implementation, args.dcn)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(args.device).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    for group in optim_wrapper.optimizer.param_groups:
        group["lr"] *= first_lr_factor(cfg)
    batch = args.batch or cfg.train_dataloader.batch_size
    return model, optim_wrapper, synthetic_batch(cfg, train_size(cfg), batch), cfg


def attention_blocks(model: Any) -> list[Any]:
    from mmcv.cnn.bricks import GeneralizedAttention as MmcvAttention

    from ablation.model.attention import GeneralizedAttention

    return [m for m in model.modules() if isinstance(m, GeneralizedAttention | MmcvAttention)]


def attention_ran(model: Any, inputs: dict[Any, tuple[int, ...]]) -> tuple[str, list[str]]:
    """What the blocks are and, from the input shape each block saw (``inputs``), the path each sdpa block
    took ('sdpa x9: chunked x6, materialised x3'), and the SDPA kernels the first block's forward+backward
    runs."""
    blocks = attention_blocks(model)
    if not blocks:
        return "none", []
    kinds: dict[str, int] = defaultdict(int)
    paths: dict[str, int] = defaultdict(int)
    for block in blocks:
        kind = getattr(block, "implementation", "mmcv")
        kinds[kind] += 1
        if kind == "sdpa" and block in inputs:
            paths[block.sdpa_path(inputs[block], next(block.parameters()).device.type)] += 1
    described = ", ".join(f"{kind} x{count}" for kind, count in kinds.items())
    if paths:
        described += ": " + ", ".join(f"{path} x{count}" for path, count in paths.items())
    if not inputs:
        return described, []
    import torch

    x = torch.randn(inputs[blocks[0]], device=next(model.parameters()).device, requires_grad=True)
    return described, sdpa_kernels(blocks[0], x)


def input_shapes(blocks: list[Any]) -> tuple[dict[Any, tuple[int, ...]], list[Any]]:
    """The input shape each block sees in its first forward pass (filled as the model runs), and the hooks'
    handles to remove."""
    shapes: dict[Any, tuple[int, ...]] = {}

    def seen(block: Any, x: tuple[Any, ...]) -> None:
        shapes.setdefault(block, tuple(x[0].shape))

    return shapes, [block.register_forward_pre_hook(seen) for block in blocks]


def status_kb(field: str) -> int:
    """A field of /proc/self/status (VmRSS, VmHWM) in KB; 0 where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) to the current RSS; False where it cannot be."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return status_kb("VmHWM") > 0


class PeakMemory:
    """The peak above the level at ``start``: CUDA allocated, else RSS (VmHWM, or ru_maxrss)."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"
        self.kind = "cuda max_memory_allocated" if self.cuda else "peak RSS"
        self.base = 0

    def start(self) -> None:
        import gc

        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        elif reset_peak_rss():
            self.kind = "peak RSS (VmHWM)"
            self.base = status_kb("VmRSS") * 1024
        else:
            self.kind = "peak RSS (ru_maxrss)"
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def grown_mb(self) -> float:
        import torch

        if self.cuda:
            peak = torch.cuda.max_memory_allocated()
        elif self.kind.endswith("(VmHWM)"):
            peak = status_kb("VmHWM") * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return (peak - self.base) / MB


def source_digest() -> str:
    return hashlib.sha256(b"".join(path.read_bytes() for path in ATTENTION_SOURCES)).hexdigest()[:12]


def measure(args: argparse.Namespace, code: str, implementation: str) -> dict[str, Any]:
    """One configuration in this (fresh) process: every timed step's seconds and the peak memory."""
    import torch

    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    model, optim_wrapper, data, _ = build(args, code, implementation)
    blocks = attention_blocks(model)
    shapes, hooks = input_shapes(blocks)

    def sync() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    peak = PeakMemory(args.device)
    peak.start()
    times, losses = [], []
    for step in range(args.steps + 1):
        sync()
        start = time.perf_counter()
        log_vars = model.train_step(data, optim_wrapper)
        sync()
        times.append(time.perf_counter() - start)
        losses.append(float(log_vars["loss"]))
        if step == 0:
            warmup_peak = peak.grown_mb()
    grown = peak.grown_mb()
    for hook in hooks:
        hook.remove()
    described, kernels = attention_ran(model, shapes)
    return {
        "seconds": times[1:],
        "warmup_s": times[0],
        "peak_mb": grown,
        "warmup_peak_mb": warmup_peak,
        "memory_kind": peak.kind,
        "attention": described,
        "kernels": kernels,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "image": list(data["inputs"][0].shape[1:]),
        "batch": len(data["inputs"]),
        "losses": losses,
        "attention_source": source_digest(),
    }


# ---- the child's profile: where the attention blocks' time and memory go ---------------------------------


class SavedTensors:
    """Counts the tensors autograd saves for backward, by storage (each once), parameters left out: in the
    whole step, and inside the attention blocks by the line of attention.py that saved them."""

    def __init__(self, model: Any) -> None:
        self.parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.seen: set[int] = set()
        self.total = 0
        self.inside = 0
        self.by_line: dict[str, list[Any]] = defaultdict(lambda: [0, 0, set()])  # bytes, tensors, shapes
        self.depth = 0
        self.handles = []
        for block in attention_blocks(model):
            self.handles.append(block.register_forward_pre_hook(self._enter))
            self.handles.append(block.register_forward_hook(self._leave))

    def _enter(self, *_: Any) -> None:
        self.depth += 1

    def _leave(self, *_: Any) -> None:
        self.depth -= 1

    def pack(self, tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer in self.parameters or pointer in self.seen or tensor.device.type == "meta":
            return tensor
        self.seen.add(pointer)
        size = storage.nbytes()
        self.total += size
        if self.depth:
            self.inside += size
            line = self._line()
            entry = self.by_line[line]
            entry[0] += size
            entry[1] += 1
            entry[2].add("x".join(map(str, tensor.shape)))
        return tensor

    @staticmethod
    def _line() -> str:
        """The innermost line of attention.py or its kernels (or of mmcv's module) on the stack, else the
        innermost."""
        stack = traceback.extract_stack()
        for frame in reversed(stack):
            if frame.filename.endswith(
                ("model/attention.py", "model/attention_kernels.py", "generalized_attention.py")
            ):
                return f"{Path(frame.filename).name}:{frame.lineno} {(frame.line or '').strip()[:70]}"
        return f"{Path(stack[-3].filename).name}:{stack[-3].lineno}"

    def report(self) -> dict[str, Any]:
        lines = sorted(self.by_line.items(), key=lambda item: -item[1][0])
        return {
            "saved_total_mb": self.total / MB,
            "saved_attention_mb": self.inside / MB,
            "saved_by_line": [[line, b / MB, n, sorted(s)[:3]] for line, (b, n, s) in lines[:12]],
        }


def profile_step(args: argparse.Namespace, code: str, implementation: str) -> dict[str, Any]:
    """One warm-up step, then one profiled step with the attention blocks hooked."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    model, optim_wrapper, data, _ = build(args, code, implementation)
    blocks = attention_blocks(model)
    shapes, hooks = input_shapes(blocks)
    model.train_step(data, optim_wrapper)
    for hook in hooks:
        hook.remove()
    ranges: list[Any] = []

    def enter(block: Any, _: Any) -> None:
        context = contextlib.ExitStack()
        context.enter_context(record_function("bench::attention_block"))
        ranges.append(context)

    def leave(block: Any, _: Any, __: Any) -> None:
        ranges.pop().close()

    handles = [b.register_forward_pre_hook(enter) for b in blocks]
    handles += [b.register_forward_hook(leave) for b in blocks]
    saved = SavedTensors(model)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with (
        profile(activities=activities, record_shapes=True, profile_memory=True, with_stack=True) as prof,
        torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t),
    ):
        start = time.perf_counter()
        model.train_step(data, optim_wrapper)
        step_s = time.perf_counter() - start
    for handle in handles + saved.handles:
        handle.remove()
    result: dict[str, Any] = {"step_s": step_s, **saved.report(), **block_times(prof)}
    result["at_peak"] = memory_at_peak(prof, args.device)
    result["attention"] = attention_ran(model, shapes)[0]
    result["threads"] = torch.get_num_threads()
    result["attention_source"] = source_digest()
    return result


def block_times(prof: Any) -> dict[str, Any]:
    """Forward and backward time of the attention blocks, and their top ops by self time and allocation.

    Forward: the ops inside the blocks' record_function ranges. Backward: the autograd nodes whose
    sequence number is that of a forward op inside a block (the profiler links the two by it)."""
    events = list(prof.events())
    blocks = [e for e in events if e.name == "bench::attention_block"]
    spans = sorted((e.time_range.start, e.time_range.end) for e in blocks)

    def inside(event: Any) -> bool:
        start = event.time_range.start
        return any(a <= start and event.time_range.end <= b for a, b in spans)

    forward_ops = [e for e in events if e.name.startswith("aten::") and inside(e)]
    sequence = {e.sequence_nr for e in forward_ops if e.sequence_nr >= 0}
    backward = [
        e
        for e in events
        if e.name.startswith("autograd::engine::evaluate_function") and e.sequence_nr in sequence
    ]
    top_level = [e for e in events if e.cpu_parent is None]
    total_us = sum(e.cpu_time_total for e in top_level)

    def top(chosen: list[Any], key: str) -> list[list[Any]]:
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
        for e in chosen:
            entry = sums[e.name]
            entry[0] += e.self_cpu_time_total / 1e6
            entry[1] += max(e.self_cpu_memory_usage, 0) / MB
            entry[2] += 1
        index = 0 if key == "time" else 1
        ranked = sorted(sums.items(), key=lambda item: -item[1][index])[:10]
        return [[name, s, m, int(n)] for name, (s, m, n) in ranked]

    backward_ops = [e for b in backward for e in descendants(b)] + backward
    return {
        "profiled_total_s": total_us / 1e6,
        "blocks_forward_s": sum(e.cpu_time_total for e in blocks) / 1e6,
        "blocks_backward_s": sum(e.cpu_time_total for e in backward) / 1e6,
        "forward_top_time": top(forward_ops, "time"),
        "forward_top_memory": top(forward_ops, "memory"),
        "backward_top_time": top(backward_ops, "time"),
        "backward_top_memory": top(backward_ops, "memory"),
    }


def descendants(event: Any) -> list[Any]:
    found = []
    pending = list(event.cpu_children)
    while pending:
        child = pending.pop()
        found.append(child)
        pending += child.cpu_children
    return found


def memory_at_peak(prof: Any, device: str) -> dict[str, Any]:
    """torch's memory profiler: the allocated MB by category at the step's peak, and the peak's time."""
    try:
        from torch.profiler._memory_profiler import _CATEGORY_TO_INDEX, MemoryProfileTimeline

        timeline: Any = MemoryProfileTimeline(prof._memory_profile())
        times, sizes = timeline._coalesce_timeline("cuda:0" if device == "cuda" else "cpu")
    except Exception as error:  # a private API: report rather than fail the profile
        return {"error": f"{type(error).__name__}: {error}"}
    names = ["", *(str(getattr(c, "name", "unknown")).lower() for c in _CATEGORY_TO_INDEX)]
    totals = [sum(row) for row in sizes]
    at = max(range(len(totals)), key=totals.__getitem__)
    first = times[0]
    return {
        "peak_mb": totals[at] / MB,
        "start_mb": totals[0] / MB,
        "peak_at_s": (times[at] - first) / 1e6,
        "length_s": (times[-1] - first) / 1e6,
        "categories": {name: size / MB for name, size in zip(names, sizes[at], strict=False) if size},
    }


# ---- the parent ------------------------------------------------------------------------------------------


def run_child(args: argparse.Namespace, config: Configuration) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", config.code, config.implementation]
    command += ["--sweep", args.sweep, "--steps", str(args.steps), "--threads", str(args.threads)]
    command += ["--device", args.device, *(["--batch", str(args.batch)] if args.batch else [])]
    command += [*(["--dcn"] if args.dcn else []), *(["--profile"] if args.profile else [])]
    environment = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    done = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT)
    last = done.stdout.strip().splitlines()[-1:]
    if done.returncode or not last:
        tail = done.stderr.strip().splitlines()[-3:] or ["no output"]
        return {"error": f"exit {done.returncode}: {' | '.join(tail)}"}
    result: dict[str, Any] = json.loads(last[0])
    return result


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A configuration's figures over its processes (those that did not fail)."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[0]["error"]}
    steps = [s for r in good for s in r["seconds"]]
    medians = [statistics.median(r["seconds"]) for r in good]
    peaks = [r["peak_mb"] for r in good]
    return {
        "seconds": statistics.median(steps),
        "seconds_range": (min(medians), max(medians)),
        "peak_mb": statistics.median(peaks),
        "peak_range": (min(peaks), max(peaks)),
        "attention": "; ".join(sorted({r["attention"] for r in good})),
        "kernels": sorted({k for r in good for k in r["kernels"]}),
        "threads": "/".join(sorted({f"{r['threads']}" for r in good})),
        "finite": all(all(v == v and abs(v) != float("inf") for v in r["losses"]) for r in good),
        "processes": len(good),
    }


def figure(result: dict[str, Any], key: str, digits: int) -> str:
    if key not in result:
        return "fails"
    low, high = result[f"{key.split('_')[0]}_range"]
    return f"{result[key]:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def print_table(configs: list[Configuration], results: list[dict[str, Any]]) -> None:
    by_label = dict(zip((c.label for c in configs), results, strict=True))
    baseline = next((r for c, r in zip(configs, results, strict=True) if c.code == BASELINE), {})
    header = (
        f"{'cell':<16}{'attention (blocks ran)':<40}{'threads':>8}"
        f"{'step s (range)':>22}{'/0010':>7}{'peak MB (range)':>22}{'/0010':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, result in by_label.items():
        print(
            f"{label:<16}{result.get('attention', '-'):<40}{result.get('threads', '-'):>8}"
            f"{figure(result, 'seconds', 2):>22}{ratio(result, baseline, 'seconds'):>7}"
            f"{figure(result, 'peak_mb', 0):>22}{ratio(result, baseline, 'peak_mb'):>7}"
        )
    kernels = sorted({k for r in results for k in r.get("kernels", [])})
    print(f"sdpa kernels run (one block's forward+backward): {', '.join(kernels) or 'none'}")
    for label, result in by_label.items():
        if "error" in result:
            print(f"fails: {label}: {result['error']}")
        elif not result["finite"]:
            print(f"note: {label}: a loss was not finite (the step still ran)")


def print_runs(label: str, result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"  {label:<16} fails: {result['error']}", flush=True)
        return
    steps = ", ".join(f"{s:.2f}" for s in result["seconds"])
    print(
        f"  {label:<16} warm-up {result['warmup_s']:.2f} s, steps {steps} s; "
        f"peak +{result['peak_mb']:.0f} MB (after warm-up +{result['warmup_peak_mb']:.0f}); "
        f"{result['attention']}, {result['threads']} threads",
        flush=True,
    )


def benchmark(args: argparse.Namespace, configs: list[Configuration]) -> None:
    import torch

    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {c.label: [] for c in configs}
    print(f"processes, interleaved ({args.repeat} per configuration):", flush=True)
    for _ in range(args.repeat):
        for config in configs:
            result = run_child(args, config)
            runs[config.label].append(result)
            print_runs(config.label, result)
    good = [r for rs in runs.values() for r in rs if "error" not in r]
    first = good[0] if good else {}
    image = "x".join(map(str, first.get("image", ["?"])))
    kind = first.get("memory_kind", "peak")
    digests = sorted({r["attention_source"] for r in good})
    print()
    print(
        f"{args.sweep}: one training step (forward, backward, SGD step) of the detector, DCN "
        f"{'on' if args.dcn else 'off'}, batch {first.get('batch', '?')} x {image}, {args.device}, torch "
        f"{torch.__version__}; 1 warm-up + {args.steps} timed steps per process, {args.repeat} fresh "
        f"processes per configuration, interleaved; ablation/model/attention*.py {', '.join(digests)}"
    )
    print(
        f"(step s: median of every timed step, range of the processes' medians; peak MB: {kind} above the "
        f"level before the first step, median and range of the processes)"
    )
    print_table(configs, [summary(runs[c.label]) for c in configs])
    if len(digests) > 1:
        print(
            "warning: ablation/model/attention*.py changed during the run: the processes ran different code"
        )
    print(f"took {time.perf_counter() - started:.0f} s")


def print_profile(configs: list[Configuration], results: list[dict[str, Any]]) -> None:
    for config, result in zip(configs, results, strict=True):
        print(f"\n== {config.label}: {result.get('attention', '')}")
        if "error" in result:
            print(f"fails: {result['error']}")
            continue
        print(
            f"profiled step {result['step_s']:.2f} s (with the profiler's overhead; "
            f"ops {result['profiled_total_s']:.2f} s); attention blocks: "
            f"forward {result['blocks_forward_s']:.2f} s, backward {result['blocks_backward_s']:.2f} s"
        )
        print(
            f"saved for backward (unique storages, no parameters): "
            f"whole step {result['saved_total_mb']:.0f} MB, "
            f"inside the attention blocks {result['saved_attention_mb']:.0f} MB"
        )
        for line, size, count, shapes in result["saved_by_line"]:
            print(f"  {size:8.1f} MB  {count:3d} tensors  {line}  e.g. {', '.join(shapes)}")
        peak = result["at_peak"]
        if "error" in peak:
            print(f"memory timeline: {peak['error']}")
        else:
            parts = ", ".join(f"{name} {size:.0f}" for name, size in peak["categories"].items())
            print(
                f"allocated at the step's peak ({peak['peak_at_s']:.1f} s of {peak['length_s']:.1f} s): "
                f"{peak['peak_mb']:.0f} MB, from {peak['start_mb']:.0f} MB at the start: {parts}"
            )
        for title, key in (
            ("blocks' forward ops by self time", "forward_top_time"),
            ("blocks' forward ops by allocation", "forward_top_memory"),
            ("blocks' backward ops by self time", "backward_top_time"),
            ("blocks' backward ops by allocation", "backward_top_memory"),
        ):
            print(f"  {title}:")
            for name, seconds, megabytes, count in result[key][:8]:
                print(f"    {seconds:7.3f} s  {megabytes:8.1f} MB  x{count:<4d} {name}")


def main() -> None:
    args = options()
    if args.measure:
        code, implementation = args.measure
        action = profile_step if args.profile else measure
        print(json.dumps(action(args, code, implementation)))
        return
    configs = configurations(args)
    if args.profile:
        print_profile(configs, [run_child(args, c) for c in configs])
    else:
        benchmark(args, configs)


if __name__ == "__main__":
    main()
