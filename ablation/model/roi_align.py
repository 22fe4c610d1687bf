"""mmcv's RoIAlign (``mmcv.ops.RoIAlign``, average pooling), computed with torch's own ops on CPU.

mmcv's CPU kernel loops over every RoI, channel, bin and sample in scalar C++, and its backward pass
recomputes each sample's corners once per channel: in the study's detector it took a third of a training
step. This module is that layer (a subclass: the same constructor and arguments) whose CPU forward computes
mmcv's numbers as weighted sums of gathered rows, ``embedding_bag``'s one job:

- the map is a table of (n * h * w) rows, one per pixel, of its channels;
- each bin of each RoI is a bag of the pixels its bilinear samples read, each pixel once with the sum of
  its weights (bilinear weight / samples in the bin): the forward pass is one ``embedding_bag``;
- the backward pass is the transposed sum: each pixel is a bag of the bins that read it, with the same
  weights, over the rows of the output's gradient (the bags found by one sort of the entries' pixels).

The sampling is mmcv's, exactly: RoI corners are scaled by ``spatial_scale`` (a C float) and, with
``aligned``, shifted by -0.5 pixel; without ``aligned`` a RoI is at least 1x1. Each of the
``output_size`` bins takes ``sampling_ratio`` x ``sampling_ratio`` samples at the centres of a regular
grid, or with ``sampling_ratio=0`` ceil(RoI height / bins) x ceil(RoI width / bins), per RoI. A sample
with y < -1, y > height, x < -1 or x > width is zero (and gets no gradient); else its coordinates are
clamped to the map (0 .. height - 1, 0 .. width - 1) and it is the bilinear interpolation of its four
neighbours. A bin is the mean of its samples, zero when it has none.

Bilinear weights and the border rule are products of one factor per axis, so a bin's pixels and weights
are the outer product of its distinct rows' and columns' (``_axis``). RoIs are grouped by how many distinct
rows and columns their bins read, so that a group's bags are built by a few ops over long rows. What costs
on CPU is memory, not arithmetic: the bags are bin-major, so that the output and its gradient change
layout by 2-D transposed copies; a large map (the model zoo's finest level) is tabled one image at a time
in one buffer, or only the pixels read where RoIs cover less than half of it; and its gradient is summed a
cache-sized piece at a time. bench/roi_align.py measures a whole extraction forward+backward 7.7x
faster than with mmcv's op at the study's shapes and 6.3x at the model zoo's, on one thread.

Max pooling (``pool_mode="max"``), torchvision's op (``use_torchvision``), dtypes other than float32 and
float64, CUDA and mmengine's tracer (the FLOPs count, which knows mmcv's op) get mmcv's op itself.
mmdet's RoI extractors look a RoI layer's type up in ``mmcv.ops``: importing this module puts the class
there, and in mmdet's model registry, as ``AblationRoIAlign``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import mmcv.ops
import torch
import torch.nn.functional as F
from mmcv.ops import RoIAlign as MmcvRoIAlign
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from ablation.model.modules import ROI_ALIGN_MODULES

__all__ = ["REGISTERED_NAME", "RoIAlign", "roi_align"]

REGISTERED_NAME, _ = ROI_ALIGN_MODULES["ablation"]
_DTYPES = (torch.float32, torch.float64)  # the others (half) go to mmcv's op
_PIECE = 2**18  # values of the map's gradient summed at a time (1 MB in float32)
_BY_IMAGE = 2**22  # above this many values in the map (16 MB in float32), a table and its bags per image


class RoIAlign(MmcvRoIAlign):  # type: ignore[misc]
    """mmcv's ``RoIAlign``, computed with torch ops on CPU for average pooling."""

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        if (
            input.device.type != "cpu"
            or torch._C._get_tracing_state()
            or self.use_torchvision
            or self.pool_mode != "avg"
            or input.dtype not in _DTYPES
        ):
            return super().forward(input, rois)  # type: ignore[no-any-return]
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)


def roi_align(
    input: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = True,
) -> Tensor:
    """mmcv's ``roi_align`` with average pooling, in torch ops: ``input`` (n, c, h, w), ``rois`` (k, 5) as
    (image index, x1, y1, x2, y2) in input pixels; returns (k, c, *output_size). The gradient is the
    input's only (mmcv's gives the RoIs none)."""
    n, c, h, w = input.shape
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"RoIs must be (k, 5) as (index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    size = _pair(output_size)
    parts = []
    with torch.no_grad():
        rois = rois.detach().to(input.dtype)
        if not bool(torch.isfinite(rois).all()):  # mmcv's kernel reads outside the map then
            raise ValueError("RoIs must be finite, got NaN or infinite coordinates")
        image = rois[:, 0].long()  # truncated, as mmcv's (int)
        if len(rois) and (int(image.min()) < 0 or int(image.max()) >= n):
            raise ValueError(
                f"RoI image indices must be 0..{n - 1}, got {int(image.min())}..{int(image.max())}"
            )
        geometry = (size, spatial_scale, sampling_ratio, aligned)
        if n * c * h * w <= _BY_IMAGE or n == 1:
            if len(rois):
                parts.append(_Part(0, n, None, _bags(image, rois[:, 1:], (n, h, w), *geometry)))
        else:  # a large map: each image's table in turn, in one buffer
            for first in range(n):
                chosen = (image == first).nonzero().squeeze(1)
                if len(chosen):
                    boxes = rois.index_select(0, chosen)[:, 1:]
                    alone = image.new_zeros(len(chosen))  # its image is the part's only one
                    parts.append(_Part(first, 1, chosen, _bags(alone, boxes, (1, h, w), *geometry)))
    out: Tensor = _RoIAlign.apply(input, parts, len(rois), size)  # type: ignore[no-untyped-call]
    return out


class _Bags(NamedTuple):
    """The bags of ``embedding_bag``, bin-major: bag j = bin * k + i is bin j // k of the RoI order[i] (the
    RoIs in groups of equal bag shape), the sum of ``weights[offsets[j]:offsets[j + 1]]`` times the same
    entries' rows of the table: the map's pixels (image * h * w + y * w + x), or where ``touched`` is given
    only those, in its order. ``cells[e]`` is the output cell of entry e (bin * k + RoI, the RoIs in their
    own order), ``reads`` how many entries read each row of the table."""

    rows: Tensor  # (entries,)
    weights: Tensor  # (entries,)
    offsets: Tensor  # (bins * k + 1,)
    cells: Tensor  # (entries,)
    order: Tensor  # (k,)
    touched: Tensor | None  # (table rows,) pixels, or None: the whole map
    reads: Tensor  # (table rows,)


class _Part(NamedTuple):
    """Bags over the images first .. first + images - 1 of the map, for the RoIs ``rois`` (None: all)."""

    first: int
    images: int
    rois: Tensor | None
    bags: _Bags


def _bags(
    image: Tensor,
    boxes: Tensor,
    shape: tuple[int, int, int],
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> _Bags:
    """The bags of the RoIs ``boxes`` (k, 4) as (x1, y1, x2, y2) on the images ``image`` (k,) of a map of
    ``shape`` (n, h, w)."""
    n, h, w = shape
    ph, pw = output_size
    bins, k = ph * pw, len(boxes)
    scale = float(torch.tensor(spatial_scale, dtype=torch.float32))  # mmcv's kernel takes a C float
    shift = 0.5 if aligned else 0.0
    start = boxes[:, 0:2] * scale - shift  # (k, 2): x, y
    extent = (boxes[:, 2:4] * scale - shift) - start
    if not aligned:  # mmcv's legacy mode: at least one pixel
        extent = extent.clamp(min=1.0)
    elif bool((extent < 0).any()):
        raise ValueError("RoIs with aligned=True must not have a negative width or height")
    if sampling_ratio > 0:
        count = torch.full((k, 2), sampling_ratio, dtype=torch.long)
    else:  # mmcv's ceilf: of the quotient as a C float
        count = (extent / extent.new_tensor([pw, ph])).float().ceil().long()
    index = torch.int32 if n * h * w < 2**31 and k * bins < 2**31 else torch.long
    rows, row_weights, row_count = _axis(start[:, 1], extent[:, 1], count[:, 1], ph, h)
    cols, col_weights, col_count = _axis(start[:, 0], extent[:, 0], count[:, 0], pw, w)
    rows = ((image[:, None, None] * h + rows) * w).to(index)  # the pixel of each row's first column
    cols = cols.to(index)
    # group the RoIs by their bags' shape (distinct rows a x distinct columns b). A group's bags are outer
    # products of its rows and columns; as (ph, pw, entries of the group per bin: RoI, a, b) they fill its
    # columns of the (bins, entries per bin) entries, each factor first spread to (ph or pw, RoI, a, b) so
    # that the sums and products run over long rows
    stride = int(col_count.max()) + 1
    key, order = (row_count * stride + col_count).sort(stable=True)
    kinds, sizes = torch.unique_consecutive(key, return_counts=True)
    per_roi = (row_count * col_count).index_select(0, order)
    offsets = torch.zeros(bins * k + 1, dtype=index)
    torch.cumsum(per_roi.repeat(bins), 0, out=offsets[1:])
    per_bin = int(per_roi.sum())
    pixels = torch.empty(bins, per_bin, dtype=index)
    weights = boxes.new_empty(bins, per_bin)
    cells = torch.empty(bins, per_bin, dtype=index)
    first = at = 0
    for kind, size in zip(kinds.tolist(), sizes.tolist(), strict=True):
        group = order[first : first + size]
        a, b = divmod(kind, stride)
        end = at + size * a * b

        def spread(
            table: Tensor, width: int, along: int, group: Tensor = group, a: int = a, b: int = b
        ) -> Tensor:
            part = table.index_select(0, group)[:, :, :width].transpose(0, 1)  # (bins, RoI, width)
            part = part[:, :, :, None] if along == 0 else part[:, :, None, :]
            return part.expand(-1, -1, a, b).reshape(len(part), -1)

        into = (ph, pw, end - at)
        torch.add(spread(rows, a, 0)[:, None], spread(cols, b, 1)[None], out=pixels[:, at:end].view(into))
        torch.mul(
            spread(row_weights, a, 0)[:, None],
            spread(col_weights, b, 1)[None],
            out=weights[:, at:end].view(into),
        )
        cell = torch.arange(bins, dtype=index)[:, None] * k + group.to(index)  # (bins, RoI)
        cells[:, at:end] = cell.repeat_interleave(a * b, dim=1)
        first, at = first + size, end
    pixels = pixels.view(-1)
    reads = torch.bincount(pixels, minlength=n * h * w)
    touched = None
    used = reads > 0
    if 2 * int(used.sum()) < n * h * w:  # a table of the pixels read only: less to copy on a large map
        touched = used.nonzero().squeeze(1)
        pixels = (used.cumsum(0, dtype=index) - 1).index_select(0, pixels)
        reads = reads.index_select(0, touched)
    return _Bags(
        rows=pixels,
        weights=weights.view(-1),
        offsets=offsets,
        cells=cells.view(-1),
        order=order,
        touched=touched,
        reads=reads,
    )


def _axis(
    start: Tensor, extent: Tensor, count: Tensor, bins: int, length: int
) -> tuple[Tensor, Tensor, Tensor]:
    """One axis of every RoI's samples: the distinct map rows (or columns) each bin reads and their summed
    weights (bilinear weight / samples on this axis), (k, bins, width) each, zero weight in the padding, and
    the most distinct rows of any bin of each RoI (k,). ``start``, ``extent`` (k,) in map pixels, ``count``
    (k,) samples per bin, ``length`` the map's size on this axis."""
    k = len(start)
    most = max(int(count.max()), 1)
    step = (extent / bins)[:, None, None]  # bin size
    per = count.clamp(min=1).to(start.dtype)[:, None, None]
    sample = torch.arange(most, dtype=start.dtype)
    # mmcv's order of operations, so that a sample on a border is on the same side of it
    at = (
        start[:, None, None]
        + torch.arange(bins, dtype=start.dtype)[:, None] * step
        + (sample + 0.5) * step / per
    )
    inside = (at >= -1) & (at <= length) & (sample < count[:, None, None])
    at = at.clamp(0, length - 1)
    low = at.floor()
    frac = at - low
    low_row = low.long()
    rows = torch.stack((low_row, (low_row + 1).clamp(max=length - 1)), -1).flatten(2)  # (k, bins, 2 * most)
    weights = (torch.stack((1 - frac, frac), -1) * (inside / per)[..., None]).flatten(2)
    # each row once per bin: sorted, entries that add nothing (weight 0) last, then numbered
    rows, place = rows.masked_fill(weights == 0, length).sort(-1)
    weights = weights.gather(-1, place)
    new = (rows != F.pad(rows[..., :-1], (1, 0), value=-1)) & (rows < length)
    slot = (new.cumsum(-1) - 1).clamp(min=0)
    distinct = new.sum(-1)  # (k, bins)
    width = max(int(distinct.max()), 1)
    summed = weights.new_zeros(k, bins, width).scatter_add_(-1, slot, weights)
    unique = rows.new_full((k, bins, width), length).scatter_reduce_(-1, slot, rows, "amin")
    return unique.clamp_(0, length - 1), summed, distinct.amax(1)


class _RoIAlign(torch.autograd.Function):
    """The bags' weighted sums of the map's rows (forward) and of the output gradient's rows (backward)."""

    @staticmethod
    def forward(ctx: Any, input: Tensor, parts: list[_Part], k: int, output_size: tuple[int, int]) -> Tensor:
        ctx.parts, ctx.shape = parts, input.shape
        _, c, h, w = input.shape
        ph, pw = output_size
        out = input.new_empty(k, c, ph * pw)
        buffer = None  # the rows of the map: a part's images at a time
        for first, images, rois, bags in parts:
            x = input[first : first + images]
            if bags.touched is not None:
                table = x.reshape(images, c, h * w)[bags.touched // (h * w), :, bags.touched % (h * w)]
            else:
                buffer = input.new_empty(images * h * w, c) if buffer is None else buffer
                table = _table(x, buffer[: images * h * w])
            sums = F.embedding_bag(
                bags.rows,
                table,
                bags.offsets,
                mode="sum",
                per_sample_weights=bags.weights,
                include_last_offset=True,
            )
            # (bins, k in groups, c) -> (k in their order, c, bins)
            into = bags.order if rois is None else rois.index_select(0, bags.order)
            out.index_copy_(0, into, sums.view(ph * pw, len(bags.order), c).permute(1, 2, 0))
        return out.view(k, c, ph, pw)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        n, c, h, w = ctx.shape
        k, _, ph, pw = grad.shape
        rows = grad.reshape(k, c * ph * pw)
        covered = sum(part.images for part in ctx.parts)  # images without RoIs have no part: zero
        result = grad.new_empty(n, c, h * w) if covered == n else grad.new_zeros(n, c, h * w)
        for first, images, rois, bags in ctx.parts:
            part = rows if rois is None else rows.index_select(0, rois)
            cells = grad.new_empty(ph * pw, len(part) * c)  # a row per output cell, bin-major: 2-D transposed
            cells.copy_(part.view(-1, ph * pw).t())
            # the transposed bags: per row of the table, the cells that read it
            _, place = bags.rows.to(_key_type(len(bags.reads))).sort(stable=True)
            offsets = torch.zeros(len(bags.reads) + 1, dtype=bags.offsets.dtype)
            torch.cumsum(bags.reads, 0, out=offsets[1:])
            transposed = bags.cells.index_select(0, place), bags.weights.index_select(0, place), offsets
            _transposed_sums(cells.view(-1, c), *transposed, bags.touched, result[first : first + images])
        return result.view(n, c, h, w), None, None, None


def _key_type(rows: int) -> torch.dtype:
    """The smallest integer type that numbers ``rows`` rows: torch sorts 16-bit keys faster."""
    return torch.int16 if rows <= 2**15 else torch.int32 if rows <= 2**31 else torch.long


def _table(x: Tensor, rows: Tensor) -> Tensor:
    """``x`` (n, c, h, w) as (n * h * w, c) rows of each pixel's channels, in ``rows``. Per image a 2-D
    transposed copy (torch's blocked transpose), several times faster than a permuted copy."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    if not x.is_contiguous():
        return rows.view(n, h, w, c).copy_(x.permute(0, 2, 3, 1)).view(n * h * w, c)
    for image in range(n):
        rows[image * h * w : (image + 1) * h * w].copy_(x[image].view(c, h * w).t())
    return rows


def _transposed_sums(
    cells: Tensor, bags: Tensor, weights: Tensor, offsets: Tensor, touched: Tensor | None, grad: Tensor
) -> None:
    """Fill ``grad`` (n, c, h * w), the gradient of a part's map: for each row of its table the sum of
    ``weights`` times the rows of ``cells`` (the output gradient, a row per cell) that ``bags`` name,
    between the row's ``offsets``; zero where nothing was read."""
    n, c, hw = grad.shape
    if touched is not None:
        sums = F.embedding_bag(
            bags, cells, offsets, mode="sum", per_sample_weights=weights, include_last_offset=True
        )
        grad.zero_()[touched // hw, :, touched % hw] = sums
        return
    # a piece of the map at a time, each transposed into its columns of the gradient while in the caches
    piece = min(max(_PIECE // c, 1), hw)
    starts = [(image, first) for image in range(n) for first in range(0, hw, piece)]
    rows = [image * hw + first for image, first in starts] + [n * hw]
    ends = offsets[rows].tolist()
    for i, (image, first) in enumerate(starts):
        lo, hi = ends[i], ends[i + 1]
        sums = F.embedding_bag(
            bags[lo:hi],
            cells,
            offsets[rows[i] : rows[i + 1] + 1] - lo,
            mode="sum",
            per_sample_weights=weights[lo:hi],
            include_last_offset=True,
        )
        grad[image, :, first : first + len(sums)].copy_(sums.t())


def _register() -> None:
    from mmdet.registry import MODELS

    MODELS.register_module(name=REGISTERED_NAME, module=RoIAlign, force=True)
    setattr(mmcv.ops, REGISTERED_NAME, RoIAlign)  # where mmdet's BaseRoIExtractor looks a type name up


_register()
