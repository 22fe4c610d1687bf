"""Each cell of the paper's grid as a real mmdet detector built from its planned config: one training step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import nn

from ablation import Cell, Plan, load_sweep, plan
from ablation.grid.render import cell_name
from ablation.model.attention import GeneralizedAttention

from .helpers.cli import write_sweep
from .helpers.detector import build, in_a_fresh_process

HEIGHT, WIDTH = 128, 192  # not square: stage 4 is 4 x 6, its keys 2 x 3
COCO = load_sweep("coco-1x")


@pytest.fixture(scope="module")
def coco_plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan(COCO, tmp_path_factory.mktemp("runs"))


def train_step(model: nn.Module) -> torch.Tensor:
    """One forward and backward pass in training mode on one image; returns the loss."""
    data = model.data_preprocessor(one_image_batch(), training=True)
    loss, _ = model.parse_losses(model(**data, mode="loss"))
    loss.backward()
    return loss  # type: ignore[no-any-return]


def one_image_batch() -> dict[str, object]:
    shape = (HEIGHT, WIDTH)
    sample = DetDataSample(
        metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape, scale_factor=(1.0, 1.0))
    )
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[10.0, 20.0, 80.0, 110.0], [100.0, 30.0, 180.0, 90.0]]),
        labels=torch.tensor([1, 5]),
    )
    image = torch.randint(0, 256, (3, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return dict(inputs=[image], data_samples=[sample])


@pytest.mark.slow
@pytest.mark.parametrize("cell", COCO.cells, ids=[cell_name(COCO, c) for c in COCO.cells])
def test_every_coco_cell_trains_a_step_on_a_non_square_image(coco_plan: Plan, cell: Cell) -> None:
    (planned,) = [p for p in coco_plan.cells if p.cell == cell]
    torch.manual_seed(0)
    model = build(planned.path)
    attention = [m for m in model.modules() if isinstance(m, GeneralizedAttention)]
    assert len(attention) == (0 if planned.cell.code.is_baseline else 6 + 3)  # every block of c4 and c5
    assert all(m.code == planned.cell.code for m in attention)
    for m in attention:
        nn.init.constant_(m.gamma, 0.5)  # at 0, as initialised, no gradient reaches the attention's weights

    assert torch.isfinite(train_step(model))
    for m in attention:
        for name, parameter in m.named_parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
            assert parameter.grad.abs().sum() > 0, f"{planned.name}: no gradient reached {name}"


def plan_both(folder: Path, codes: str) -> tuple[Plan, Plan]:
    """DCN cells of ``codes`` with our module and with mmcv's."""
    text = f"[grid]\ncodes = {codes}\ndcn = [true]\n"
    ours = plan(load_sweep(write_sweep(folder, text, "ours")), folder)
    stock_text = text + '[model.attention]\nmodule = "mmcv"\n'
    return ours, plan(load_sweep(write_sweep(folder, stock_text, "stock")), folder)


def test_a_stock_mmcv_detector_s_weights_load_strictly_into_ours(tmp_path: Path) -> None:
    """A model-zoo checkpoint of mmdetection's attention configs loads into the planner's detectors."""
    ours, stock = plan_both(tmp_path, '["1111", "0100"]')
    for mine, theirs in zip(ours.cells, stock.cells, strict=True):
        state = build(theirs.path).state_dict()
        assert any(".gen_attention_block." in key for key in state)
        build(mine.path).load_state_dict(state, strict=True)


def test_the_stock_module_still_fails_the_issue_s_detector(tmp_path: Path) -> None:
    """mmdetection issue #8179 as reported; when this fails, mmcv has fixed it."""
    _, stock = plan_both(tmp_path, '["0100"]')
    with pytest.raises(RuntimeError, match="must match the size of tensor b"):
        train_step(build(stock.cells[0].path))


def test_a_fresh_process_finds_our_module_through_the_config_alone(coco_plan: Plan) -> None:
    """As mmdet's tools/train.py loads a config: nothing imports ablation but the config's custom_imports."""
    (planned,) = [p for p in coco_plan.cells if p.name == "faster-rcnn_r50-attn0100-dcn_fpn_1x_coco"]
    block = "model.backbone.layer4[0].gen_attention_block"
    shown = in_a_fresh_process(planned.path, f"type({block}).__module__, {block}.code")
    assert shown == ["ablation.model.attention", "0100"]


def features_and_gradients(model: nn.Module) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """The FPN's outputs on one image, and every backbone and neck parameter's gradient of a fixed random
    projection of them: all that the attention changes, and no proposals, NMS or sampling, whose discrete
    choices turn a last-bit difference (torch's CPU kernels reduce in a thread-dependent order) into a
    different loss."""
    data = model.data_preprocessor(one_image_batch(), training=True)
    features = model.extract_feat(data["inputs"])
    generator = torch.Generator().manual_seed(2)
    projection = sum((f * torch.randn(f.shape, generator=generator)).sum() for f in features)
    projection.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return [f.detach() for f in features], grads


def test_the_sdpa_implementation_gives_the_reference_detector_s_features_and_gradients(
    tmp_path: Path,
) -> None:
    """[model.attention] implementation = "sdpa": the planned config carries it to every block, and a
    detector built from it computes what the reference one does, from the same weights."""
    text = '[grid]\ncodes = ["1111", "0110"]\ndcn = [false]\n'
    reference = plan(load_sweep(write_sweep(tmp_path, text, "reference")), tmp_path)
    sdpa_text = text + '[model.attention]\nimplementation = "sdpa"\n'
    sdpa = plan(load_sweep(write_sweep(tmp_path, sdpa_text, "sdpa")), tmp_path)
    for ref_cell, sdpa_cell in zip(reference.cells, sdpa.cells, strict=True):
        assert "implementation='sdpa'" in sdpa_cell.path.read_text()
        assert "implementation" not in ref_cell.path.read_text()  # the default keeps today's configs and ids
        assert sdpa_cell.cell_id != ref_cell.cell_id
        torch.manual_seed(0)
        ref_model, sdpa_model = build(ref_cell.path), build(sdpa_cell.path)
        blocks = [m for m in sdpa_model.modules() if isinstance(m, GeneralizedAttention)]
        assert len(blocks) == 9 and {m.implementation for m in blocks} == {"sdpa"}
        for m in (*blocks, *[m for m in ref_model.modules() if isinstance(m, GeneralizedAttention)]):
            nn.init.constant_(m.gamma, 0.5)
        sdpa_model.load_state_dict(ref_model.state_dict(), strict=True)
        ref_model.train(), sdpa_model.train()
        ref_features, ref_grads = features_and_gradients(ref_model)
        sdpa_features, sdpa_grads = features_and_gradients(sdpa_model)
        for ref, ours in zip(ref_features, sdpa_features, strict=True):
            assert torch.allclose(ref, ours, rtol=1e-4, atol=1e-5), (ref - ours).abs().max()
        assert sdpa_grads.keys() == ref_grads.keys()
        assert any(".gen_attention_block." in name for name in sdpa_grads)
        for name, grad in sdpa_grads.items():
            scale = ref_grads[name].abs().max().item()
            assert torch.allclose(grad, ref_grads[name], rtol=1e-3, atol=1e-4 * max(1.0, scale)), name


@pytest.mark.slow
def test_a_smoke_detector_trains_every_backbone_parameter_and_its_batch_statistics(tmp_path: Path) -> None:
    """From scratch nothing may stay at its random initialisation: mmdet's R-50 base would freeze the stem and
    stage 1 and keep BatchNorm in eval mode (right for ImageNet weights only)."""
    (planned,) = [
        c for c in plan(load_sweep("smoke"), tmp_path).cells if c.cell.code.bits == "0000" and not c.cell.dcn
    ]
    model = build(planned.path)
    model.train()
    backbone = model.backbone  # type: ignore[union-attr]
    frozen = [name for name, p in backbone.named_parameters() if not p.requires_grad]
    assert not frozen, f"frozen from scratch: {frozen[:3]}"
    norms = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.training for m in norms)
