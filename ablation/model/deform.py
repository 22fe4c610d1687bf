"""The deformable convolution (DCN v1) of mmcv's ``DeformConv2dPack``, computed with torch's own ops on CPU.

mmcv's CPU kernel is slow: bench/dcn.py measures this module 2.8-3.6x faster than it at most of R-50's DCN
shapes (0.8x at the smallest map, 8x12, where this module's dozen ops cost more than the work). This
module is that layer (a subclass: the same constructor, parameters, initialisation and state_dict)
whose CPU forward gathers the bilinear samples of all kernel taps at once and multiplies them with the
weight in one matrix product; autograd gives the
gradients of the input, the offsets and the weight. The sampling is mmcv's: tap (i, j) of output (y, x)
reads the input at (y * stride - pad + i * dilation + dy, x * stride - pad + j * dilation + dx), with the
offsets' (dy, dx) pairs in mmcv's order, and a corner outside the map counts as zero.

On CUDA, and under mmengine's tracer (the FLOPs count, which knows mmcv's op), it is mmcv's op itself.
Importing this module registers it in mmdet's model registry as ``AblationDCN``.
"""

from __future__ import annotations

import torch
from mmcv.ops import DeformConv2dPack as MmcvDeformConv2dPack
from torch import Tensor

from ablation.model.modules import DCN_MODULES

__all__ = ["REGISTERED_NAME", "DeformConv2dPack", "deform_conv2d"]

REGISTERED_NAME, _ = DCN_MODULES["ablation"]


class DeformConv2dPack(MmcvDeformConv2dPack):  # type: ignore[misc]
    """mmcv's ``DeformConv2dPack`` (registered as ``DCN``), computed with torch ops on CPU."""

    def forward(self, x: Tensor) -> Tensor:
        if x.is_cuda or torch._C._get_tracing_state():
            return super().forward(x)  # type: ignore[no-any-return]
        offset = self.conv_offset(x)
        return deform_conv2d(
            x, offset, self.weight, self.stride, self.padding, self.dilation, self.groups, self.deform_groups
        )


def deform_conv2d(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int = 1,
    deform_groups: int = 1,
) -> Tensor:
    """mmcv's ``deform_conv2d`` in torch ops: ``x`` (n, c, h, w), ``offset`` (n, deform_groups * 2 * kh *
    kw, h_out, w_out) as (dy, dx) per tap, ``weight`` (c_out, c / groups, kh, kw); returns (n, c_out,
    h_out, w_out)."""
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out, w_out = offset.shape[-2:]
    taps, positions = kh * kw, h_out * w_out
    shift = offset.view(n, deform_groups, taps, 2, h_out, w_out)
    # where each tap of each output position reads: (n, deform_groups, taps, h_out, w_out)
    rows = _grid(h_out, stride[0], padding[0], kh, dilation[0], x).view(kh, 1, h_out, 1)
    cols = _grid(w_out, stride[1], padding[1], kw, dilation[1], x).view(1, kw, 1, w_out)
    y = rows.expand(kh, kw, h_out, 1).reshape(taps, h_out, 1) + shift[:, :, :, 0]
    xs = cols.expand(kh, kw, 1, w_out).reshape(taps, 1, w_out) + shift[:, :, :, 1]
    # each (image, offset group)'s pixels as rows of its channels, so that a sample gathers whole rows
    pixels = (
        x.view(n, deform_groups, c // deform_groups, h * w).transpose(2, 3).reshape(-1, c // deform_groups)
    )
    sampled = _bilinear(pixels, y, xs, h, w)  # (n, deform_groups, taps, positions, c / deform_groups)
    # (n, positions, taps * c) per convolution group against the weight as (taps * c, c_out), both per group
    columns = sampled.permute(0, 3, 2, 1, 4).reshape(n, positions, taps, groups, c // groups)
    columns = columns.permute(0, 3, 1, 2, 4).reshape(n, groups, positions, taps * (c // groups))
    kernel = weight.view(groups, c_out // groups, c // groups, taps).permute(0, 3, 2, 1)
    out = torch.matmul(columns, kernel.reshape(groups, taps * (c // groups), c_out // groups))
    return out.permute(0, 1, 3, 2).reshape(n, c_out, h_out, w_out)


def _grid(size: int, stride: int, pad: int, kernel: int, dilation: int, like: Tensor) -> Tensor:
    """Input coordinate of tap k at output position p, before the offset: (kernel, size)."""
    out = torch.arange(size, dtype=like.dtype, device=like.device) * stride - pad
    tap = torch.arange(kernel, dtype=like.dtype, device=like.device) * dilation
    return tap[:, None] + out[None, :]


def _bilinear(pixels: Tensor, y: Tensor, xs: Tensor, h: int, w: int) -> Tensor:
    """Bilinear samples of ``pixels`` ((n, g, h * w) rows of c_g channels, flattened) at rows ``y`` and
    columns ``xs`` (n, g, taps, h_out, w_out): (n, g, taps, h_out * w_out, c_g), corners outside the map
    counting as zero. As mmcv's, a sample at or beyond one pixel outside the map is zero with zero gradient
    (also exactly on that border, -1 or h)."""
    n, g, taps, h_out, w_out = y.shape
    near = (y > -1) & (y < h) & (xs > -1) & (xs < w)
    y0, x0 = y.floor(), xs.floor()
    ly, lx = y - y0, xs - x0
    # the first row of each (image, offset group) in ``pixels``
    first = (torch.arange(n * g, device=y.device) * (h * w)).view(n, g, 1, 1, 1)
    samples = None
    for dy, wy in ((0, 1 - ly), (1, ly)):
        for dx, wx in ((0, 1 - lx), (1, lx)):
            row, col = y0 + dy, x0 + dx
            inside = near & (row >= 0) & (row <= h - 1) & (col >= 0) & (col <= w - 1)
            index = first + (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).long()
            weight = (wy * wx * inside).view(n, g, taps, h_out * w_out, 1)
            value = pixels[index.view(-1)].view(n, g, taps, h_out * w_out, -1) * weight
            samples = value if samples is None else samples + value
    assert samples is not None
    return samples


def _register() -> None:
    from mmdet.registry import MODELS

    MODELS.register_module(name=REGISTERED_NAME, module=DeformConv2dPack, force=True)


_register()
