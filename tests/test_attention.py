"""Our GeneralizedAttention against mmcv's, against the paper's formula, and under autocast.

The formula reference below is written from the definition, not from the module: it builds the relative
offset of every (query, key) pair explicitly and sums the four energy terms with einsum over the full
(query, key) grid, where the module works axis by axis.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_plugin_layer
from mmcv.cnn.bricks.generalized_attention import GeneralizedAttention as MmcvAttention
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope
from torch import Tensor

from ablation import ALL_CODES, BadCodeError
from ablation.model.attention import REGISTERED_NAME, GeneralizedAttention

CODES = [str(c) for c in ALL_CODES]
BROKEN_IN_MMCV = ["0100", "0110", "1100", "1110"]  # bit 2 on, bit 4 off: mmdetection issue #8179
CORRECT_IN_MMCV = [c for c in CODES if c not in BROKEN_IN_MMCV]

CHANNELS = 32
SHAPE = (2, CHANNELS, 11, 17)  # odd and not square, as COCO's feature maps are
SETTINGS: dict[str, dict[str, Any]] = {
    "the study's": dict(num_heads=4, kv_stride=2),
    "no strides": dict(num_heads=4, kv_stride=1),
    "query stride": dict(num_heads=2, kv_stride=1, q_stride=2),
    "uneven heads, strides, embedding size, magnitude": dict(
        num_heads=3, kv_stride=3, q_stride=2, position_embedding_dim=16, position_magnitude=3
    ),
    "window": dict(num_heads=4, kv_stride=2, spatial_range=2),
    "window and query stride": dict(num_heads=8, kv_stride=2, q_stride=2, spatial_range=3),
}
GLOBAL_SETTINGS = [name for name, kwargs in SETTINGS.items() if kwargs.get("spatial_range", -1) < 0]


def our_module(code: str, in_channels: int = CHANNELS, **kwargs: Any) -> GeneralizedAttention:
    """Our module with gamma non-zero (at 0, as initialised, the block returns its input)."""
    torch.manual_seed(0)
    module = GeneralizedAttention(in_channels, attention_type=code, **kwargs)
    with torch.no_grad():
        module.gamma.fill_(0.7)
    return module


def module_pair(
    code: str, in_channels: int = CHANNELS, **kwargs: Any
) -> tuple[MmcvAttention, GeneralizedAttention]:
    """mmcv's module and ours with the same weights, gamma non-zero."""
    torch.manual_seed(0)
    theirs = MmcvAttention(in_channels, attention_type=code, **kwargs)
    with torch.no_grad():
        theirs.gamma.fill_(0.7)
    ours = GeneralizedAttention(in_channels, attention_type=code, **kwargs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs, ours


def output_and_input_grad(module: torch.nn.Module | Any, x: Tensor, seed: int = 1) -> tuple[Tensor, Tensor]:
    x = x.detach().clone().requires_grad_(True)
    y = module(x)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
    (y * weights).sum().backward()
    assert x.grad is not None
    return y.detach(), x.grad


def formula(m: GeneralizedAttention, x: Tensor) -> Tensor:
    """The block's output from the definition in Zhu et al. (2019) and mmcv's argument conventions."""
    p = dict(m.named_parameters())
    qk, pos, key_only, pos_only = (b == "1" for b in m.code.bits)
    heads, dim = m.num_heads, m.in_channels // m.num_heads
    qs, kvs, size = m.q_stride, m.kv_stride, m.position_embedding_dim

    # mmcv's strides are 1x1 average pools: every s-th pixel
    x_q, x_kv = F.avg_pool2d(x, 1, qs), F.avg_pool2d(x, 1, kvs)
    h, w, h_kv, w_kv = *x_q.shape[2:], *x_kv.shape[2:]

    def conv(name: str, t: Tensor) -> Tensor:  # 1x1 conv, channels last, split into heads
        return torch.einsum("oc,ncyx->nyxo", p[name + ".weight"][:, :, 0, 0], t).unflatten(-1, (heads, dim))

    # every (query, key) pair, in input pixels: query (qy, qx), key (ky, kx)
    qy, qx = torch.meshgrid(torch.arange(h) * qs, torch.arange(w) * qs, indexing="ij")
    ky, kx = torch.meshgrid(torch.arange(h_kv) * kvs, torch.arange(w_kv) * kvs, indexing="ij")
    dy = (qy[:, :, None, None] - ky[None, None]) * m.position_magnitude  # (h, w, h_kv, w_kv)
    dx = (qx[:, :, None, None] - kx[None, None]) * m.position_magnitude

    def embed(offset: Tensor) -> Tensor:
        frequencies = [1000.0 ** (-4.0 * i / size) for i in range(size // 4)]
        angles = torch.stack([offset * f for f in frequencies], dim=-1)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    energy = torch.zeros(x.shape[0], heads, h, w, h_kv, w_kv)
    if pos or pos_only:  # R(q, k) per head: (h, w, h_kv, w_kv, heads, dim)
        rel_x, rel_y = embed(dx) @ p["appr_geom_fc_x.weight"].T, embed(dy) @ p["appr_geom_fc_y.weight"].T
        rel = ((rel_x + rel_y) / math.sqrt(2)).unflatten(-1, (heads, dim))
    if qk or key_only:
        key = conv("key_conv", x_kv)
    if qk or pos:
        query = conv("query_conv", x_q)
    if qk:
        energy = energy + torch.einsum("nyxhd,nklhd->nhyxkl", query, key)
    if pos:
        energy = energy + torch.einsum("nyxhd,yxklhd->nhyxkl", query, rel)
    if key_only:
        u = p["appr_bias"].view(heads, dim)
        energy = energy + torch.einsum("hd,nklhd->nhkl", u, key)[:, :, None, None]
    if pos_only:
        v = p["geom_bias"].view(heads, dim)
        energy = energy + torch.einsum("hd,yxklhd->hyxkl", v, rel)[None]

    if m.spatial_range >= 0:  # mmcv's window: key rows floor((y - r) / s) .. floor((y + r + 1) / s)
        r = m.spatial_range

        def inside(q: Tensor, k: Tensor) -> Tensor:
            index = k // kvs
            return (index >= torch.floor((q - r) / kvs)) & (index <= torch.floor((q + r + 1) / kvs))

        window = inside(qy[:, :, None, None], ky[None, None]) & inside(qx[:, :, None, None], kx[None, None])
        energy = energy.masked_fill(~window, float("-inf"))

    attention = energy.flatten(-2).softmax(-1).unflatten(-1, (h_kv, w_kv))
    value = conv("value_conv", x_kv)
    out = torch.einsum("nhyxkl,nklhd->nhdyx", attention, value).flatten(1, 2)
    out = torch.einsum("oc,ncyx->noyx", p["proj_conv.weight"][:, :, 0, 0], out)
    out = out + p["proj_conv.bias"][None, :, None, None]
    if qs > 1:
        out = F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=False)
    return p["gamma"] * out + x


def assert_close(ours: Tensor, theirs: Tensor, what: str, tolerance: float = 1e-5) -> None:
    diff = (ours - theirs).abs().max().item()
    assert diff <= tolerance, f"{what}: max abs diff {diff:.3g} > {tolerance}"


@pytest.mark.parametrize("setting", GLOBAL_SETTINGS)
@pytest.mark.parametrize("code", CORRECT_IN_MMCV)
def test_equals_mmcv_where_mmcv_is_right(code: str, setting: str) -> None:
    theirs, ours = module_pair(code, **SETTINGS[setting])
    x = torch.randn(SHAPE)
    y_theirs, grad_theirs = output_and_input_grad(theirs, x)
    y_ours, grad_ours = output_and_input_grad(ours, x)
    assert_close(y_ours, y_theirs, "output")
    assert_close(grad_ours, grad_theirs, "input gradient")
    for name, parameter in ours.named_parameters():
        assert parameter.grad is not None, name
        assert_close(parameter.grad, dict(theirs.named_parameters())[name].grad, f"gradient of {name}", 1e-4)


@pytest.mark.parametrize("code", [c for c in CORRECT_IN_MMCV if c != "0010"])
def test_equals_mmcv_with_a_spatial_window(code: str) -> None:
    """mmcv builds its window mask only for 256 or 512 channels, so this runs at 256."""
    theirs, ours = module_pair(code, in_channels=256, num_heads=8, kv_stride=2, spatial_range=2)
    x = torch.randn(1, 256, 9, 14)
    y_theirs, grad_theirs = output_and_input_grad(theirs, x)
    y_ours, grad_ours = output_and_input_grad(ours, x)
    assert_close(y_ours, y_theirs, "output")
    assert_close(grad_ours, grad_theirs, "input gradient")


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("code", CODES)
def test_equals_the_formula(code: str, setting: str) -> None:
    module = our_module(code, **SETTINGS[setting])
    x = torch.randn(SHAPE)
    y, grad = output_and_input_grad(module, x)
    y_ref, grad_ref = output_and_input_grad(lambda t: formula(module, t), x)
    assert_close(y, y_ref, "output")
    assert_close(grad, grad_ref, "input gradient")


@pytest.mark.parametrize("code", BROKEN_IN_MMCV)
def test_mmcv_still_gets_the_four_codes_wrong(code: str) -> None:
    """When this fails, upstream has fixed GeneralizedAttention: the `module = "mmcv"` note can change."""
    theirs, ours = module_pair(code, num_heads=4, kv_stride=2)
    with pytest.raises(RuntimeError, match="must match the size"):
        theirs(torch.randn(SHAPE))  # not square: mmcv crashes
    square = torch.randn(2, CHANNELS, 12, 12)
    with torch.no_grad():
        wrong = (theirs(square) - formula(ours, square)).abs().max().item()
        right = (ours(square) - formula(ours, square)).abs().max().item()
    assert right <= 1e-5
    assert wrong > 1e-2, f"mmcv's {code} now matches the formula on square maps"


def test_mmcv_s_key_content_shortcut_gives_every_query_the_first_query_s_window() -> None:
    theirs, ours = module_pair("0010", in_channels=256, num_heads=8, kv_stride=2, spatial_range=1)
    x = torch.randn(1, 256, 9, 14)
    with torch.no_grad():
        assert_close(ours(x), formula(ours, x), "ours")
        assert (theirs(x) - formula(ours, x)).abs().max().item() > 1e-2


@pytest.mark.parametrize("code", ["1111", "0010", "0100"])
def test_windows_work_for_any_channels_and_map_size(code: str) -> None:
    """mmcv's window mask exists for 256 or 512 channels and maps of at most 84 or 42 pixels a side."""
    module = our_module(code, num_heads=4, kv_stride=2, spatial_range=4)
    x = torch.randn(1, CHANNELS, 90, 7)
    with torch.no_grad():
        assert_close(module(x), formula(module, x), "output")


@pytest.mark.parametrize("code", CODES)
def test_mmcv_state_dicts_load_strictly_both_ways(code: str) -> None:
    theirs, ours = module_pair(code, num_heads=8, kv_stride=2)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    fresh = MmcvAttention(CHANNELS, num_heads=8, kv_stride=2, attention_type=code)
    fresh.load_state_dict(ours.state_dict(), strict=True)


@pytest.mark.parametrize(("q_stride", "kv_stride"), [(1, 1), (2, 1), (1, 2), (3, 2)])
def test_has_mmcv_s_downsampling_modules(q_stride: int, kv_stride: int) -> None:
    """Code that inspects a plugin reads q_downsample / kv_downsample (mmcv's own unit test does): a 1x1
    average pool of the stride, None at stride 1, as mmcv builds them; the output is still mmcv's."""
    theirs, ours = module_pair("1011", num_heads=4, q_stride=q_stride, kv_stride=kv_stride)
    for name, stride in (("q_downsample", q_stride), ("kv_downsample", kv_stride)):
        mine, mmcv = getattr(ours, name), getattr(theirs, name)
        assert (mine is None) == (mmcv is None) == (stride == 1), name
        if stride > 1:
            assert isinstance(mine, torch.nn.AvgPool2d) and repr(mine) == repr(mmcv)
    x = torch.randn(*SHAPE)
    with torch.no_grad():
        assert_close(ours(x), theirs(x), "output")


def test_mmcv_s_precomputed_window_mask_is_accepted_and_dropped() -> None:
    theirs, ours = module_pair("1111", in_channels=256, num_heads=8, spatial_range=2)
    assert "local_constraint_map" in theirs.state_dict()
    assert "local_constraint_map" not in ours.state_dict()
    fresh = GeneralizedAttention(256, num_heads=8, spatial_range=2)
    fresh.load_state_dict(theirs.state_dict(), strict=True)


def test_initialisation_draws_like_mmcv_s() -> None:
    torch.manual_seed(3)
    theirs = MmcvAttention(256, num_heads=8, attention_type="1111")
    torch.manual_seed(3)
    ours = GeneralizedAttention(256, num_heads=8, attention_type="1111")
    for name, parameter in ours.named_parameters():
        mine, other = parameter.detach(), dict(theirs.named_parameters())[name].detach()
        assert mine.shape == other.shape
        if mine.numel() == 1:  # gamma
            assert mine.item() == other.item() == 0.0
            continue
        for statistic in (torch.std, lambda t: t.abs().max()):
            expected = statistic(other).item()
            assert abs(statistic(mine).item() - expected) <= 0.1 * expected, name


DEVICES = [("cpu", torch.bfloat16), ("cpu", torch.float16)]
if torch.cuda.is_available():
    DEVICES.append(("cuda", torch.float16))


@pytest.mark.parametrize(("device", "dtype"), DEVICES, ids=lambda v: str(v).replace("torch.", ""))
@pytest.mark.parametrize("code", CODES)
def test_runs_under_autocast(code: str, device: str, dtype: torch.dtype) -> None:
    module = our_module(code, num_heads=4, kv_stride=2, spatial_range=-1 if code != "1111" else 3).to(device)
    x = torch.randn(SHAPE, device=device)
    exact = module(x).detach()
    x.requires_grad_(True)
    with torch.autocast(device, dtype=dtype):
        y = module(x)
    y.sum().backward()
    assert y.dtype == torch.float32  # the residual sum promotes back to the input's type
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
    scale = exact.abs().max().item()
    assert_close(y.detach(), exact, f"{dtype} against fp32", tolerance=0.05 * scale)


def test_is_registered_in_mmdet_and_named_as_mmcv_s_plugin() -> None:
    assert MODELS.get(REGISTERED_NAME) is GeneralizedAttention
    with DefaultScope.overwrite_default_scope("mmdet"):  # as in a detector built from a config
        name, layer = build_plugin_layer(
            dict(type=REGISTERED_NAME, num_heads=8, attention_type="0110"), in_channels=64
        )
    assert name == "gen_attention_block" and isinstance(layer, GeneralizedAttention)


def test_bad_arguments_are_refused_with_the_valid_values() -> None:
    with pytest.raises(BadCodeError, match=r"'0000'\.\.'1111'"):
        GeneralizedAttention(32, attention_type="0120")
    with pytest.raises(ValueError, match=r"position_embedding_dim must be a multiple of 4.*got 6"):
        GeneralizedAttention(32, position_embedding_dim=6)
    with pytest.raises(ValueError, match=r"num_heads must be 1\.\.in_channels \(32\), got 64"):
        GeneralizedAttention(32, num_heads=64)
    with pytest.raises(ValueError, match="spatial_range must be -1"):
        GeneralizedAttention(32, spatial_range=-2)
    GeneralizedAttention(32, position_embedding_dim=6, attention_type="1010")  # no position terms: fine
