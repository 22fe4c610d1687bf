"""The generalized attention module of Zhu et al. (2019), correct for all 16 attention types on any map.

A drop-in for mmcv's ``GeneralizedAttention``: the same constructor arguments, parameter names and shapes,
so an mmcv state_dict (a model-zoo checkpoint) loads with ``strict=True``. Importing this module registers it
in mmdet's model registry as ``AblationGeneralizedAttention``; the planner's configs import it through
``custom_imports = dict(imports=['ablation.model.attention'])``, so mmdet's own tools run them.

For a query at row i, column j of the (q_stride) query map and a key at row k, column l of the (kv_stride)
key map, the energy of each head is the sum of the terms the code's bits select::

    bit 1  query-key content         q(i,j) . k(k,l)
    bit 2  query content & position  q(i,j) . (Rx(j,l) + Ry(i,k))
    bit 3  key content only          u . k(k,l)
    bit 4  relative position only    v . (Rx(j,l) + Ry(i,k))

where Rx and Ry are the linear maps ``appr_geom_fc_x``/``_y`` of sinusoidal embeddings of the offsets
(j * q_stride - l * kv_stride) and (i * q_stride - k * kv_stride), times position_magnitude, over sqrt(2);
u is ``appr_bias`` and v is ``geom_bias``. Attention is the softmax over the keys, applied to the values and
projected back; the block returns ``gamma * out + x``.

Where mmcv 2.1.0 differs, this module follows the formula:

- codes that set bit 2 and clear bit 4 (0100, 0110, 1100, 1110): mmcv takes the y-term from the query as
  permuted for the x-term, which crashes on non-square maps and is silently transposed on square ones
  (mmdetection issue #8179);
- spatial_range >= 0: mmcv precomputes its window mask for maps of at most 84 (256 channels) or 42
  (512 channels) rows and columns and fails on anything else; here the mask is built for the map at hand.
  The window is mmcv's, with the query's row and column measured on the input (times q_stride) as in the
  position terms; mmcv measures them on the strided map (the same when q_stride is 1). mmcv's shortcut for
  code 0010 masks every query with the first query's window; here each query has its own;
- the mask is derived from the settings, so it is not a parameter: an mmcv state_dict's
  ``local_constraint_map`` is accepted on load and dropped.

Two implementations compute the same function with the same parameters (``implementation=``, one of
``IMPLEMENTATIONS``; the choice adds no parameter or buffer, so state_dicts are interchangeable):

- ``"reference"`` (the default) sums the terms over a materialised (n, heads, h, w, h_kv, w_kv) energy, then
  takes its softmax: memory grows with the product of the query and key map sizes;
- ``"sdpa"`` chooses per call the cheapest exact computation (``sdpa_path`` names it). Where no query attends
  differently (0000, 0010 without a window) it computes the one attention row on a weighted mean of the
  input. Else, at or below ``materialise_at_most`` energies (a small map) it builds the energy from the
  separable factors (``attention_kernels``) in one autograd Function that holds two energy-sized tensors
  instead of the reference's several. Above it, on the ``fused_devices`` (CUDA) it hands the whole block
  to torch's ``scaled_dot_product_attention``, whose fused kernels (flash or memory-efficient) compute
  softmax(energy) @ value tile by tile, forward and backward; on CPU the same Function computes the energy
  in pieces of whole queries (``chunk_energies``) and saves only each query's log-sum-exp, from which the
  backward pass recomputes a piece's attention: CPU's flash kernel needs the query's, key's and value's
  head sizes equal, and padding the value to the augmented query's size made it slower and larger.

Why ``"sdpa"`` is exact, and what its kernels keep for the backward pass, is told in
``ablation.model.attention_kernels``. gamma is folded into the output projection's weight and bias, so
that no map-sized product is kept for gamma's gradient. Codes whose energy depends on no image (0000 with
a window, 0001) attend once for the whole batch, its images' values side by side.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablation.model.attention_kernels import (
    Scores,
    fused_attention,
    position_einsums,
    position_scores,
    separable_attention,
)
from ablation.model.codes import AttentionCode
from ablation.model.modules import ATTENTION_IMPLEMENTATIONS, ATTENTION_MODULES

__all__ = ["IMPLEMENTATIONS", "REGISTERED_NAME", "GeneralizedAttention"]

REGISTERED_NAME, _ = ATTENTION_MODULES["ablation"]
_WAVE_LENGTH = 1000.0
_DERIVED_KEYS = ("local_constraint_map",)
IMPLEMENTATIONS = ATTENTION_IMPLEMENTATIONS  # the sweep setting's values: one list of them


class GeneralizedAttention(nn.Module):
    """Generalized attention over a feature map; arguments as mmcv's ``GeneralizedAttention``.

    Args:
        in_channels: channels of the input map.
        spatial_range: -1 for global attention; else each query sees the keys within this many pixels.
        num_heads: attention heads; the query/key size per head is in_channels // num_heads.
        position_embedding_dim: size of the relative position embedding (a multiple of 4;
            -1: in_channels).
        position_magnitude: factor on the relative offsets.
        kv_stride: stride at which keys and values are taken from the input.
        q_stride: stride at which queries are taken; the output is upsampled back (bilinear).
        attention_type: the 4-bit code, '0000'..'1111', bit 1 first.
        implementation: how the attention is computed, one of ``IMPLEMENTATIONS`` (not an mmcv argument):
            "reference" materialises the energy; "sdpa" uses torch's fused scaled_dot_product_attention.
    """

    _abbr_ = "gen_attention_block"  # mmcv's, so that parameter names in detectors match its checkpoints

    #: implementation="sdpa" materialises the energy where it has at most this many elements (n x heads x
    #: queries x keys; 2**23 is 32 MiB in fp32), and calls the fused kernel above: see ``sdpa_path``. Not a
    #: parameter or an argument: set it on a module (0: always fused) to choose the path by hand.
    materialise_at_most: int = 2**23
    #: Above it, where the device's fused kernel is not used ("chunked": CPU), the energy is computed in
    #: pieces of whole queries with at most this many elements each (2**21 is 8 MiB in fp32: a piece stays
    #: in the caches between its matmuls) and recomputed piece by piece in the backward pass.
    chunk_energies: int = 2**21
    #: The devices on which the path above materialise_at_most is torch's fused kernel: CUDA's flash and
    #: memory-efficient kernels. On CPU the flash kernel pads the value's head size to the query's, and the
    #: chunked path is faster and holds less (bench/attention.py).
    fused_devices: tuple[str, ...] = ("cuda",)

    def __init__(
        self,
        in_channels: int,
        spatial_range: int = -1,
        num_heads: int = 9,
        position_embedding_dim: int = -1,
        position_magnitude: int = 1,
        kv_stride: int = 2,
        q_stride: int = 1,
        attention_type: str = "1111",
        *,
        implementation: str = "reference",
    ) -> None:
        super().__init__()
        self.code = AttentionCode(attention_type)
        bits = [b == "1" for b in self.code.bits]
        self.attention_type = bits  # as mmcv keeps it
        self.in_channels = in_channels
        self.spatial_range = spatial_range
        self.num_heads = num_heads
        self.position_embedding_dim = position_embedding_dim if position_embedding_dim > 0 else in_channels
        self.position_magnitude = position_magnitude
        self.kv_stride = kv_stride
        self.q_stride = q_stride
        self.qk_embed_dim = self.v_dim = in_channels // num_heads
        self.implementation = implementation
        self._check_arguments()

        qk, pos, key_only, pos_only = bits
        inner = self.qk_embed_dim * num_heads
        if qk or pos:
            self.query_conv = nn.Conv2d(in_channels, inner, 1, bias=False)
        if qk or key_only:
            self.key_conv = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.value_conv = nn.Conv2d(in_channels, inner, 1, bias=False)
        if pos or pos_only:
            self.appr_geom_fc_x = nn.Linear(self.position_embedding_dim // 2, inner, bias=False)
            self.appr_geom_fc_y = nn.Linear(self.position_embedding_dim // 2, inner, bias=False)
        if key_only:
            self.appr_bias = nn.Parameter(torch.empty(inner))
        if pos_only:
            self.geom_bias = nn.Parameter(torch.empty(inner))
        self.proj_conv = nn.Conv2d(inner, in_channels, 1, bias=True)
        self.gamma = nn.Parameter(torch.zeros(1))
        # mmcv's strided sampling of the queries and keys (a 1x1 average: every stride-th pixel), None at
        # stride 1; no parameter, so state_dicts are unchanged
        self.q_downsample = nn.AvgPool2d(kernel_size=1, stride=q_stride) if q_stride > 1 else None
        self.kv_downsample = nn.AvgPool2d(kernel_size=1, stride=kv_stride) if kv_stride > 1 else None
        self.init_weights()

    def _check_arguments(self) -> None:
        problems = []
        if not 1 <= self.num_heads <= self.in_channels:
            problems.append(f"num_heads must be 1..in_channels ({self.in_channels}), got {self.num_heads}")
        if self.spatial_range < -1:
            problems.append(f"spatial_range must be -1 (global) or at least 0, got {self.spatial_range}")
        for name in ("kv_stride", "q_stride", "position_magnitude"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.implementation not in IMPLEMENTATIONS:
            valid = ", ".join(repr(name) for name in IMPLEMENTATIONS)
            problems.append(f"implementation must be one of {valid}, got {self.implementation!r}")
        uses_position = self.attention_type[1] or self.attention_type[3]
        if uses_position and self.position_embedding_dim % 4:
            problems.append(
                f"position_embedding_dim must be a multiple of 4 (sine and cosine per axis), "
                f"got {self.position_embedding_dim}"
            )
        if problems:
            raise ValueError(f"{REGISTERED_NAME}: " + "; ".join(problems))

    def init_weights(self) -> None:
        """mmcv's initialisation: Kaiming-uniform (fan in, a=1) weights, zero bias, small uniform biases."""
        layers = ("query_conv", "key_conv", "value_conv", "appr_geom_fc_x", "appr_geom_fc_y", "proj_conv")
        for layer in layers:
            module = getattr(self, layer, None)
            if module is not None:
                nn.init.kaiming_uniform_(module.weight, a=1, mode="fan_in", nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        bound = 1.0 / math.sqrt(self.qk_embed_dim * 2)
        for name in ("appr_bias", "geom_bias"):
            bias = getattr(self, name, None)
            if bias is not None:
                nn.init.uniform_(bias, -bound, bound)

    def extra_repr(self) -> str:
        return (
            f"attention_type={str(self.code)!r}, num_heads={self.num_heads}, kv_stride={self.kv_stride}, "
            f"q_stride={self.q_stride}, spatial_range={self.spatial_range}, "
            f"implementation={self.implementation!r}"
        )

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        x_q = x if self.q_downsample is None else self.q_downsample(x)
        x_kv = x if self.kv_downsample is None else self.kv_downsample(x)
        if self.implementation == "sdpa":
            out, queries = self._attend_efficiently(x_q, x_kv)
        else:
            out, queries = self._attend_materialised(x_q, x_kv, self._value(x_kv))
        out = out.permute(0, 1, 3, 2).reshape(n, self.num_heads * self.v_dim, *queries)
        # gamma * proj_conv(out), with gamma folded into the convolution's weight and bias: the product of
        # two tensors of the map's size would keep the projected map for gamma's gradient
        weight, bias = self.proj_conv.weight, self.proj_conv.bias
        out = F.conv2d(out, weight * self.gamma, None if bias is None else bias * self.gamma)
        if out.shape[2:] != x.shape[2:] and out.shape[2:] != (1, 1):
            out = F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=False)
        return out + x

    def sdpa_path(self, shape: tuple[int, ...], device: str = "cpu") -> str:
        """What ``implementation="sdpa"`` computes on ``device`` for an input of ``shape`` (n, c, h, w).

        "one query" where every query attends alike (0000, and 0010 without a window); else "materialised"
        where the energy (n x heads x queries x keys) has at most ``materialise_at_most`` elements; above
        that "fused" (torch's scaled_dot_product_attention) on the ``fused_devices``, "chunked" elsewhere.
        """
        n, _, height, width = shape
        queries = _strided(height, self.q_stride) * _strided(width, self.q_stride)
        keys = _strided(height, self.kv_stride) * _strided(width, self.kv_stride)
        return self._path(n, queries, keys, device)

    def _path(self, n: int, queries: int, keys: int, device: str) -> str:
        if self._query_independent():
            return "one query"
        if self._energies(n, queries, keys) <= self.materialise_at_most:
            return "materialised"
        return "fused" if device in self.fused_devices else "chunked"

    def _energies(self, n: int, queries: int, keys: int) -> int:
        """The elements of the energy: n (1 where no image changes it) x heads x queries x keys."""
        return (1 if self._image_independent() else n) * self.num_heads * queries * keys

    def _image_independent(self) -> bool:
        """Whether the energy is the same for every image of a batch (0000, 0001: no content term)."""
        qk, pos, key_only, _ = self.attention_type
        return not (qk or pos or key_only)

    def _query_independent(self) -> bool:
        """Whether every query attends alike (0000, 0010 without a window): the one-query shortcut applies."""
        qk, pos, _, pos_only = self.attention_type
        return not (qk or pos or pos_only) and self.spatial_range < 0

    def _value(self, x_kv: Tensor) -> Tensor:
        """The values: (n, heads, h_kv * w_kv, v_dim)."""
        n, _, h_kv, w_kv = x_kv.shape
        value: Tensor = self.value_conv(x_kv)
        return value.view(n, self.num_heads, self.v_dim, h_kv * w_kv).transpose(-1, -2)

    def _attend_materialised(
        self, x_q: Tensor, x_kv: Tensor, value: Tensor
    ) -> tuple[Tensor, tuple[int, int]]:
        """The reference: softmax of the full energy, times the values; (n, heads, queries, v_dim), queries.

        queries is (h, w), or (1, 1) when no query attends differently from another.
        """
        h, w = x_q.shape[2:]
        h_kv, w_kv = x_kv.shape[2:]
        energy = self._energy(x_q, x_kv)  # (n or 1, heads, h or 1, w or 1, h_kv, w_kv)
        if self.spatial_range >= 0:
            energy = energy.masked_fill(self._outside_window(h, w, h_kv, w_kv, x_q.device), float("-inf"))
        queries = energy.shape[2:4]
        attention = F.softmax(energy.flatten(-2).flatten(2, 3), dim=-1)  # (., heads, queries, keys)
        return torch.matmul(attention, value), (queries[0], queries[1])

    def _attend_efficiently(self, x_q: Tensor, x_kv: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """implementation="sdpa": (n, heads, queries, v_dim) and queries, by the path ``sdpa_path`` names."""
        n, _, h, w = x_q.shape
        h_kv, w_kv = x_kv.shape[2:]
        path = self._path(n, h * w, h_kv * w_kv, x_q.device.type)
        if path == "one query":
            return self._attend_one_query(x_kv), (1, 1)
        scores = self._scores(x_q, x_kv, lean=path != "materialised")
        value = self._value(x_kv)
        heads, keys = value.shape[1:3]
        window = None
        if self.spatial_range >= 0:
            window = self._outside_window(h, w, h_kv, w_kv, x_q.device).view(h * w, h_kv * w_kv)
        shared = self._image_independent() and n > 1
        if shared:  # one attention for the batch: its images' values side by side, (1, heads, keys, n v_dim)
            value = value.permute(1, 2, 0, 3).reshape(1, heads, keys, n * self.v_dim)
        if path == "fused":
            out = fused_attention(scores, value, window, (h * w, h_kv, w_kv))
        else:  # one piece where materialised; pieces of chunk_energies where chunked
            per_query = self._energies(n, 1, h_kv * w_kv)
            piece = h * w if path == "materialised" else max(1, self.chunk_energies // per_query)
            out = separable_attention(scores, value, window, (h * w, h_kv, w_kv), piece)
        if shared:
            out = out.view(heads, h * w, n, self.v_dim).permute(2, 0, 1, 3)
        return out, (h, w)

    def _attend_one_query(self, x_kv: Tensor) -> Tensor:
        """The one attention row of 0000 and of 0010 without a window: (n, heads, 1, v_dim).

        The values are linear in the input (value_conv has no bias): sum_s a(s) W_v x(s) equals
        W_v sum_s a(s) x(s), so the projection runs on one weighted mean of the input per head instead of
        on every key.
        """
        channels = x_kv.shape[1]
        pixels = x_kv.flatten(2)  # (n, channels, keys)
        weight = self.value_conv.weight.view(self.num_heads, self.v_dim, channels)
        if self.attention_type[2]:  # 0010: the softmax of u . k over the keys, the same for every query
            attention = F.softmax(self._saliency(x_kv), dim=-1)  # (n, heads, keys)
            mean = torch.einsum("nhs,ncs->nhc", attention, pixels.to(attention.dtype))
            return torch.einsum("hdc,nhc->nhd", weight, mean).unsqueeze(2)
        return torch.einsum("hdc,nc->nhd", weight, pixels.mean(-1)).unsqueeze(2)  # 0000: uniform

    def _saliency(self, x_kv: Tensor) -> Tensor:
        """u . k(k, l) for every key, (n, heads, h_kv * w_kv): k = W_k x is linear (key_conv has no bias), so
        u . W_k x = (W_k^T u) . x, one channel per head instead of the keys' qk_embed_dim."""
        heads, dim = self.num_heads, self.qk_embed_dim
        weight = self.key_conv.weight.view(heads, dim, -1)
        folded = torch.einsum("hd,hdc->hc", self.appr_bias.view(heads, dim).to(weight.dtype), weight)
        return torch.einsum("hc,ncs->nhs", folded, x_kv.flatten(2))

    def _scores(self, x_q: Tensor, x_kv: Tensor, lean: bool) -> Scores:
        """The factors of the energy (see the module docstring), the position terms per key row and column.

        lean (a map too large to materialise its energy): nothing of the query's size is kept but the query:
        (q + u) . k is q . k + u . k, and the query's position scores keep no copy of the query for the
        backward pass (``_PositionScores``, which makes the copies again there). Else, on a map small enough
        to materialise its energy, the copies are a few MB and time shows more: u is added to the query once,
        where u . k would be one more pass over the energy, and autograd's einsums keep their copies."""
        qk, pos, key_only, pos_only = self.attention_type
        heads, dim = self.num_heads, self.qk_embed_dim
        n, _, h, w = x_q.shape
        h_kv, w_kv = x_kv.shape[2:]
        query: Tensor | None = None
        if qk or pos:  # (n, heads, h * w, dim)
            query = self.query_conv(x_q).view(n, heads, dim, h * w).transpose(-1, -2)
        content = key = saliency = rel_x = rel_y = None
        u_on_query = qk and key_only and not lean
        if qk and query is not None:
            key = self.key_conv(x_kv).view(n, heads, dim, h_kv * w_kv).transpose(-1, -2)
            content = query + self.appr_bias.view(1, heads, 1, dim) if u_on_query else query
        if key_only and not u_on_query:
            saliency = self._saliency(x_kv)
        if pos or pos_only:  # (q + v) . R as q . R + v . R, likewise
            fc_x, fc_y = self._relative_position(h, w, h_kv, w_kv, x_q)
            terms: list[tuple[Tensor, Tensor]] = []
            if pos and query is not None:
                scores = position_scores if lean else position_einsums
                terms.append(scores(query.view(n, heads, h, w, dim), fc_x, fc_y))
            if pos_only:  # v . Rx(j, l) and v . Ry(i, k): no image, and no query row or column, changes them
                v = self.geom_bias.view(heads, 1, 1, dim)
                terms.append(((fc_x * v).sum(-1)[None, :, None], (fc_y * v).sum(-1)[None, :, :, None]))
            rel_x = _sum([t[0] for t in terms])
            rel_y = _sum([t[1] for t in terms])
            assert rel_x is not None and rel_y is not None
            rows = rel_x.shape[0]  # n, or 1 for v alone
            rel_x = rel_x.expand(rows, heads, h, w, w_kv).reshape(rows, heads, h * w, w_kv)
            rel_y = rel_y.expand(rows, heads, h, w, h_kv).reshape(rows, heads, h * w, h_kv)
        return Scores(content, key, saliency, rel_x, rel_y)

    def _energy(self, x_q: Tensor, x_kv: Tensor) -> Tensor:
        qk, pos, key_only, pos_only = self.attention_type
        heads, dim = self.num_heads, self.qk_embed_dim
        n, _, h, w = x_q.shape
        h_kv, w_kv = x_kv.shape[2:]

        def bias(parameter: Tensor) -> Tensor:
            return parameter.view(1, heads, 1, 1, dim)

        query = None
        if qk or pos:  # (n, heads, h, w, dim)
            query = self.query_conv(x_q).view(n, heads, dim, h, w).permute(0, 1, 3, 4, 2)
        terms: list[Tensor | None] = []
        content = _sum([query if qk else None, bias(self.appr_bias) if key_only else None])
        if content is not None:
            key = self.key_conv(x_kv).view(n, heads, dim, h_kv, w_kv)
            terms.append(torch.einsum("nhyxd,nhdkl->nhyxkl", content, key))

        position = _sum([query if pos else None, bias(self.geom_bias) if pos_only else None])
        if position is not None:
            rel_x, rel_y = self._relative_position(h, w, h_kv, w_kv, x_q)
            term_x = torch.einsum("nhyxd,hxld->nhyxl", position, rel_x)
            term_y = torch.einsum("nhyxd,hykd->nhyxk", position, rel_y)
            terms.append(term_x.unsqueeze(4) + term_y.unsqueeze(5))
        energy = _sum(terms)
        return x_q.new_zeros(1, heads, 1, 1, h_kv, w_kv) if energy is None else energy  # 0000: all equal

    def _relative_position(self, h: int, w: int, h_kv: int, w_kv: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """Rx (heads, w, w_kv, dim) and Ry (heads, h, h_kv, dim): the position features of every offset."""

        def features(n_q: int, n_kv: int, fc: nn.Linear) -> Tensor:
            offsets = self._offsets(n_q, n_kv, like.device, torch.promote_types(like.dtype, torch.float32))
            embedding = _sinusoid(offsets, self.position_embedding_dim).to(like.dtype)
            projected: Tensor = fc(embedding) / math.sqrt(2)
            return projected.view(n_q, n_kv, self.num_heads, self.qk_embed_dim).permute(2, 0, 1, 3)

        return features(w, w_kv, self.appr_geom_fc_x), features(h, h_kv, self.appr_geom_fc_y)

    def _offsets(self, n_q: int, n_kv: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Query minus key coordinate on the input, times position_magnitude: (n_q, n_kv), at least fp32."""
        q = torch.arange(n_q, device=device, dtype=dtype) * self.q_stride
        kv = torch.arange(n_kv, device=device, dtype=dtype) * self.kv_stride
        return (q[:, None] - kv[None, :]) * self.position_magnitude

    def _outside_window(self, h: int, w: int, h_kv: int, w_kv: int, device: torch.device) -> Tensor:
        """True where key (k, l) is outside the spatial_range window of query (i, j): (h, w, h_kv, w_kv)."""

        def inside(n_q: int, n_kv: int) -> Tensor:
            centre = torch.arange(n_q, device=device) * self.q_stride
            first = torch.div(centre - self.spatial_range, self.kv_stride, rounding_mode="floor")
            last = torch.div(centre + self.spatial_range + 1, self.kv_stride, rounding_mode="floor")
            kv = torch.arange(n_kv, device=device)
            return (kv[None, :] >= first[:, None]) & (kv[None, :] <= last[:, None])

        rows, cols = inside(h, h_kv), inside(w, w_kv)
        return ~(rows[:, None, :, None] & cols[None, :, None, :])

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for key in _DERIVED_KEYS:
            state_dict.pop(prefix + key, None)
        super()._load_from_state_dict(state_dict, prefix, *args)


def _sum(terms: list[Tensor | None]) -> Tensor | None:
    present = [t for t in terms if t is not None]
    return functools.reduce(operator.add, present) if present else None


def _strided(size: int, stride: int) -> int:
    """The length of a map side after the 1x1 average pool of ``stride`` (q_downsample, kv_downsample)."""
    return (size - 1) // stride + 1


def _sinusoid(offsets: Tensor, size: int) -> Tensor:
    """sin and cos of offsets over wavelengths 1000^(4k/size), k < size/4: (..., size/2)."""
    k = torch.arange(size // 4, device=offsets.device, dtype=offsets.dtype)
    wavelengths = _WAVE_LENGTH ** ((4.0 / size) * k)
    angles = offsets[..., None] / wavelengths
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


def _register() -> None:
    from mmdet.registry import MODELS

    MODELS.register_module(name=REGISTERED_NAME, module=GeneralizedAttention, force=True)


_register()
