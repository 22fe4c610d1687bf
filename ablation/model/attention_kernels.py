"""The kernels of ``implementation="sdpa"`` of ``ablation.model.attention``: softmax(energy) @ value from the
energy's separable factors (``Scores``), in one piece (materialised), in pieces of whole queries (chunked) or
through torch's fused ``scaled_dot_product_attention``, and the autograd Functions that keep less for the
backward pass than autograd would. The notation (q, k, u, v, Rx, Ry, the bits) is the attention module's.

Why ``"sdpa"`` is exact: the position terms are separable. The x-term of query (i, j) depends on the key
only through its column l, the y-term only through its row k, so with p = q * bit2 + v * bit4 the energy is
one dot product of an augmented query and an augmented key (the parts of the bits the code clears left out)::

    query (i, j):  [ q(i,j) ,  1          ,  p(i,j) . Rx(j, 0..w_kv-1) ,  p(i,j) . Ry(i, 0..h_kv-1) ]
    key   (k, l):  [ k(k,l) ,  u . k(k,l) ,  one-hot of l (w_kv)        ,  one-hot of k (h_kv)        ]

    query . key = q . k(k,l) + u . k(k,l) + p . Rx(j,l) + p . Ry(i,k)   (the code's terms)

The per-query position scores are (n, heads, h*w, w_kv + h_kv): small beside the energy's h_kv * w_kv keys.
They are p . R = q . R + v . R. Where the energy is too large to materialise, the content term is q . k +
u . k, so no copy of the query with u added is made, and the query's position scores are computed by an
autograd Function that keeps the query as it is (``_PositionScores``); on a smaller map (materialised) u is
added to the query once, and autograd's einsums keep their copies of it: a few MB, where the time of one
more pass over the energy or of copying the query again shows.
mmcv applies no 1/sqrt(d) scaling, so the call passes ``scale=1.0``. The spatial window, where set, is
passed as a boolean ``attn_mask`` (True: may attend). CPU's flash kernel (the fused path on CPU, by
``fused_devices``) needs the query, key and value head sizes equal, so the three are zero-padded to a
common size (a multiple of 8) and the output is sliced back: the zero columns add nothing to a dot
product.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Scores", "fused_attention", "position_einsums", "position_scores", "separable_attention"]

_HEAD_ALIGNMENT = 8  # pad the fused kernel's head size to a multiple of this


class Scores(NamedTuple):
    """The factors of the energy: content . key + saliency + rel_x (per key column) + rel_y (per key row)."""

    content: Tensor | None  # (n, heads, queries, dim): q, bit 1
    key: Tensor | None  # (n, heads, keys, dim), with content
    saliency: Tensor | None  # (n, heads, keys): u . k, bit 3
    rel_x: Tensor | None  # (n or 1, heads, queries, w_kv): p . Rx(j, l) over the key columns l
    rel_y: Tensor | None  # (n or 1, heads, queries, h_kv): p . Ry(i, k) over the key rows k


class _SeparableAttention(torch.autograd.Function):
    """softmax(content . key + saliency + rel_x + rel_y, outside the window -inf) @ value, materialised.

    The energy is built a piece of ``piece`` whole queries at a time. In one piece (the path "materialised")
    this holds two energy-sized tensors, where the reference's autograd graph allocates the energy's terms,
    their sum, the softmax and two gradients, each as large as the energy: the energy, whose softmax is taken
    in place (the attention, saved for the backward pass), and the attention's gradient, turned in place into
    the energy's. In several pieces (the path "chunked") it saves no attention: only each query's
    log-sum-exp, from which the backward pass recomputes a piece's attention, so two piece-sized tensors are
    all it holds beyond its inputs and output. The position terms are added in place, broadcast over the key
    rows and columns, and their gradients are sums of the energy's over them.
    """

    @staticmethod
    def forward(
        ctx: Any,
        content: Tensor | None,
        key: Tensor | None,
        saliency: Tensor | None,
        rel_x: Tensor | None,
        rel_y: Tensor | None,
        value: Tensor,
        window: Tensor | None,
        grid: tuple[int, int, int],
        piece: int,
    ) -> Tensor:
        inputs = (content, key, saliency, rel_x, rel_y, value)
        ctx.shapes = [None if t is None else (t.shape, t.dtype) for t in inputs]
        ctx.grid, ctx.piece, ctx.window = grid, piece, window
        scores = _as_value_dtype(Scores(*inputs[:5]), value)
        out, attention, lse = _separable_forward(scores, value, window, grid, piece)
        ctx.one_piece = lse is None
        if ctx.one_piece:  # the attention is kept: no term is needed again but the content and the key
            scores = scores._replace(saliency=None, rel_x=None, rel_y=None)
        ctx.save_for_backward(*scores, value, attention if lse is None else lse)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        *saved_scores, value, saved = ctx.saved_tensors
        scores = Scores(*saved_scores)
        queries, h_kv, w_kv = ctx.grid
        needs = ctx.needs_input_grad
        n, heads = value.shape[:2]
        grad_out = grad_out.to(value.dtype)
        grads: list[Tensor | None] = [None] * 9

        def add(i: int, grad_i: Tensor) -> None:  # key, saliency, value: a sum over the pieces
            if needs[i]:
                so_far = grads[i]
                grads[i] = grad_i if so_far is None else so_far.add_(grad_i)

        def place(i: int, rows: slice, grad_i: Tensor) -> None:  # content, rel_x, rel_y: a slice per piece
            if not needs[i]:
                return
            if ctx.one_piece:
                grads[i] = grad_i
                return
            whole = grads[i]
            if whole is None:
                whole = grads[i] = grad_i.new_empty((*grad_i.shape[:2], queries, grad_i.shape[-1]))
            whole[:, :, rows] = grad_i

        content, key = scores.content, scores.key
        with torch.autocast(value.device.type, enabled=False):
            for start in range(0, queries, ctx.piece):
                rows = slice(start, min(start + ctx.piece, queries))
                if ctx.one_piece:
                    attention = saved
                else:
                    energy = _piece_energy(scores, value, ctx.window, ctx.grid, rows)
                    attention = _attention_from(energy, saved[:, :, rows])
                g = grad_out[:, :, rows]
                add(5, torch.matmul(attention.transpose(-1, -2), g))
                grad = torch.matmul(g, value.transpose(-1, -2))  # of the attention
                grad = _softmax_backward(grad, attention)  # of the energy
                del attention
                if content is not None and key is not None:
                    place(0, rows, torch.matmul(grad, key))
                    add(1, torch.matmul(grad.transpose(-1, -2), content[:, :, rows]))
                per_key = grad.view(n, heads, -1, h_kv, w_kv)
                if ctx.shapes[2] is not None:
                    add(2, grad.sum(2))
                if ctx.shapes[3] is not None:
                    place(3, rows, per_key.sum(3))
                    place(4, rows, per_key.sum(4))
                del grad, per_key
        for i, (grad_i, shape) in enumerate(zip(grads, ctx.shapes, strict=False)):
            if grad_i is not None:
                size, dtype = shape
                grads[i] = _sum_to(grad_i, size).to(dtype)
        return tuple(grads)


class _PositionScores(torch.autograd.Function):
    """q . Rx(j, l) and q . Ry(i, k) for every query of ``grid`` (n, heads, h, w, dim), given Rx (heads, w,
    w_kv, dim) and Ry (heads, h, h_kv, dim): (n, heads, h, w, w_kv) and (n, heads, h, w, h_kv).

    The same two einsums as autograd would run, but autograd's backward keeps the query twice more, each
    copy permuted for its batched matmul (a column or a row of queries per batch); this keeps the query as
    given, a view of the query convolution's output (which the energy's Function holds too where the code
    has bit 1), and permutes it again in the backward pass."""

    @staticmethod
    def forward(ctx: Any, grid: Tensor, fc_x: Tensor, fc_y: Tensor) -> tuple[Tensor, Tensor]:
        ctx.save_for_backward(grid, fc_x, fc_y)
        return position_einsums(grid, fc_x, fc_y)

    @staticmethod
    def backward(ctx: Any, grad_x: Tensor, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        grid, fc_x, fc_y = ctx.saved_tensors
        dtype = grad_x.dtype  # that of the forward's einsums (under autocast, lower than the inputs')
        grid_, fc_x_, fc_y_ = grid.to(dtype), fc_x.to(dtype), fc_y.to(dtype)
        grads: list[Tensor | None] = [None, None, None]
        with torch.autocast(grid.device.type, enabled=False):
            if ctx.needs_input_grad[0]:
                grad = torch.einsum("nhyxl,hxld->nhyxd", grad_x, fc_x_)
                grads[0] = grad.add_(torch.einsum("nhyxk,hykd->nhyxd", grad_y, fc_y_)).to(grid.dtype)
            if ctx.needs_input_grad[1]:
                grads[1] = torch.einsum("nhyxd,nhyxl->hxld", grid_, grad_x).to(fc_x.dtype)
            if ctx.needs_input_grad[2]:
                grads[2] = torch.einsum("nhyxd,nhyxk->hykd", grid_, grad_y).to(fc_y.dtype)
        return tuple(grads)


def position_scores(grid: Tensor, fc_x: Tensor, fc_y: Tensor) -> tuple[Tensor, Tensor]:
    """``_PositionScores``; the einsums themselves where no gradient is taken or mmengine's tracer runs."""
    if not torch.is_grad_enabled() or torch._C._get_tracing_state() is not None:
        return position_einsums(grid, fc_x, fc_y)
    x, y = _PositionScores.apply(grid, fc_x, fc_y)  # type: ignore[no-untyped-call]
    return x, y


def position_einsums(grid: Tensor, fc_x: Tensor, fc_y: Tensor) -> tuple[Tensor, Tensor]:
    return torch.einsum("nhyxd,hxld->nhyxl", grid, fc_x), torch.einsum("nhyxd,hykd->nhyxk", grid, fc_y)


def _as_value_dtype(scores: Scores, value: Tensor) -> Scores:
    return Scores(*(None if t is None else t.to(value.dtype) for t in scores))


def _separable_forward(
    scores: Scores, value: Tensor, window: Tensor | None, grid: tuple[int, int, int], piece: int
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The output, and what the backward needs: in one piece the attention, in several each query's
    log-sum-exp of the energy (n, heads, queries, 1), from which a piece's attention is recomputed."""
    queries = grid[0]
    n, heads, _, width = value.shape
    with torch.autocast(value.device.type, enabled=False):
        if piece >= queries:
            attention = _softmax(_piece_energy(scores, value, window, grid, slice(0, queries)))
            return torch.matmul(attention, value), attention, None
        out = value.new_empty(n, heads, queries, width)
        lse = value.new_empty((n, heads, queries, 1), dtype=torch.promote_types(value.dtype, torch.float32))
        for start in range(0, queries, piece):
            rows = slice(start, min(start + piece, queries))
            energy = _piece_energy(scores, value, window, grid, rows)
            attention, lse[:, :, rows] = _softmax_and_lse(energy, lse.dtype)
            out[:, :, rows] = torch.matmul(attention, value)
        return out, None, lse


def _piece_energy(
    scores: Scores, value: Tensor, window: Tensor | None, grid: tuple[int, int, int], rows: slice
) -> Tensor:
    """The energy of the queries ``rows``, outside the window -inf: a new (n, heads, len(rows), keys)."""
    queries, h_kv, w_kv = grid
    n, heads = value.shape[:2]
    size = len(range(*rows.indices(queries)))
    full = (n, heads, size, h_kv, w_kv)
    content, key, saliency, rel_x, rel_y = scores
    energy = None
    if content is not None and key is not None:
        energy = torch.matmul(content[:, :, rows], key.transpose(-1, -2)).view(full)
    terms = [] if saliency is None else [saliency.view(n, heads, 1, h_kv, w_kv)]
    if rel_x is not None and rel_y is not None:
        terms += [rel_x[:, :, rows].unsqueeze(3), rel_y[:, :, rows].unsqueeze(4)]
    for term in terms:  # a new tensor: a term of the full shape (one query) is not to be written in place
        energy = value.new_empty(full).copy_(term) if energy is None else energy.add_(term)
    if energy is None:  # 0000 with a window: all energies are equal
        energy = value.new_zeros(full)
    if window is not None:
        energy.masked_fill_(window[rows].view(size, h_kv, w_kv), float("-inf"))
    return energy.view(n, heads, size, h_kv * w_kv)


def _softmax_and_lse(energy: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """softmax(energy), in place where the energy is ``dtype``, and its log-sum-exp in ``dtype``: one pass
    of exp, where logsumexp and then the softmax from it would take two (and a copy of the energy)."""
    work = energy if energy.dtype == dtype else energy.to(dtype)
    top = work.amax(-1, keepdim=True)
    total = work.sub_(top).exp_().sum(-1, keepdim=True)
    return work.div_(total).to(energy.dtype), top.add_(total.log_())


def _attention_from(energy: Tensor, lse: Tensor) -> Tensor:
    """softmax(energy) from its log-sum-exp, in place where the energy is fp32."""
    if energy.dtype == lse.dtype:
        return energy.sub_(lse).exp_()
    return (energy.to(lse.dtype) - lse).exp_().to(energy.dtype)


def separable_attention(
    scores: Scores, value: Tensor, window: Tensor | None, grid: tuple[int, int, int], piece: int
) -> Tensor:
    """``_SeparableAttention``; without it where no gradient is taken (inference, and mmengine's FLOP count,
    whose tracer cannot follow a Python autograd Function)."""
    if not torch.is_grad_enabled() or torch._C._get_tracing_state() is not None:
        return _separable_forward(_as_value_dtype(scores, value), value, window, grid, piece)[0]
    out: Tensor = _SeparableAttention.apply(*scores, value, window, grid, piece)  # type: ignore[no-untyped-call]
    return out


def _softmax(energy: Tensor) -> Tensor:
    """The softmax over the last dimension, in place in fp32 (aten's kernel reads each row before writing
    it): one energy-sized tensor fewer to allocate; in fp32 for lower precisions, as autocast would."""
    if energy.dtype != torch.float32:
        return F.softmax(energy, dim=-1, dtype=torch.float32).to(energy.dtype)
    out: Tensor = torch.ops.aten._softmax.out(energy, -1, False, out=energy)
    return out


def _softmax_backward(grad: Tensor, attention: Tensor) -> Tensor:
    """The energy's gradient from the attention's (grad, overwritten in place, row by row) and the attention.

    aten's kernel reads a row of grad before writing it, as ``_softmax`` does its input."""
    out: Tensor = torch.ops.aten._softmax_backward_data.out(
        grad, attention, -1, attention.dtype, grad_input=grad
    )
    return out


def _sum_to(t: Tensor, size: torch.Size) -> Tensor:
    """t summed over the dimensions that are 1 in size (the broadcast ones)."""
    dims = [i for i, (a, b) in enumerate(zip(t.shape, size, strict=True)) if b == 1 and a != 1]
    return t.sum(dims, keepdim=True) if dims else t


def fused_attention(
    scores: Scores, value: Tensor, window: Tensor | None, grid: tuple[int, int, int]
) -> Tensor:
    """softmax(energy) @ value through scaled_dot_product_attention: (n, heads, queries, v_dim).

    The energy is the dot product of the augmented queries and keys of the module docstring.
    """
    n, heads, keys, _ = value.shape
    queries, h_kv, w_kv = grid
    dtype, device = value.dtype, value.device
    query_parts: list[Tensor] = []
    key_parts: list[Tensor] = []
    if scores.content is not None and scores.key is not None:
        query_parts.append(scores.content)
        key_parts.append(scores.key)
    if scores.saliency is not None:  # a column of ones against u . k
        query_parts.append(torch.ones((), device=device, dtype=dtype).expand(n, heads, queries, 1))
        key_parts.append(scores.saliency.unsqueeze(-1))
    if scores.rel_x is not None and scores.rel_y is not None:
        query_parts += [scores.rel_x, scores.rel_y]
        column = torch.eye(w_kv, device=device, dtype=dtype).repeat(h_kv, 1)  # key (k, l): one-hot of l
        row = torch.eye(h_kv, device=device, dtype=dtype).repeat_interleave(w_kv, dim=0)  # one-hot of k
        key_parts += [column, row]
    size = sum(t.shape[-1] for t in query_parts)  # 0 for 0000 (with a window): all energies are zero
    width = value.shape[-1]  # v_dim, or n v_dim for an energy the images share
    padded = -(-max(size, width) // _HEAD_ALIGNMENT) * _HEAD_ALIGNMENT

    def assemble(parts: list[Tensor], tokens: int) -> Tensor:  # one copy: the parts, then zeros
        parts = [t.to(dtype).expand(n, heads, tokens, t.shape[-1]) for t in parts]
        zeros = padded - sum(t.shape[-1] for t in parts)
        if zeros:
            parts.append(torch.zeros((), device=device, dtype=dtype).expand(n, heads, tokens, zeros))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0].contiguous()

    out = F.scaled_dot_product_attention(
        assemble(query_parts, queries),
        assemble(key_parts, keys),
        assemble([value], keys),
        attn_mask=None if window is None else ~window,
        scale=1.0,  # mmcv does not scale the energy
    )
    return out[..., :width] if padded != width else out
