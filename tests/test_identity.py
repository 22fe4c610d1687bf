"""A cell's identity (ablation.grid.identity), declared once: the plan's identity reaches the job spec, the
result file, the store row and back out of the store with every field, and a config's text reads into the
same fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mmengine.config import Config

from ablation import load_sweep, plan
from ablation.grid.identity import CellIdentity, CellSetting
from ablation.results.configtext import ConfigFacts, config_facts
from ablation.results.harvest import record_from_result
from ablation.results.records import RunRecord
from ablation.results.store import Store
from ablation.run.job import CellJob, _blank
from ablation.run.result_file import CellResult, write_result

from .helpers.cli import write_sweep

IDENTITY = [f.name for f in dataclasses.fields(CellIdentity)]


def test_every_declaration_of_a_cell_is_the_one_identity() -> None:
    for kind in (CellJob, CellResult, RunRecord):
        assert issubclass(kind, CellIdentity)
        assert [f.name for f in dataclasses.fields(kind) if f.name in IDENTITY] == IDENTITY
    assert issubclass(ConfigFacts, CellSetting)


def test_the_planned_identity_reaches_the_store_whole(tmp_path: Path) -> None:
    text = (
        '[grid]\ncodes = ["0110"]\ndcn = [true]\nseeds = [7]\n'
        '[grid.axes]\n"model.attention.kv_stride" = [4]\n'
        '[model]\nbackbone = "x101"\n'
        '[model.attention]\nimplementation = "sdpa"\n[schedule]\nname = "3e"\nepochs = 3\nmilestones = [2]\n'
        '[dataset]\nname = "shapes"\n'
    )
    sweep = load_sweep(write_sweep(tmp_path, text, "every-field"))
    (planned,) = plan(sweep, tmp_path / "runs").cells
    identity = planned.identity.identity()
    assert identity == {
        "sweep": "every-field",
        "cell": "faster-rcnn_x101-attn0110-dcn_fpn_3e_shapes_kv-stride-4",
        "seed": 7,
        "axes": {"model.attention.kv_stride": 4},
        "code": "0110",
        "dcn": True,
        "backbone": "X-101",
        "schedule": "3e",
        "dataset": "shapes",
        "attention_module": "ablation",
        "attention_impl": "sdpa",
    }
    job = CellJob(
        **identity,
        name=planned.name,
        cell_id=planned.cell_id,
        config=str(planned.path),
        config_hash=planned.config.config_hash,
        work_dir=str(tmp_path / "work"),
        cwd=str(tmp_path),
        attempt=1,
        test_size=(32, 32),
    )
    result = _blank(job)  # what the job writes first
    assert result.identity() == identity
    write_result(tmp_path / "work", result)
    record = record_from_result(tmp_path / "work")
    assert record.identity() == identity and record.run_id == f"{planned.cell_id}-s7"
    assert record.cell_id == planned.cell_id
    store = Store(tmp_path / "store")
    store.put(record)
    (row,) = store.read().table.to_pylist()
    columns = {name: row[name] for name in IDENTITY if name != "axes"}
    assert columns == {k: v for k, v in identity.items() if k != "axes"}
    assert row["model.attention.kv_stride"] == 4  # an axis is a column of its own
    again = store.get(record.sweep, record.cell, record.run_id)
    assert again is not None and again.identity() == identity


def test_a_planned_config_reads_back_as_its_setting(tmp_path: Path) -> None:
    """As mmengine dumps the loaded config into a work_dir (the text harvest reads)."""
    sweep = load_sweep(write_sweep(tmp_path, '[grid]\ncodes = ["1111"]\ndcn = [true]\n', "read-back"))
    (planned,) = plan(sweep, tmp_path / "runs").cells
    facts = config_facts(Config.fromfile(str(planned.path)).pretty_text)
    expected = {**planned.identity.setting(), "dataset": None}  # a config's text does not name its dataset
    assert facts.setting() == expected
