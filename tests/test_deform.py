"""ablation's DCN (torch ops on CPU) against mmcv's compiled deformable convolution: the same layer, numbers.

Offsets are drawn so that taps land between pixels, on exact pixels and outside the map on every side (a
corner outside counts as zero in both); the gradients of the input, the offsets and the weight must match.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from mmcv.cnn import build_conv_layer
from mmcv.ops import DeformConv2dPack as MmcvDeformConv2dPack
from mmcv.ops import deform_conv2d as mmcv_deform_conv2d
from mmengine.analysis import FlopAnalyzer
from mmengine.registry import DefaultScope

from ablation.model.deform import REGISTERED_NAME, DeformConv2dPack, deform_conv2d
from ablation.model.measure import _DEFORMABLE, _deformable_conv_flops

TOLERANCE = 1e-4
CASES: dict[str, dict[str, Any]] = {
    "3x3": dict(),
    "stride 2": dict(stride=2),
    "dilation 2, padding 2": dict(dilation=2, padding=2),
    "two offset groups": dict(deform_groups=2),
    "two groups, stride 2": dict(groups=2, deform_groups=2, stride=2),
    "5x3, no padding": dict(kernel=(5, 3), padding=(0, 1)),
    "taps on and next to the border": dict(kernel=1, padding=0, border=True),
    "on the border, two offset groups, stride 2": dict(
        kernel=1, padding=0, stride=2, border=True, deform_groups=2
    ),
}
# where the border cases' taps land, in pixels from the map's first (negative) or last row or column
BORDER = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.25, 1.0, 1.5])


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


def inputs(case: dict[str, Any], seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    kh, kw = _pair(case.get("kernel", 3))
    stride, padding, dilation = (
        _pair(case.get(k, d)) for k, d in (("stride", 1), ("padding", 1), ("dilation", 1))
    )
    n, c, c_out, h, w = 2, 8, 6, 9, 13  # odd and not square
    h_out = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    w_out = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    groups, deform_groups = case.get("groups", 1), case.get("deform_groups", 1)
    x = torch.randn(n, c, h, w, generator=generator)
    weight = torch.randn(c_out, c // groups, kh, kw, generator=generator)
    offset = 3 * torch.randn(n, deform_groups * 2 * kh * kw, h_out, w_out, generator=generator)
    offset[:, :, ::3] = offset[:, :, ::3].round()  # some taps exactly on pixels (and on the border)
    if case.get("border"):  # 1x1 taps exactly on -1, h or w, just inside and just outside
        near = BORDER[torch.randint(len(BORDER), offset.shape, generator=generator)]
        end = torch.tensor([h - 1.0, w - 1.0]).repeat(deform_groups).view(1, -1, 1, 1)
        target = torch.where(torch.rand(offset.shape, generator=generator) < 0.5, near, end - near)
        rows = torch.arange(h_out) * stride[0]
        cols = torch.arange(w_out) * stride[1]
        base = torch.stack(torch.broadcast_tensors(rows[:, None], cols[None, :])).repeat(deform_groups, 1, 1)
        offset = target - base
    return x, offset, weight


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_the_output_and_every_gradient_are_mmcv_s(case: dict[str, Any]) -> None:
    x, offset, weight = inputs(case)
    args = (
        _pair(case.get("stride", 1)),
        _pair(case.get("padding", 1)),
        _pair(case.get("dilation", 1)),
        case.get("groups", 1),
        case.get("deform_groups", 1),
    )
    results = []
    for function in (mmcv_deform_conv2d, deform_conv2d):
        leaves = [t.clone().requires_grad_() for t in (x, offset, weight)]
        out = function(*leaves, *args)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), *(t.grad for t in leaves)))
    assert results[0][0].shape == results[1][0].shape
    for name, theirs, ours in zip(("output", "input", "offset", "weight"), *results, strict=True):
        assert ours is not None and theirs is not None
        assert torch.allclose(ours, theirs, atol=TOLERANCE, rtol=TOLERANCE), (
            f"{name}: max difference {(ours - theirs).abs().max():.3g}"
        )
    assert results[0][2].abs().sum() > 0  # the offsets' gradient is not trivially zero


def test_the_registered_layer_is_mmcv_s_with_its_parameters_and_numbers() -> None:
    with DefaultScope.overwrite_default_scope("mmdet"):
        ours = build_conv_layer(dict(type=REGISTERED_NAME, deform_groups=1), 8, 6, 3, stride=2, padding=1)
    theirs = MmcvDeformConv2dPack(8, 6, 3, stride=2, padding=1)
    assert isinstance(ours, DeformConv2dPack)
    loaded = theirs.load_state_dict(ours.state_dict(), strict=True)  # a checkpoint moves either way
    assert not loaded.missing_keys and not loaded.unexpected_keys
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # offsets learnt away from mmcv's zero initialisation
        for layer in (ours, theirs):
            layer.conv_offset.weight.copy_(torch.randn(layer.conv_offset.weight.shape, generator=generator))
            generator.manual_seed(1)
    x = torch.randn(2, 8, 10, 15)
    assert torch.allclose(ours(x), theirs(x), atol=TOLERANCE, rtol=TOLERANCE)


def test_its_flops_are_counted_as_mmcv_s() -> None:
    """mmengine's FlopAnalyzer traces mmcv's op for both: a cell's count does not depend on the module."""
    theirs = MmcvDeformConv2dPack(8, 6, 3, padding=1)
    ours = DeformConv2dPack(8, 6, 3, padding=1)
    x = torch.randn(1, 8, 9, 13)
    counts = []
    for layer in (theirs, ours):
        analyzer = FlopAnalyzer(layer, (x,)).unsupported_ops_warnings(False)
        analyzer.set_op_handle(**{op: _deformable_conv_flops for op in _DEFORMABLE})
        with torch.no_grad():
            counts.append(analyzer.total())
    conv = 6 * 8 * 9 * 9 * 13  # the kernel's multiply-adds at each output position
    assert counts[0] == counts[1] >= conv
