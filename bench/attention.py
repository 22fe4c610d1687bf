"""Forward+backward time and peak memory of GeneralizedAttention: mmcv's module, ours, ours through SDPA.

    .venv/bin/python bench/attention.py [--codes 1111,0010] [--repeat 3] [--min-seconds 4] [--device cpu|cuda]

For each attention code (--codes: a comma-separated list, or "all" for the 16) it measures three modules with
the same arguments:

- mmcv: ``mmcv.cnn.bricks.GeneralizedAttention`` (2.1.0), which fails on non-square maps for the codes
  0100, 0110, 1100 and 1110 (shown as 'fails');
- reference: ``ablation.model.attention.GeneralizedAttention`` as corrected, the energy materialised;
- sdpa: the same module with ``implementation="sdpa"`` (torch's scaled_dot_product_attention);

at the shapes GeneralizedAttention sees in ResNet stages 3 and 4 of an 800x1333 image (the model zoo's
setting: batch 2, 8 heads, kv_stride 2, global attention): 256 channels at 50x84 and 512 channels at 25x42.

Time and memory are measured apart, so that neither disturbs the other:

- seconds: one fresh process (this script with a hidden flag) per code and shape builds the three modules
  (gamma set non-zero) and an input that requires grad, runs one warm-up forward+backward
  (``y.sum().backward()``) of each, then rounds in which each module runs once, the order rotating from
  round to round, --repeat of them and more until --min-seconds have passed (a stage-4 pass takes 0.1 s:
  5 rounds left its ratio to the spread of a few passes); the median per module. The ratios compare passes
  run side by side, so the machine's drift between processes (about 10% on a shared 2-core CPU) cancels
  out;
- peak MB: each module in its own fresh process, one warm-up pass and one more: the peak above the process's
  level just before the first forward, on CPU the peak resident set size (``ru_maxrss``), so it also counts
  the allocator's fragmentation and the library code the first pass pages in; on CUDA
  ``torch.cuda.max_memory_allocated``;
- tensor MB (tMB, reference and sdpa): the peak of the tensors one more pass holds above those held before
  it, from torch's profiler (``ablation.model.measure.tensor_peak``): the same on every run, so it decides
  small differences that the resident set size blurs.

It prints one table: the seconds and peak MB of the three, with the ratios mmcv/sdpa and reference/sdpa
(above 1: sdpa is faster or smaller) and the path sdpa took (``GeneralizedAttention.sdpa_path``), and which
SDPA kernel torch ran where the path was "fused".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

IMPLEMENTATIONS = ("mmcv", "reference", "sdpa")
SHAPES = {"stage 3": (256, 50, 84), "stage 4": (512, 25, 42)}  # channels, height, width at 800x1333
BATCH, HEADS, KV_STRIDE = 2, 8, 2
ALL_CODES = [f"{i:04b}" for i in range(16)]


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--codes", default="1111,0010", help='comma-separated codes, or "all" (%(default)s)')
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds, at least (median)")
    parser.add_argument(
        "--min-seconds", type=float, default=4.0, help="and more rounds until this long (%(default)s)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--measure", nargs=3, metavar=("MODULE", "CODE", "SHAPE"), help=argparse.SUPPRESS)
    parser.add_argument("--time", nargs=2, metavar=("CODE", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.codes = ALL_CODES if args.codes == "all" else [c.strip() for c in args.codes.split(",") if c.strip()]
    bad = [c for c in args.codes if c not in ALL_CODES]
    if bad:
        parser.error(f"bad codes {bad}: each is 4 characters of 0 and 1, or 'all'")
    return args


def build(module: str, code: str, channels: int) -> Any:
    import torch

    kwargs: dict[str, Any] = dict(num_heads=HEADS, kv_stride=KV_STRIDE, attention_type=code)
    torch.manual_seed(0)
    if module == "mmcv":
        from mmcv.cnn.bricks import GeneralizedAttention as MmcvAttention

        block = MmcvAttention(channels, **kwargs)
    else:
        from ablation.model.attention import GeneralizedAttention

        block = GeneralizedAttention(channels, implementation=module, **kwargs)
    with torch.no_grad():
        block.gamma.fill_(0.5)  # as after some training; at 0 the block's output is its input
    return block


def sdpa_kernels(block: Any, x: Any) -> list[str]:
    """The names of the scaled-dot-product-attention kernels one forward+backward runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        block(x).sum().backward()
    names = {e.key for e in prof.key_averages() if "scaled_dot_product" in e.key or "attention" in e.key}
    return sorted(n for n in names if n.startswith("aten::_"))


def pass_of(block: Any, x: Any, device: str) -> Any:
    """One forward+backward of ``block`` on ``x`` as a function returning its seconds."""
    import torch

    def timed() -> float:
        x.grad = None
        block.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        block(x).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return timed


def time_side_by_side(code: str, shape: str, repeat: int, min_seconds: float, device: str) -> dict[str, Any]:
    """The three modules' seconds (median) for one code and shape, timed in turn in this (fresh) process."""
    import torch

    warnings.simplefilter("ignore")
    channels, height, width = SHAPES[shape]
    x = torch.randn(BATCH, channels, height, width, device=device, requires_grad=True)
    passes, results = {}, {}
    for module in IMPLEMENTATIONS:
        timed = pass_of(build(module, code, channels).to(device), x, device)
        try:
            timed()  # the warm-up
        except RuntimeError as error:
            results[module] = {"error": str(error).splitlines()[0]}
            continue
        passes[module] = timed
    times: dict[str, list[float]] = {module: [] for module in passes}
    order = list(passes)
    start, round_ = time.perf_counter(), 0
    while round_ < repeat or time.perf_counter() - start < min_seconds:
        for module in order[round_ % len(order) :] + order[: round_ % len(order)]:
            times[module].append(passes[module]())
        round_ += 1
    for module, seconds in times.items():
        results[module] = {"seconds": statistics.median(seconds), "rounds": round_}
    return results


def measure(module: str, code: str, shape: str, device: str) -> dict[str, Any]:
    """One module's peak memory for one code and shape, in this (fresh) process, or an error."""
    import torch

    warnings.simplefilter("ignore")
    channels, height, width = SHAPES[shape]
    block = build(module, code, channels).to(device)
    x = torch.randn(BATCH, channels, height, width, device=device, requires_grad=True)
    cuda = device == "cuda"
    timed = pass_of(block, x, device)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KB on Linux
    try:
        timed(), timed()  # a warm-up and one more
    except RuntimeError as error:
        return {"error": str(error).splitlines()[0]}
    if cuda:
        peak = torch.cuda.max_memory_allocated() - baseline
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    from ablation.model.measure import tensor_peak

    x.grad = None
    held, _ = tensor_peak(lambda: block(x).sum().backward())
    result: dict[str, Any] = {"peak_mb": peak / 2**20, "tensor_mb": held / 2**20}
    if module == "sdpa":
        result["kernels"] = sdpa_kernels(block, x)
        result["path"] = block.sdpa_path(tuple(x.shape), x.device.type)
    return result


def run_child(flag: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """This script run with a hidden flag (--measure or --time) in a fresh process: its JSON answer."""
    command = [sys.executable, __file__, *flag, "--repeat", str(args.repeat), "--device", args.device]
    command += ["--min-seconds", str(args.min_seconds)]
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:] or ['no output']}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def ratio(numerator: dict[str, Any], denominator: dict[str, Any], key: str) -> str:
    if key not in numerator or key not in denominator:
        return "-"
    return f"{numerator[key] / denominator[key]:.2f}x"


def cell(result: dict[str, Any], key: str, digits: int) -> str:
    return f"{result[key]:.{digits}f}" if key in result else "fails"


def main() -> None:
    args = options()
    if args.measure:
        module, code, shape = args.measure
        print(json.dumps(measure(module, code, shape, args.device)))
        return
    if args.time:
        code, shape = args.time
        print(json.dumps(time_side_by_side(code, shape, args.repeat, args.min_seconds, args.device)))
        return
    import torch

    threads = torch.get_num_threads() if args.device == "cpu" else None
    print(
        f"GeneralizedAttention forward+backward, batch {BATCH}, {HEADS} heads, kv_stride {KV_STRIDE}, "
        f"{args.device}{f' ({threads} threads)' if threads else ''}, torch {torch.__version__}; "
        f"seconds: median of at least {args.repeat} rounds, and of as many as fill {args.min_seconds:g} s, "
        "after a warm-up, the three in turn in one process; "
        "memory: each in a fresh process"
    )
    memory = "peak RSS increase" if args.device == "cpu" else "peak allocated increase"
    header = (
        f"{'code':<6}{'shape':<18}"
        f"{'mmcv s':>9}{'ref s':>9}{'sdpa s':>9}{'mmcv/sdpa':>11}{'ref/sdpa':>10}"
        f"{'mmcv MB':>10}{'ref MB':>10}{'sdpa MB':>10}{'mmcv/sdpa':>11}{'ref/sdpa':>10}"
        f"{'ref tMB':>10}{'sdpa tMB':>10}{'ref/sdpa':>10}  sdpa path"
    )
    print(f"(seconds; MB: {memory}; tMB: peak of tensors held in one more pass, from torch's profiler)")
    print(header)
    print("-" * len(header))
    kernels: set[str] = set()
    errors: dict[str, str] = {}
    for code in args.codes:
        for shape, (channels, height, width) in SHAPES.items():
            results = {m: run_child(["--measure", m, code, shape], args) for m in IMPLEMENTATIONS}
            timing = run_child(["--time", code, shape], args)
            for m in IMPLEMENTATIONS:
                results[m].update(timing.get(m, {"error": timing.get("error", "no timing")}))
            kernels.update(results["sdpa"].get("kernels", []))
            for m, r in results.items():
                if "error" in r:
                    errors[f"{m} {code} {shape}"] = r["error"]
            mm, ref, sdpa = (results[m] for m in IMPLEMENTATIONS)
            label = f"{shape} {channels}@{height}x{width}"
            print(
                f"{code:<6}{label:<18}"
                f"{cell(mm, 'seconds', 3):>9}{cell(ref, 'seconds', 3):>9}{cell(sdpa, 'seconds', 3):>9}"
                f"{ratio(mm, sdpa, 'seconds'):>11}{ratio(ref, sdpa, 'seconds'):>10}"
                f"{cell(mm, 'peak_mb', 0):>10}{cell(ref, 'peak_mb', 0):>10}{cell(sdpa, 'peak_mb', 0):>10}"
                f"{ratio(mm, sdpa, 'peak_mb'):>11}{ratio(ref, sdpa, 'peak_mb'):>10}"
                f"{cell(ref, 'tensor_mb', 0):>10}{cell(sdpa, 'tensor_mb', 0):>10}"
                f"{ratio(ref, sdpa, 'tensor_mb'):>10}  {sdpa.get('path', '-')}",
                flush=True,
            )
    print(f"sdpa kernels run: {', '.join(sorted(kernels)) or 'none (no code took the fused path)'}")
    for what, error in errors.items():
        print(f"fails: {what}: {error}")


if __name__ == "__main__":
    main()
