"""Rendered configs, loaded by the real mmengine and compared with the installed mmdet's own files."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from mmengine.config import Config

from ablation import AttentionCode, Cell, Plan, PlannedCell, SweepFileError, load_sweep, plan, render
from ablation.grid.cells import Selection
from ablation.grid.render import cell_name

from .helpers.cli import REPO, write_sweep

MMDET_CONFIGS = Path(importlib.util.find_spec("mmdet").origin).parent / ".mim" / "configs"  # type: ignore[arg-type,union-attr]

# The 6 cells mmdetection ships, with its own config for each.
SHIPPED = {
    ("0000", False): "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
    ("0000", True): "dcn/faster-rcnn_r50-dconv-c3-c5_fpn_1x_coco.py",
    ("0010", False): "empirical_attention/faster-rcnn_r50-attn0010_fpn_1x_coco.py",
    ("0010", True): "empirical_attention/faster-rcnn_r50-attn0010-dcn_fpn_1x_coco.py",
    ("1111", False): "empirical_attention/faster-rcnn_r50-attn1111_fpn_1x_coco.py",
    ("1111", True): "empirical_attention/faster-rcnn_r50-attn1111-dcn_fpn_1x_coco.py",
}


def loaded(path: Path) -> dict[str, Any]:
    return Config.fromfile(str(path)).to_dict()  # type: ignore[no-any-return]


def without_default_scope(value: Any, scope: str = "mmdet") -> Any:
    """``value`` less the ``_scope_: 'mmdet'`` marks that mmengine adds to every dict with a ``type``
    inherited through an ``mmdet::`` base. Under ``default_scope = 'mmdet'`` they change nothing; any other
    scope is kept, so it would still show as a difference."""
    if isinstance(value, dict):
        return {k: without_default_scope(v) for k, v in value.items() if not (k == "_scope_" and v == scope)}
    if isinstance(value, (list, tuple)):
        return type(value)(without_default_scope(v) for v in value)
    return value


COCO = REPO / "experiments/sweeps/coco-1x.toml"
STOCK_MODULE = ('position = "after_conv2"', 'position = "after_conv2"\nmodule = "mmcv"')
BASE_AS_FILE = (
    'base_config = "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"',
    f'base_config = "{MMDET_CONFIGS / "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py"}"',
)


def coco_variant(folder: Path, *changes: tuple[str, str]) -> Plan:
    """The coco-1x sweep with lines of its file replaced, planned into ``folder``."""
    text = COCO.read_text()
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    return plan(load_sweep(write_sweep(folder, text, "coco-1x")), folder / "runs")


@pytest.fixture(scope="module")
def coco_plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan(load_sweep(COCO), tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def stock_plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """coco-1x with mmcv's own GeneralizedAttention, as mmdetection's configs use."""
    return coco_variant(tmp_path_factory.mktemp("stock"), STOCK_MODULE)


def shipped(result: Plan, code: str, dcn: bool) -> PlannedCell:
    (planned,) = [p for p in result.cells if p.cell == Cell(AttentionCode(code), dcn)]
    return planned


@pytest.mark.parametrize(("code", "dcn"), list(SHIPPED))
def test_shipped_cells_with_mmcv_s_module_equal_mmdetection_s_own_configs(
    stock_plan: Plan, code: str, dcn: bool
) -> None:
    planned = shipped(stock_plan, code, dcn)
    ours, theirs = loaded(planned.path), loaded(MMDET_CONFIGS / SHIPPED[code, dcn])
    assert ours["default_scope"] == theirs["default_scope"] == "mmdet"
    assert without_default_scope(ours) == theirs
    assert planned.name == Path(SHIPPED[code, dcn]).stem  # the same name as mmdetection's file


@pytest.mark.parametrize(("code", "dcn"), list(SHIPPED))
def test_shipped_cells_equal_exactly_when_the_base_is_a_file(tmp_path: Path, code: str, dcn: bool) -> None:
    """With the base named by its path, mmengine adds no scope marks: the dicts are equal as loaded."""
    planned = shipped(coco_variant(tmp_path, STOCK_MODULE, BASE_AS_FILE), code, dcn)
    assert loaded(planned.path) == loaded(MMDET_CONFIGS / SHIPPED[code, dcn])


@pytest.mark.parametrize(("code", "dcn"), list(SHIPPED))
def test_by_default_shipped_cells_differ_from_mmdetection_s_only_in_the_attention_module(
    coco_plan: Plan, code: str, dcn: bool
) -> None:
    ours = without_default_scope(loaded(shipped(coco_plan, code, dcn).path))
    theirs = loaded(MMDET_CONFIGS / SHIPPED[code, dcn])
    if code == "0000":  # no attention, nothing to import
        assert ours == theirs
        return
    assert ours.pop("custom_imports") == dict(
        imports=["ablation.model.attention"], allow_failed_imports=False
    )
    (plugin,) = ours["model"]["backbone"]["plugins"]
    assert plugin["cfg"]["type"] == "AblationGeneralizedAttention"
    plugin["cfg"]["type"] = "GeneralizedAttention"
    assert ours == theirs


def test_every_coco_cell_loads_with_its_own_attention_and_dcn(coco_plan: Plan) -> None:
    assert len(coco_plan.cells) == 32
    assert len({p.cell_id for p in coco_plan.cells}) == 32
    assert len({p.name for p in coco_plan.cells}) == 32
    for planned in coco_plan.cells:
        backbone = Config.fromfile(str(planned.path)).model.backbone
        plugins = backbone.get("plugins") or []
        if planned.cell.code.is_baseline:
            assert plugins == []  # '0000' is no plugin at all, not mmcv's uniform '0000'
        else:
            (plugin,) = plugins
            assert plugin["cfg"]["attention_type"] == str(planned.cell.code)
            assert plugin["stages"] == (False, False, True, True)
        assert (backbone.get("dcn") is not None) == planned.cell.dcn
        assert backbone.init_cfg["checkpoint"] == "torchvision://resnet50"


def test_smoke_configs_set_the_dataset_schedule_and_scratch_training(tmp_path: Path) -> None:
    result = plan(load_sweep("smoke"), tmp_path)
    assert len(result.cells) == 32
    cfg = Config.fromfile(str(result.cells[-1].path))
    assert cfg.model.backbone.init_cfg is None
    # from scratch nothing stays at its random initialisation: mmdet's R-50 base freezes the stem and stage 1
    # and keeps BatchNorm's statistics (frozen_stages=1, norm_eval=True), right only for pretrained weights
    assert (cfg.model.backbone.frozen_stages, cfg.model.backbone.norm_eval) == (-1, False)
    assert cfg.model.roi_head.bbox_head.num_classes == 3
    assert cfg.train_cfg.max_epochs == 2
    assert [s["type"] for s in cfg.param_scheduler] == ["LinearLR", "MultiStepLR"]
    assert cfg.param_scheduler[1]["milestones"] == []
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.default_hooks.logger.interval == 2
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.data_root == "data/smoke/"
        assert loader.dataset.metainfo.classes == ("rectangle", "ellipse", "triangle")
        assert loader.num_workers == 0 and loader.persistent_workers is False
        resize = [step for step in loader.dataset.pipeline if step["type"] == "Resize"]
        assert resize[0]["scale"] == (192, 128)
    assert cfg.train_dataloader.dataset.ann_file == "annotations/train.json"
    assert cfg.test_evaluator.ann_file == "data/smoke/annotations/val.json"
    # [overrides], merged over the base's values key by key
    assert cfg.model.train_cfg.rcnn.sampler.num == 64
    assert cfg.model.train_cfg.rcnn.sampler.pos_fraction == 0.25  # the base's, kept
    assert cfg.model.test_cfg.rcnn.score_thr == 0.0


def test_study_configs_set_adamw_clipping_no_validation_and_ablation_s_modules(tmp_path: Path) -> None:
    result = plan(load_sweep("study"), tmp_path)
    by_cell = {(str(p.cell.code), p.cell.dcn): Config.fromfile(str(p.path)) for p in result.cells}
    cfg = by_cell["1111", True]
    # AdamW replaces the base's SGD (whose momentum AdamW would reject) instead of being merged into it
    assert cfg.optim_wrapper.optimizer == dict(type="AdamW", lr=0.002, weight_decay=0.05)
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=10.0, norm_type=2)
    assert cfg.train_cfg.val_begin > cfg.train_cfg.max_epochs  # mmengine never validates while training
    assert cfg.model.backbone.dcn.type == "AblationDCN"
    # the base's RoI layer with another type, the sweep's sampling_ratio merged in
    assert cfg.model.roi_head.bbox_roi_extractor.roi_layer == dict(
        type="AblationRoIAlign", output_size=7, sampling_ratio=2
    )
    roi_align = "ablation.model.roi_align"  # every cell pools its RoIs with it
    assert cfg.custom_imports.imports == ["ablation.model.attention", "ablation.model.deform", roi_align]
    assert by_cell["1111", False].custom_imports.imports == ["ablation.model.attention", roi_align]
    assert by_cell["0000", True].custom_imports.imports == ["ablation.model.deform", roi_align]
    assert by_cell["0000", False].custom_imports.imports == [roi_align]
    assert cfg.model.backbone.base_channels == 16 and cfg.model.neck.in_channels == [64, 128, 256, 512]


def test_explicit_mmdet_scale_reproduces_mmdet_s_pipelines(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, "[dataset]\nscale = [1333, 800]\n"))
    (planned,) = plan(sweep, tmp_path / "runs", Selection(codes=(AttentionCode("0000"),), dcn=False)).cells
    assert without_default_scope(loaded(planned.path)) == loaded(MMDET_CONFIGS / SHIPPED["0000", False])


def test_no_warmup_drops_the_warmup_scheduler(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, "[schedule]\nwarmup_iters = 0\n"))
    cfg = Config.fromfile(str(plan(sweep, tmp_path / "runs", Selection(dcn=False)).cells[0].path))
    assert [s["type"] for s in cfg.param_scheduler] == ["MultiStepLR"]


def test_the_rendered_file_is_plain_python_naming_its_cell(coco_plan: Plan) -> None:
    planned = coco_plan.cells[5]
    text = planned.path.read_text()
    ast.parse(text)
    assert f"# cell {planned.name}  id {planned.cell_id}" in text
    assert text.splitlines()[3] == "_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'"
    assert max(len(line) for line in text.splitlines()[4:]) <= 79


def test_golden_config(coco_plan: Plan) -> None:
    """Pins the text of one config; after an intended change, copy the new file over tests/golden/."""
    (planned,) = [p for p in coco_plan.cells if p.name == "faster-rcnn_r50-attn0010-dcn_fpn_1x_coco"]
    golden = REPO / "tests" / "golden" / "faster-rcnn_r50-attn0010-dcn_fpn_1x_coco.py"
    assert planned.path.read_text() == golden.read_text(), f"refresh with: cp '{planned.path}' '{golden}'"


def test_ids_depend_on_the_config_not_on_order_or_other_cells(tmp_path: Path) -> None:
    a = load_sweep(write_sweep(tmp_path, '[grid]\ncodes = ["0010", "1111"]\n', "a"))
    b = load_sweep(write_sweep(tmp_path, '[grid]\ncodes = ["1111", "0100", "0010"]\n', "b"))
    ids_a = {str(c.code) + str(c.dcn): render(a, c).cell_id for c in a.cells}
    ids_b = {str(c.code) + str(c.dcn): render(b, c).cell_id for c in b.cells}
    assert all(ids_b[k] == v for k, v in ids_a.items())
    changed = load_sweep(write_sweep(tmp_path, '[grid]\ncodes = ["0010"]\n[schedule]\nlr = 0.01\n', "c"))
    assert render(changed, changed.cells[0]).cell_id != ids_a["0010False"]


def _id(sweep_file: Path) -> str:
    """The id of the sweep's one cell."""
    sweep = load_sweep(sweep_file)
    (planned,) = plan(sweep, sweep_file.parent / "runs", write=False).cells
    return planned.cell_id


ONE_CELL = '[grid]\ncodes = ["1111"]\ndcn = [false]\n'


def test_ids_cover_what_changes_training_or_measurement(tmp_path: Path) -> None:
    """Settings outside the config that change what is trained (the effective batch: processes x images per
    process; the generated dataset) or measured (the benchmark) each give their own id."""
    synthetic = '[dataset]\ndata_root = "data/s/"\nclasses = ["a", "b", "c"]\n'
    variants = {
        "paper": "",
        "4 gpus": "[resources]\ngpus = 4\n",
        "1 image per gpu": "[resources]\nimages_per_gpu = 1\n",
        "1 cpu process": "[resources]\ngpus = 0\n",
        "2 cpu processes": "[resources]\ngpus = 0\ntasks = 2\n",
        "synthetic 8+4": synthetic + "synthetic = [8, 4]\n",
        "synthetic 16+4": synthetic + "synthetic = [16, 4]\n",
        "dataset on disk": synthetic,
        "100 timed images": "[benchmark]\ntimed_images = 100\n",
        "10 warm-up images": "[benchmark]\nwarmup_images = 10\n",
    }
    ids = {
        name: _id(write_sweep(tmp_path, ONE_CELL + extra, f"v{i}"))
        for i, (name, extra) in enumerate(variants.items())
    }
    assert len(set(ids.values())) == len(ids), ids
    # what does not change training or measuring keeps the id: the sweep's name and its Slurm settings
    same = write_sweep(tmp_path, ONE_CELL + '[slurm]\npartition = "gpu"\nsignal_delay_s = 60\n', "renamed")
    assert _id(same) == ids["paper"]


def test_an_id_follows_the_base_config_s_content_not_its_path(tmp_path: Path) -> None:
    """A local base (and what it inherits) enters the id by content: a moved checkout keeps every id, an edit
    of an inherited file changes them."""
    sweep_text = ONE_CELL + '[model]\nbase_config = "configs/base.py"\n'

    def checkout(folder: Path, parent_lr: str = "0.02") -> Path:
        (folder / "configs").mkdir(parents=True)
        (folder / "configs" / "parent.py").write_text(
            "_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'\n"
            f"optim_wrapper = dict(optimizer=dict(lr={parent_lr}))\n"
        )
        (folder / "configs" / "base.py").write_text("_base_ = ['./parent.py']\n")
        return write_sweep(folder, sweep_text)

    here = _id(checkout(tmp_path / "here"))
    assert _id(checkout(tmp_path / "moved" / "elsewhere")) == here
    assert _id(checkout(tmp_path / "edited", parent_lr="0.01")) != here


def test_replanning_is_idempotent_and_leaves_other_cells_alone(tmp_path: Path) -> None:
    sweep = load_sweep("coco-1x")
    first = plan(sweep, tmp_path)
    stamps = {p.path: p.path.stat().st_mtime_ns for p in first.cells}
    again = plan(sweep, tmp_path, Selection(codes=(AttentionCode("0010"),)))
    assert [p.cell_id for p in again.cells] == [p.cell_id for p in first.cells if str(p.cell.code) == "0010"]
    assert {p.path: p.path.stat().st_mtime_ns for p in first.cells} == stamps
    assert sorted(p.name for p in (tmp_path / "coco-1x" / "configs").iterdir()) == sorted(
        p.path.name for p in first.cells
    )


def test_a_base_config_that_does_not_exist_is_named(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, '[model]\nbase_config = "mmdet::nope/nothing.py"\n'))
    with pytest.raises(SweepFileError, match=r"base_config 'mmdet::nope/nothing.py': no such config"):
        plan(sweep, tmp_path)


def test_a_local_base_config_is_written_as_an_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "base.py").write_text("_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'\n")
    sweep = load_sweep(write_sweep(tmp_path, '[model]\nbase_config = "base.py"\n'))
    planned = plan(sweep, tmp_path / "elsewhere", Selection(codes=(AttentionCode("0010"),), dcn=True)).cells[
        0
    ]
    assert f"_base_ = {str(tmp_path / 'base.py')!r}" in planned.path.read_text()
    assert Config.fromfile(str(planned.path)).model.backbone.plugins[0]["cfg"]["attention_type"] == "0010"


def test_names_follow_mmdetection(tmp_path: Path) -> None:
    sweep = load_sweep("smoke")
    names = {cell_name(sweep, c) for c in sweep.cells}
    assert "faster-rcnn_r50-attn0010-dcn_fpn_2e_shapes" in names
    assert "faster-rcnn_r50-dconv-c3-c5_fpn_2e_shapes" in names
    other = dataclasses.replace(
        sweep.model, dcn=dataclasses.replace(sweep.model.dcn, stages=(False, False, True, True))
    )
    odd = dataclasses.replace(sweep, settings=dataclasses.replace(sweep.settings, model=other))
    assert cell_name(odd, Cell(AttentionCode("0000"), True)) == "faster-rcnn_r50-dconv-c4-c5_fpn_2e_shapes"
