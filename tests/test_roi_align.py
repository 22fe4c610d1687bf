"""ablation's RoIAlign (torch ops on CPU) against mmcv's compiled op: the same layer, the same numbers.

Every case pools one batch of RoIs that holds boxes inside the map, across each border, entirely outside it
(near and far), smaller than a pixel (and of zero size), far larger than the image, and boxes whose samples
fall exactly on mmcv's borders (-1, 0, h - 1 and h): the output and the map's gradient must match mmcv's op
in float64 (to rounding) and float32 (within 1e-4 of the values' scale), at every FPN level's spatial_scale,
aligned or not, with sampling_ratio 0 (adaptive), 1 and 2, and RoIs on several images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from mmcv.ops import RoIAlign as MmcvRoIAlign
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.structures import DetDataSample
from mmengine.analysis import FlopAnalyzer
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from ablation import AttentionCode, SweepFileError, load_sweep, plan
from ablation.grid.cells import Selection
from ablation.model import roi_align as module
from ablation.model.roi_align import REGISTERED_NAME, RoIAlign, roi_align

from .helpers.cli import REPO, write_sweep
from .helpers.detector import build, in_a_fresh_process

IMAGES, CHANNELS, HEIGHT, WIDTH = 3, 5, 96, 136  # the input image; each level's map is it / stride
STRIDES = (4, 8, 16, 32)


def boxes(stride: int, aligned: bool, seed: int = 0) -> torch.Tensor:
    """(k, 5) RoIs on IMAGES images, in image pixels, of every kind the module doc lists."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(k: int, low: float, high: float) -> torch.Tensor:
        return torch.empty(k).uniform_(low, high, generator=generator)

    def corners(x1: torch.Tensor, y1: torch.Tensor, w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.stack((x1, y1, x1 + w, y1 + h), 1)

    kinds = [
        corners(
            uniform(12, 0, WIDTH - 40), uniform(12, 0, HEIGHT - 40), uniform(12, 4, 40), uniform(12, 4, 40)
        ),
        # across each border
        corners(uniform(4, -30, -2), uniform(4, 0, HEIGHT - 30), uniform(4, 10, 60), uniform(4, 5, 30)),
        corners(uniform(4, WIDTH - 30, WIDTH - 2), uniform(4, 0, 60), uniform(4, 10, 60), uniform(4, 5, 30)),
        corners(uniform(4, 0, WIDTH - 30), uniform(4, -30, -2), uniform(4, 5, 30), uniform(4, 10, 60)),
        corners(
            uniform(4, 0, 90), uniform(4, HEIGHT - 30, HEIGHT - 2), uniform(4, 5, 30), uniform(4, 10, 60)
        ),
        # outside: just beyond the border (within mmcv's one pixel) and far
        corners(
            uniform(3, -1.5 * stride, -1.0 * stride),
            uniform(3, 0, 60),
            uniform(3, 0.2, 1.0) * stride,
            uniform(3, 5, 20),
        ),
        corners(
            uniform(3, WIDTH + 1, WIDTH + 300), uniform(3, -200, 300), uniform(3, 1, 100), uniform(3, 1, 100)
        ),
        # smaller than a pixel of the map, and of zero size
        corners(
            uniform(4, 0, WIDTH),
            uniform(4, 0, HEIGHT),
            uniform(4, 0, 0.9) * stride,
            uniform(4, 0, 0.9) * stride,
        ),
        corners(uniform(2, 0, WIDTH), uniform(2, 0, HEIGHT), torch.zeros(2), torch.zeros(2)),
        # far larger than the image
        corners(uniform(3, -600, -100), uniform(3, -400, -50), uniform(3, 800, 2000), uniform(3, 600, 1500)),
    ]
    # samples exactly on the borders: RoIs one map pixel wide, one sample per bin, centred on -1, 0, h - 1, h
    # (and the same on x); the -0.5 pixel of aligned=True is undone
    shift = 0.5 if aligned else 0.0
    for centre in (-1.0, 0.0, HEIGHT / stride - 1, HEIGHT / stride):
        y1 = (centre - 0.5 + shift) * stride
        kinds.append(
            torch.tensor([[(centre + 2 + shift) * stride, y1, (centre + 3 + shift) * stride, y1 + stride]])
        )
    for centre in (-1.0, 0.0, WIDTH / stride - 1, WIDTH / stride):
        x1 = (centre - 0.5 + shift) * stride
        kinds.append(torch.tensor([[x1, 10.0, x1 + stride, 10.0 + stride]]))
    if not aligned:  # mmcv's legacy mode takes an inverted box as a 1x1 one
        kinds.append(torch.tensor([[50.0, 40.0, 30.0, 20.0]]))
    found = torch.cat(kinds)
    image = torch.arange(len(found)) % IMAGES
    return torch.cat((image[:, None].float(), found), 1)


def both(
    x: torch.Tensor, rois: torch.Tensor, **arguments: Any
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(output, the map's gradient) of mmcv's layer and ours, for one fixed output gradient."""
    results = []
    for layer in (MmcvRoIAlign(**arguments), RoIAlign(**arguments)):
        leaf = x.clone().requires_grad_()
        out = layer(leaf, rois.to(x.dtype))
        weights = torch.linspace(-1, 1, out.numel(), dtype=x.dtype).view_as(out)
        (out * weights).sum().backward()
        assert leaf.grad is not None
        results.append((out.detach(), leaf.grad))
    return results[0], results[1]


def assert_equal(theirs: torch.Tensor, ours: torch.Tensor, what: str) -> None:
    assert ours.shape == theirs.shape, what
    scale = max(theirs.abs().max().item(), 1.0) if theirs.numel() else 1.0
    tolerance = 1e-10 if theirs.dtype == torch.float64 else 1e-4 * scale
    difference = (ours - theirs).abs().max().item() if theirs.numel() else 0.0
    assert difference <= tolerance, f"{what}: max difference {difference:.3g}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("sampling_ratio", [0, 1, 2])
@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "legacy"])
@pytest.mark.parametrize("stride", STRIDES)
def test_the_output_and_the_map_s_gradient_are_mmcv_s(
    stride: int, aligned: bool, sampling_ratio: int, dtype: torch.dtype
) -> None:
    generator = torch.Generator().manual_seed(stride)
    x = torch.randn(IMAGES, CHANNELS, HEIGHT // stride, WIDTH // stride, generator=generator, dtype=dtype)
    rois = boxes(stride, aligned)
    arguments = dict(output_size=7, spatial_scale=1 / stride, sampling_ratio=sampling_ratio, aligned=aligned)
    (out_mmcv, grad_mmcv), (out_ours, grad_ours) = both(x, rois, **arguments)
    assert_equal(out_mmcv, out_ours, "output")
    assert_equal(grad_mmcv, grad_ours, "gradient")
    assert out_mmcv.abs().sum() > 0 and grad_mmcv.abs().sum() > 0  # not trivially zero


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "legacy"])
def test_a_sample_exactly_on_a_border_follows_mmcv_s_rule(aligned: bool) -> None:
    """One sample per RoI (a 1x1 output, sampling_ratio 1), on rows from just beyond -1 to just beyond h:
    at -1 and at h it is still the map's edge row; beyond, zero; between, the clamped interpolation."""
    height, width, stride = 6, 5, 4
    x = torch.randn(
        1, CHANNELS, height, width, generator=torch.Generator().manual_seed(6), dtype=torch.float64
    )
    shift = 0.0 if aligned else 0.5  # the corner whose RoI's one sample lies at ``target``

    def roi(row: float, column: float) -> list[float]:
        x1, y1 = (column - shift) * stride, (row - shift) * stride
        return [0.0, x1, y1, x1 + stride, y1 + stride]  # one map pixel: the sample at its centre

    eps = 2.0**-6
    rows = [
        -1 - eps,
        -1.0,
        -1 + eps,
        -0.5,
        0.0,
        2.25,
        height - 1.0,
        height - 1 + eps,
        height - eps,
        height,
        height + eps,
    ]
    rois = torch.tensor(
        [roi(row, 2.0) for row in rows] + [roi(2.0, column) for column in (-1.0, width, width + eps)]
    )
    expected = []
    for row, column in [(row, 2.0) for row in rows] + [
        (2.0, column) for column in (-1.0, width, width + eps)
    ]:
        if not (-1 <= row <= height and -1 <= column <= width):
            expected.append(torch.zeros(CHANNELS, dtype=torch.float64))
            continue
        row, column = min(max(row, 0.0), height - 1.0), min(max(column, 0.0), width - 1.0)
        low, frac = int(row), row - int(row)
        value = (1 - frac) * x[0, :, low, int(column)]
        if frac:
            value = value + frac * x[0, :, low + 1, int(column)]
        expected.append(value)
    arguments = dict(output_size=1, spatial_scale=1 / stride, sampling_ratio=1, aligned=aligned)
    (out_mmcv, grad_mmcv), (out_ours, grad_ours) = both(x, rois, **arguments)
    assert torch.allclose(out_mmcv.view(len(rois), CHANNELS), torch.stack(expected), atol=1e-12)
    assert_equal(out_mmcv, out_ours, "output")
    assert_equal(grad_mmcv, grad_ours, "gradient")


@pytest.mark.parametrize(
    "arguments",
    [
        dict(output_size=(2, 3), spatial_scale=0.25, sampling_ratio=0),
        dict(output_size=(7, 5), spatial_scale=1 / 3, sampling_ratio=3, aligned=False),
        dict(output_size=1, spatial_scale=1.0, sampling_ratio=0),
    ],
    ids=["2x3 adaptive", "7x5 scale 1/3", "1x1 scale 1"],
)
def test_other_output_sizes_and_scales(arguments: dict[str, Any]) -> None:
    x = torch.randn(IMAGES, CHANNELS, 24, 34, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rois = boxes(4, arguments.get("aligned", True), seed=1)
    (out_mmcv, grad_mmcv), (out_ours, grad_ours) = both(x, rois, **arguments)
    assert_equal(out_mmcv, out_ours, "output")
    assert_equal(grad_mmcv, grad_ours, "gradient")


@pytest.mark.parametrize(
    "path",
    [
        dict(_BY_IMAGE=0),  # each image's table in turn
        dict(_BY_IMAGE=0, _PIECE=64),  # and the gradient summed in pieces of a few pixels
        dict(_PIECE=1),  # a pixel at a time
    ],
    ids=["per image", "per image, in pieces", "pixel pieces"],
)
def test_the_paths_for_large_maps_give_the_same_numbers(
    path: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thresholds lowered so that small maps take the paths of the model zoo's large ones."""
    for name, value in path.items():
        monkeypatch.setattr(module, name, value)
    x = torch.randn(IMAGES, CHANNELS, 24, 34, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rois = boxes(4, True, seed=2)
    rois = rois[rois[:, 0] != 1]  # an image without RoIs: its gradient is zero
    (out_mmcv, grad_mmcv), (out_ours, grad_ours) = both(x, rois, output_size=7, spatial_scale=0.25)
    assert_equal(out_mmcv, out_ours, "output")
    assert_equal(grad_mmcv, grad_ours, "gradient")
    assert grad_ours[1].abs().sum() == 0


@pytest.mark.parametrize("by_image", [False, True], ids=["one table", "per image"])
def test_a_few_rois_on_a_large_map_read_only_their_pixels(
    by_image: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if by_image:
        monkeypatch.setattr(module, "_BY_IMAGE", 0)
    x = torch.randn(2, CHANNELS, 60, 80, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    rois = torch.tensor(
        [[0, 10.0, 20.0, 90.0, 60.0], [1, 200.0, 100.0, 260.0, 230.0], [1, -8.0, -8.0, 12.0, 6.0]]
    )
    image, found = rois[:, 0].long(), rois[:, 1:]
    bags = module._bags(image, found, (2, 60, 80), (7, 7), 0.25, 0, True)
    assert bags.touched is not None and len(bags.touched) < 60 * 80  # a table of the pixels read only
    (out_mmcv, grad_mmcv), (out_ours, grad_ours) = both(x, rois, output_size=7, spatial_scale=0.25)
    assert_equal(out_mmcv, out_ours, "output")
    assert_equal(grad_mmcv, grad_ours, "gradient")


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
@pytest.mark.parametrize("by_image", [False, True], ids=["one table", "per image"])
def test_a_map_in_another_layout_gives_the_same_numbers(
    layout: str, by_image: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mmcv's kernel reads any map as if it were contiguous (wrong numbers for these two): ours is compared
    with mmcv's on a contiguous copy."""
    if by_image:
        monkeypatch.setattr(module, "_BY_IMAGE", 0)
    x = torch.randn(
        IMAGES, 2 * CHANNELS, 24, 34, generator=torch.Generator().manual_seed(7), dtype=torch.float64
    )
    x = x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x[:, ::2]
    assert not x.is_contiguous()
    rois, arguments = boxes(4, True, seed=7), dict(output_size=7, spatial_scale=0.25)
    (out_mmcv, grad_mmcv), _ = both(x.contiguous(), rois, **arguments)
    leaf = x.detach().requires_grad_()  # the same layout (a clone would make the strided one contiguous)
    out_ours = RoIAlign(**arguments)(leaf, rois.double())
    (out_ours * torch.linspace(-1, 1, out_ours.numel(), dtype=x.dtype).view_as(out_ours)).sum().backward()
    grad_ours = leaf.grad
    assert grad_ours is not None
    assert_equal(out_mmcv, out_ours, "output")
    assert_equal(grad_mmcv, grad_ours, "gradient")


def test_no_rois_give_an_empty_output_and_a_zero_gradient() -> None:
    x = torch.randn(2, CHANNELS, 8, 9, dtype=torch.float64)
    (out_mmcv, grad_mmcv), (out_ours, grad_ours) = both(
        x, torch.zeros(0, 5), output_size=7, spatial_scale=0.5
    )
    assert out_ours.shape == out_mmcv.shape == (0, CHANNELS, 7, 7)
    assert grad_ours.shape == x.shape and grad_ours.abs().sum() == grad_mmcv.abs().sum() == 0


def test_the_rois_get_no_gradient_as_mmcv_s() -> None:
    x = torch.randn(1, CHANNELS, 8, 9, requires_grad=True)
    rois = torch.tensor([[0, 2.0, 3.0, 20.0, 25.0]], requires_grad=True)
    RoIAlign(7, 0.5, 2)(x, rois).sum().backward()
    assert rois.grad is None and x.grad is not None


def test_max_pooling_and_torchvision_are_mmcv_s_op() -> None:
    x = torch.randn(IMAGES, CHANNELS, 24, 34, generator=torch.Generator().manual_seed(4))
    rois = boxes(4, True, seed=4)
    arguments = dict(output_size=7, spatial_scale=0.25, sampling_ratio=2, pool_mode="max")
    (out_mmcv, grad_mmcv), (out_ours, grad_ours) = both(x, rois, **arguments)
    assert torch.equal(out_mmcv, out_ours) and torch.equal(grad_mmcv, grad_ours)


def test_mmcv_s_errors_are_errors() -> None:
    x = torch.randn(2, CHANNELS, 8, 9)
    with pytest.raises(ValueError, match="negative width or height"):
        roi_align(x, torch.tensor([[0, 5.0, 5.0, 4.0, 9.0]]), 7, 1.0, 0, aligned=True)
    with pytest.raises(ValueError, match=r"image indices must be 0\.\.1"):
        roi_align(x, torch.tensor([[2, 1.0, 1.0, 4.0, 4.0]]), 7)
    with pytest.raises(ValueError, match=r"\(k, 5\)"):
        roi_align(x, torch.zeros(3, 4), 7)
    with pytest.raises(ValueError, match="RoIs must be finite"):  # mmcv's op reads outside the map
        roi_align(x, torch.tensor([[0, 1.0, float("nan"), 4.0, 4.0]]), 7)


def test_mmdet_builds_the_registered_layer_by_its_type_name() -> None:
    """mmdet's RoI extractors look the type up in mmcv.ops, where importing the module puts it."""
    layer = dict(type=REGISTERED_NAME, output_size=7, sampling_ratio=2)
    with DefaultScope.overwrite_default_scope("mmdet"):
        ours = SingleRoIExtractor(roi_layer=layer, out_channels=CHANNELS, featmap_strides=list(STRIDES))
        theirs = SingleRoIExtractor(
            roi_layer={**layer, "type": "RoIAlign"}, out_channels=CHANNELS, featmap_strides=list(STRIDES)
        )
    assert all(isinstance(roi_layer, RoIAlign) for roi_layer in ours.roi_layers)
    assert [m.spatial_scale for m in ours.roi_layers] == [1 / s for s in STRIDES]
    feats = tuple(torch.randn(2, CHANNELS, HEIGHT // s, WIDTH // s) for s in STRIDES)
    rois = boxes(4, True, seed=5)
    rois = rois[rois[:, 0] < 2]
    assert torch.allclose(ours(feats, rois), theirs(feats, rois), atol=1e-5)


def test_its_flops_are_counted_as_mmcv_s() -> None:
    """mmengine's FlopAnalyzer traces mmcv's op for both: a cell's count does not depend on the module."""
    x = torch.randn(1, CHANNELS, 12, 16)
    rois = torch.tensor([[0, 2.0, 3.0, 40.0, 30.0], [0, 10.0, 5.0, 20.0, 50.0]])
    counts = []
    for layer in (MmcvRoIAlign(7, 0.25, 2), RoIAlign(7, 0.25, 2)):
        analyzer = FlopAnalyzer(layer, (x, rois)).unsupported_ops_warnings(False)
        analyzer.set_op_handle(
            **{"prim::PythonOp.RoIAlignFunction": lambda inputs, outputs: outputs[0].type().sizes()[0]}
        )
        with torch.no_grad():
            counts.append(analyzer.total())
    assert counts[0] == counts[1] == 2


def test_the_study_s_detector_trains_a_step_with_it_as_with_mmcv_s(tmp_path: Path) -> None:
    """The study's config (``[model.roi_align] module = "ablation"``) builds the box head's RoI extractor with
    this layer, and with the same weights one training step gives mmcv's loss and gradients."""
    study = (REPO / "experiments/sweeps/study.toml").read_text(encoding="utf-8")
    section = '[model.roi_align]\nmodule = "ablation"'
    assert section in study
    only = Selection(codes=(AttentionCode("0000"),), dcn=False)
    models = []
    for name, text in (("study", study), ("stock", study.replace(section, ""))):
        (planned,) = plan(load_sweep(write_sweep(tmp_path, text, name)), tmp_path / name, only).cells
        models.append(build(planned.path))
    ours, theirs = models
    theirs.load_state_dict(ours.state_dict())
    assert [type(m) for m in ours.roi_head.bbox_roi_extractor.roi_layers] == [RoIAlign] * 4  # type: ignore[union-attr]
    assert [type(m) for m in theirs.roi_head.bbox_roi_extractor.roi_layers] == [MmcvRoIAlign] * 4  # type: ignore[union-attr]
    losses = []
    for model in models:
        torch.manual_seed(0)  # the same proposals and RoIs sampled in both
        data = model.data_preprocessor(_batch(), training=True)
        loss, _ = model.parse_losses(model(**data, mode="loss"))
        loss.backward()
        losses.append(loss.detach())
    assert torch.allclose(losses[0], losses[1], rtol=1e-5)
    for name in ("neck.fpn_convs.0.conv.weight", "roi_head.bbox_head.shared_fcs.0.weight"):
        (a, b) = (model.get_parameter(name).grad for model in models)
        assert a is not None and b is not None and a.abs().sum() > 0
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5 * b.abs().max().item()), name


def test_a_fresh_process_finds_the_layer_through_the_study_s_config_alone(tmp_path: Path) -> None:
    """As mmdet's tools/train.py loads a config: nothing imports ablation but the config's custom_imports."""
    only = Selection(codes=(AttentionCode("0000"),), dcn=False)
    (planned,) = plan(load_sweep("study"), tmp_path, only).cells
    layer = "model.roi_head.bbox_roi_extractor.roi_layers[0]"
    shown = in_a_fresh_process(planned.path, f"type({layer}).__module__, {layer}.sampling_ratio")
    assert shown == ["ablation.model.roi_align", "2"]


def test_the_sweep_setting_names_the_valid_modules(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, '[model.roi_align]\nmodule = "torch"\n')
    with pytest.raises(
        SweepFileError, match=r"\[model.roi_align\] module 'torch' is not one of 'mmcv', 'ablation'"
    ):
        load_sweep(path)


def _batch() -> dict[str, object]:
    """Two 128x192 images (the study's scale) with a few boxes of its three classes."""
    generator = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for boxes in ([[10.0, 20.0, 80.0, 110.0], [100.0, 30.0, 180.0, 90.0]], [[40.0, 10.0, 70.0, 50.0]]):
        shape = (128, 192)
        sample = DetDataSample(
            metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape, scale_factor=(1.0, 1.0))
        )
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes), labels=torch.arange(len(boxes)) % 3)
        inputs.append(torch.randint(0, 256, (3, *shape), dtype=torch.uint8, generator=generator))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
