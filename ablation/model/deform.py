"""The deformable convolution (DCN v1) of mmcv's ``DeformConv2dPack``, computed with torch's own ops on CPU.

mmcv's CPU kernel is slow. This module is that layer (a subclass: the same constructor, parameters,
initialisation and state_dict) whose CPU forward samples all kernel taps of all output positions at once
and multiplies them with the weight in one matrix product. The sampling is mmcv's: tap (i, j) of output
(y, x) reads the input at (y * stride - pad + i * dilation + dy, x * stride - pad + j * dilation + dx),
with the offsets' (dy, dx) pairs in mmcv's order, and a corner outside the map counts as zero.

Each sample is a weighted sum of 4 rows of the map as a table of pixels, ``embedding_bag``'s one job
(``_Bilinear``: one op forward, where gathering, weighting and adding the corners took a dozen); its
backward pass is written out, 4 ``index_add_`` for the map's gradient and ``embedding_bag``'s fused
gradient of the weights for the offsets'. The samples come out in the order the matrix product reads them
(position, offset group, tap, channel), so no copy of them is made. bench/dcn.py (1 thread) measures the
layer 1.5-1.7x faster than the former autograd version at the study's shapes (1.2-1.7x at R-50's at
192x128, 4.7x at 800x1333) and 4-9x faster than mmcv's op (1.7x at R-50's stage 5 at 8x12).

On CUDA, and under mmengine's tracer (the FLOPs count, which knows mmcv's op), it is mmcv's op itself.
Importing this module registers it in mmdet's model registry as ``AblationDCN``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from mmcv.ops import DeformConv2dPack as MmcvDeformConv2dPack
from torch import Tensor
from torch.autograd.function import once_differentiable

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
    g, taps, positions = deform_groups, kh * kw, h_out * w_out
    # where each tap of each output position reads, in the bags' order: (n, h_out, w_out, g, taps)
    shift = offset.view(n, g, taps, 2, h_out, w_out).permute(0, 4, 5, 1, 2, 3)
    rows = _grid(h_out, stride[0], padding[0], kh, dilation[0], x).t()  # (h_out, kh)
    cols = _grid(w_out, stride[1], padding[1], kw, dilation[1], x).t()  # (w_out, kw)
    y = rows[:, :, None].expand(h_out, kh, kw).reshape(h_out, 1, 1, taps) + shift[..., 0]
    xs = cols[:, None, :].expand(w_out, kh, kw).reshape(1, w_out, 1, taps) + shift[..., 1]
    # each (image, offset group)'s pixels as rows of its channels, so that a sample gathers whole rows
    table = x.view(n, g, c // g, h * w).transpose(2, 3).reshape(-1, c // g)
    first = (torch.arange(n * g, device=x.device) * (h * w)).view(n, 1, 1, g, 1)
    sampled: Tensor = _Bilinear.apply(table, y, xs, first, h, w)  # type: ignore[no-untyped-call]
    if groups == 1:  # (n * positions, g * taps * c / g) against the weight in the same order
        kernel = weight.view(c_out, g, c // g, taps).transpose(2, 3).reshape(c_out, taps * c)
        out = torch.mm(sampled.view(n * positions, taps * c), kernel.t())
        return out.view(n, h_out, w_out, c_out).permute(0, 3, 1, 2).contiguous()
    # (n, groups, positions, taps * c / groups) against the weight as (taps * c / groups, c_out / groups)
    columns = sampled.view(n, positions, g, taps, c // g).transpose(2, 3)
    columns = columns.reshape(n, positions, taps, groups, c // groups).permute(0, 3, 1, 2, 4)
    columns = columns.reshape(n, groups, positions, taps * (c // groups))
    kernel = weight.view(groups, c_out // groups, c // groups, taps).permute(0, 3, 2, 1)
    out = torch.matmul(columns, kernel.reshape(groups, taps * (c // groups), c_out // groups))
    return out.permute(0, 1, 3, 2).reshape(n, c_out, h_out, w_out)


def _grid(size: int, stride: int, pad: int, kernel: int, dilation: int, like: Tensor) -> Tensor:
    """Input coordinate of tap k at output position p, before the offset: (kernel, size)."""
    out = torch.arange(size, dtype=like.dtype, device=like.device) * stride - pad
    tap = torch.arange(kernel, dtype=like.dtype, device=like.device) * dilation
    return tap[:, None] + out[None, :]


class _Bilinear(torch.autograd.Function):
    """Bilinear samples of ``table`` (rows of channels) at rows ``y`` and columns ``x`` (any shape, the
    samples' order) of an h x w map whose first row is ``first`` (broadcast to ``y``): (samples, channels),
    corners outside the map counting as zero. As mmcv's, a sample at or beyond one pixel outside the map is
    zero with zero gradient (also exactly on that border, -1 or h).

    Each sample is a bag of its 4 corners, weighted by the bilinear weights (zero outside the map, where
    the clamped index is a pixel of the border), so that the forward pass is one ``embedding_bag``. The
    backward pass adds the output's gradient times each corner's weight to the table's rows (4
    ``index_add_``: 3x faster than ``embedding_bag``'s own sorting backward), and the corners' weights'
    gradient (``embedding_bag``'s fused dot products) becomes the coordinates' by the bilinear formula.
    """

    @staticmethod
    def forward(ctx: Any, table: Tensor, y: Tensor, x: Tensor, first: Tensor, h: int, w: int) -> Tensor:
        near = (y > -1) & (y < h) & (x > -1) & (x < w)
        y0, x0 = y.floor(), x.floor()
        ly, lx = y - y0, x - x0
        # per axis, the (low, high) corner's coordinate, weight and whether it is inside the map
        ys, xs = torch.stack((y0, y0 + 1), -1), torch.stack((x0, x0 + 1), -1)
        fy, fx = torch.stack((1 - ly, ly), -1), torch.stack((1 - lx, lx), -1)
        rows, cols = ys.clamp(0, h - 1), xs.clamp(0, w - 1)
        inside = ((rows == ys) & near.unsqueeze(-1)).unsqueeze(-1) & (cols == xs).unsqueeze(-2)
        mask = inside.flatten(-2).to(table.dtype)  # (..., 4) as (low, low), (low, high), (high, low), ...
        weights = (fy.unsqueeze(-1) * fx.unsqueeze(-2)).flatten(-2).mul_(mask).view(-1, 4)
        index = (rows.long().unsqueeze(-1) * w + cols.long().unsqueeze(-2)).flatten(-2)
        index = index.add_(first.unsqueeze(-1)).view(-1, 4)
        ctx.save_for_backward(table, index, weights, mask, fy, fx)
        return F.embedding_bag(index, table, per_sample_weights=weights, mode="sum")

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        table, index, weights, mask, fy, fx = ctx.saved_tensors
        grad = grad.contiguous()
        grad_table = grad_y = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_table = torch.zeros_like(table)
            scaled = torch.empty_like(grad)
            for corner in range(4):
                torch.mul(grad, weights[:, corner, None], out=scaled)
                grad_table.index_add_(0, index[:, corner], scaled)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            entries = torch.arange(index.numel(), device=index.device)
            grad_weights = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                grad, table, index.view(-1), entries[::4], entries // 4, 0, -1
            )
            # d weight / d y is (-1, +1) x the column's weight per (low, high) row, and alike for x
            corners = (grad_weights.view(mask.shape) * mask).view(*mask.shape[:-1], 2, 2)
            grad_y = ((corners[..., 1, :] - corners[..., 0, :]) * fx).sum(-1)
            grad_x = ((corners[..., :, 1] - corners[..., :, 0]) * fy).sum(-1)
        return grad_table, grad_y, grad_x, None, None, None


def _register() -> None:
    from mmdet.registry import MODELS

    MODELS.register_module(name=REGISTERED_NAME, module=DeformConv2dPack, force=True)


_register()
