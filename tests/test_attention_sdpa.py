"""GeneralizedAttention's "sdpa" implementation against its "reference" one, its API and its memory.

The reference implementation is checked against mmcv and against the paper's formula in test_attention.py;
here the fused one must give the same output and the same gradients (of the input and of every parameter)
for every code and setting, with the same weights. The sdpa module runs with torch's flash kernel forced,
so a case the fused kernel cannot take fails instead of falling back to the materialising math kernel.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch
from mmcv.cnn import build_plugin_layer
from mmcv.cnn.bricks.generalized_attention import GeneralizedAttention as MmcvAttention
from mmengine.registry import DefaultScope
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from ablation import ALL_CODES
from ablation.model.attention import IMPLEMENTATIONS, REGISTERED_NAME, GeneralizedAttention
from ablation.model.measure import tensor_peak

CODES = [str(c) for c in ALL_CODES]
CHANNELS = 32
SHAPES = {"11x17": (2, CHANNELS, 11, 17), "13x7": (1, CHANNELS, 13, 7)}  # odd, not square, both ways
SETTINGS: dict[str, dict[str, Any]] = {
    "mmcv's defaults": {},  # 9 heads (3 channels each), kv_stride 2
    "the study's": dict(num_heads=8, kv_stride=2),
    "no strides": dict(num_heads=4, kv_stride=1),
    "query stride": dict(num_heads=2, kv_stride=1, q_stride=2),
    "uneven heads, strides, embedding size, magnitude": dict(
        num_heads=3, kv_stride=3, q_stride=2, position_embedding_dim=16, position_magnitude=3
    ),
    "window": dict(num_heads=4, kv_stride=2, spatial_range=2),
    "window and strides": dict(num_heads=3, kv_stride=3, q_stride=2, spatial_range=2),
}
TOLERANCE = 1e-4
PATHS = ("materialised", "chunked", "fused")  # the small maps here are under materialise_at_most: forced


def force(module: GeneralizedAttention, path: str, shape: tuple[int, ...]) -> None:
    """Make ``module`` take ``path`` on CPU at ``shape``; "chunked": pieces of 5 queries, the last shorter."""
    if path == "materialised":
        return
    module.materialise_at_most = 0  # every energy is above it
    if path == "fused":
        module.fused_devices = ("cpu",)
    n, _, height, width = shape
    keys = ((height - 1) // module.kv_stride + 1) * ((width - 1) // module.kv_stride + 1)
    module.chunk_energies = 5 * module._energies(n, 1, keys) + 3


def module_pair(code: str, **kwargs: Any) -> tuple[GeneralizedAttention, GeneralizedAttention]:
    """The reference and the sdpa module with the same weights, gamma non-zero."""
    torch.manual_seed(0)
    reference = GeneralizedAttention(CHANNELS, attention_type=code, **kwargs)
    with torch.no_grad():
        reference.gamma.fill_(0.7)
    fused = GeneralizedAttention(CHANNELS, attention_type=code, implementation="sdpa", **kwargs)
    fused.load_state_dict(reference.state_dict(), strict=True)
    return reference, fused


def run(module: torch.nn.Module, x: Tensor, flash: bool = False) -> tuple[Tensor, Tensor]:
    """Output and input gradient of a weighted sum of the output; flash: with the fused kernel forced."""
    x = x.detach().clone().requires_grad_(True)
    with contextlib.ExitStack() as stack:
        if flash:
            stack.enter_context(sdpa_kernel([SDPBackend.FLASH_ATTENTION]))
        y = module(x)
        weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
        (y * weights).sum().backward()
    assert x.grad is not None
    return y.detach(), x.grad


def assert_close(ours: Tensor, theirs: Tensor, what: str, tolerance: float = TOLERANCE) -> None:
    diff = (ours - theirs).abs().max().item()
    assert diff <= tolerance, f"{what}: max abs diff {diff:.3g} > {tolerance}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("code", CODES)
def test_sdpa_equals_the_reference(code: str, setting: str, shape: str, path: str) -> None:
    reference, fused = module_pair(code, **SETTINGS[setting])
    x = torch.randn(SHAPES[shape], generator=torch.Generator().manual_seed(2))
    force(fused, path, tuple(x.shape))
    expected_path = "one query" if fused._query_independent() else path
    assert fused.sdpa_path(tuple(x.shape)) == expected_path
    y_ref, grad_ref = run(reference, x)
    y, grad = run(fused, x, flash=True)
    assert y.shape == x.shape
    assert_close(y, y_ref, "output")
    assert_close(grad, grad_ref, "input gradient")
    expected = dict(reference.named_parameters())
    for name, parameter in fused.named_parameters():
        theirs = expected[name].grad
        assert parameter.grad is not None and theirs is not None, name
        # weight gradients sum over every pixel and reach ~50 here: 1e-4 of their scale when above 1
        scale = max(1.0, theirs.abs().max().item())
        assert_close(parameter.grad, theirs, f"gradient of {name}", TOLERANCE * scale)


def test_implementations_are_listed_and_reference_is_the_default() -> None:
    assert IMPLEMENTATIONS == ("reference", "sdpa")
    assert GeneralizedAttention(CHANNELS, num_heads=4).implementation == "reference"
    module = GeneralizedAttention(CHANNELS, num_heads=4, implementation="sdpa")
    assert "implementation='sdpa'" in repr(module)


@pytest.mark.parametrize("spatial_range", [-1, 2])
@pytest.mark.parametrize("code", CODES)
def test_state_dicts_are_the_same_and_load_strictly_both_ways(code: str, spatial_range: int) -> None:
    reference, fused = module_pair(code, num_heads=4, spatial_range=spatial_range)
    shapes = {k: v.shape for k, v in reference.state_dict().items()}
    assert {k: v.shape for k, v in fused.state_dict().items()} == shapes
    assert not list(fused.buffers())
    fresh = GeneralizedAttention(CHANNELS, num_heads=4, spatial_range=spatial_range, attention_type=code)
    fresh.load_state_dict(fused.state_dict(), strict=True)
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, reference.state_dict()[name]), name


def test_an_mmcv_state_dict_loads_strictly_into_the_sdpa_module() -> None:
    theirs = MmcvAttention(256, num_heads=8, spatial_range=2, attention_type="1111")
    ours = GeneralizedAttention(256, num_heads=8, spatial_range=2, implementation="sdpa")
    ours.load_state_dict(theirs.state_dict(), strict=True)  # local_constraint_map dropped
    MmcvAttention(256, num_heads=8, attention_type="1111").load_state_dict(ours.state_dict(), strict=True)


def test_a_bad_implementation_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"implementation must be one of 'reference', 'sdpa', got 'flash'"):
        GeneralizedAttention(CHANNELS, implementation="flash")


def test_mmcv_s_arguments_still_work_positionally_and_implementation_only_by_name() -> None:
    module = GeneralizedAttention(CHANNELS, 2, 4, 16, 3, 3, 2, "0101", implementation="sdpa")
    assert (module.spatial_range, module.num_heads, module.position_embedding_dim) == (2, 4, 16)
    assert (module.position_magnitude, module.kv_stride, module.q_stride) == (3, 3, 2)
    assert str(module.code) == "0101"
    with pytest.raises(TypeError):
        GeneralizedAttention(CHANNELS, 2, 4, 16, 3, 3, 2, "0101", "sdpa")  # type: ignore[call-arg]


def test_a_config_selects_the_implementation() -> None:
    with DefaultScope.overwrite_default_scope("mmdet"):
        _, layer = build_plugin_layer(
            dict(type=REGISTERED_NAME, num_heads=8, attention_type="1111", implementation="sdpa"),
            in_channels=64,
        )
    assert isinstance(layer, GeneralizedAttention) and layer.implementation == "sdpa"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=lambda v: str(v).replace("torch.", ""))
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("code", CODES)
def test_runs_under_cpu_autocast(code: str, path: str, dtype: torch.dtype) -> None:
    reference, fused = module_pair(code, num_heads=4, kv_stride=2, spatial_range=-1 if code != "1111" else 3)
    x = torch.randn(SHAPES["11x17"])
    force(fused, path, tuple(x.shape))
    exact = reference(x).detach()
    x.requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype), sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        y = fused(x)
    y.sum().backward()
    assert y.dtype == torch.float32  # the residual sum promotes back to the input's type
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fused.parameters())
    assert_close(y.detach(), exact, f"{dtype} against fp32", tolerance=0.05 * exact.abs().max().item())


def allocations(module: torch.nn.Module, x: Tensor) -> tuple[int, int]:
    """Peak bytes held and the largest single allocation of one forward+backward (torch's profiler)."""
    x = x.detach().clone().requires_grad_(True)
    return tensor_peak(lambda: module(x).sum().backward())


@pytest.mark.parametrize("path", ["chunked", "fused"])
def test_sdpa_does_not_materialise_the_energy(path: str) -> None:
    """At 64x64 with kv_stride 1 the energy is 2 heads x 4096 x 4096 floats (128 MiB). The fused path's
    largest tensors are 2 x 4096 x 144 (16 channels per head + 64 columns + 64 rows); the chunked path's are
    its pieces of chunk_energies (2**21 floats, 8 MiB)."""
    reference, fused = module_pair("1111", num_heads=2, kv_stride=1)
    x = torch.randn(1, CHANNELS, 64, 64)
    energy = 2 * 4 * 64**4
    if path == "fused":
        fused.fused_devices = ("cpu",)
    assert fused.sdpa_path(tuple(x.shape)) == path
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        peak, largest = allocations(fused, x)
    assert largest <= energy / 16, f"largest allocation {largest / 2**20:.1f} MiB"
    assert peak < energy / 2, f"peak {peak / 2**20:.1f} MiB"
    peak, largest = allocations(reference, x)  # the measurement sees a materialised energy
    assert largest >= energy and peak >= 2 * energy


@pytest.mark.parametrize("code", ["1111", "0100", "1010", "0001"])
def test_the_materialised_path_holds_less_than_the_reference(code: str) -> None:
    """Under materialise_at_most sdpa computes the energy itself, as the reference does, but with two
    energy-sized tensors where the reference's autograd graph keeps several (its terms, their sum, the
    softmax): its peak is below the reference's by at least half an energy (measured: 60.6 against 88.6 MiB
    for 1111, the energy 28.1 MiB), by the same allocator trace."""
    reference, fused = module_pair(code, num_heads=4, kv_stride=1)
    x = torch.randn(2, CHANNELS, 24, 40)
    assert fused.sdpa_path(tuple(x.shape)) == "materialised"
    peak, _ = allocations(fused, x)
    peak_ref, _ = allocations(reference, x)
    energy = 2 * 4 * (24 * 40) ** 2 * 4  # bytes
    assert peak <= peak_ref - energy / 2, f"sdpa {peak / 2**20:.1f} MiB, reference {peak_ref / 2**20:.1f} MiB"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("code", ["1111", "0110", "0001"])
def test_inference_without_gradients_equals_the_reference(code: str, path: str) -> None:
    """Under no_grad the materialised path runs without its autograd Function (as mmengine's tracer needs)."""
    reference, fused = module_pair(code, num_heads=4, kv_stride=2, spatial_range=2 if code == "0001" else -1)
    x = torch.randn(SHAPES["11x17"], generator=torch.Generator().manual_seed(3))
    force(fused, path, tuple(x.shape))
    with torch.no_grad():
        assert_close(fused(x), reference(x), "output")
