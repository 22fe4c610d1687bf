"""Published results: the model-zoo reference rows and mmdet 2.x logs, through the store to the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablation.errors import InputError
from ablation.results.modelzoo import import_log, load_reference
from ablation.results.store import Store

from .helpers.cli import FIXTURES, GOLDEN, run_cli
from .helpers.tables import table_rows


def test_the_reference_rows_reproduce_mmdetections_table(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert run_cli("harvest", "--root", str(tmp_path), "--store", str(store))[0] == 0
    code, out, _ = run_cli("export", "--store", str(store), "--source", "reference")
    assert code == 0
    ours = {(row[1], row[2]): row for row in table_rows(out)}
    seed = table_rows((FIXTURES / "mmdet3-empirical-attention-README.md").read_text())
    assert len(seed) == 4
    for published in seed:
        mine = ours[published[1], published[2]]
        # Backbone | Attention Component | DCN | Lr schd, then Mem (GB) to two decimals with its kind
        assert mine[:4] == published[:4]
        assert float(mine[4]) == float(published[4]) and mine[5] == "CUDA peak allocated"
        # Inf time (fps) | box AP
        assert mine[6:8] == published[5:7]
        # Config: the same file, linked on GitHub instead of relative to mmdetection's folder
        assert mine[8].startswith("[config](https://github.com/open-mmlab/mmdetection/")
        assert Path(mine[8].rstrip(")")).name == Path(published[7].rstrip(")")).name
    baselines = {key: row for key, row in ours.items() if key[0] == "0000"}
    assert [r[4:8] for r in baselines.values()] == [
        ["4.00", "CUDA peak allocated", "21.4", "37.4"],
        ["4.00", "CUDA peak allocated", "17.8", "41.3"],
    ]
    assert out == (GOLDEN / "export-reference.md").read_text(), (
        "the exported reference table changed; if on purpose, refresh tests/golden/export-reference.md"
    )


def test_reference_rows_are_keyed_and_typed() -> None:
    rows = load_reference()
    assert len(rows) == 6 and {r.source for r in rows} == {"reference"}
    assert len({(r.sweep, r.cell, r.run_id) for r in rows}) == 6
    slow = next(r for r in rows if r.cell == "faster-rcnn_r50_fpn_1x_coco")
    assert slow.fps == pytest.approx(1000 / 46.73) and slow.device == "V100"
    assert all(r.memory_kind == "cuda_peak_allocated" for r in rows)


def test_a_bad_reference_row_is_named(tmp_path: Path) -> None:
    good = (Path(load_reference()[0].origin or "")).read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*good[:5], good[5].replace(",Y,", ",maybe,")]) + "\n")
    with pytest.raises(InputError, match=r"bad.csv: data row 2: dcn must be Y or N, got 'maybe'"):
        load_reference([bad])


# --- mmdet 2.x logs --------------------------------------------------------------------------------------

CONFIG_1111_DCN = """model = dict(
    type='FasterRCNN',
    pretrained='torchvision://resnet50',
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        dcn=dict(type='DCN', deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True),
        plugins=[
            dict(
                cfg=dict(
                    type='GeneralizedAttention',
                    spatial_range=-1,
                    num_heads=8,
                    attention_type='1111',
                    kv_stride=2),
                stages=(False, False, True, True),
                position='after_conv2')
        ]),
)
total_epochs = 12
"""
ENV = "sys.platform: linux\nPython: 3.7.4\nPyTorch: 1.3.1\nMMCV: 0.2.16\nMMDetection: 1.0.0+f1c7bd1"
AP = [0.214, 0.391, 0.215, 0.120, 0.235, 0.281]


def _log(path: Path, header: bool, epochs: int = 2, memory: tuple[int, ...] = (7900, 8181, 8012)) -> Path:
    lines = []
    if header:
        lines.append({"env_info": ENV, "config": CONFIG_1111_DCN, "seed": 0, "exp_name": path.name})
    for epoch in range(1, epochs + 1):
        for i, mem in enumerate(memory, start=1):
            train = {"mode": "train", "epoch": epoch, "iter": 50 * i, "lr": 0.02, "memory": mem + epoch}
            lines.append({**train, "data_time": 0.05, "loss_cls": 0.5, "loss": 1.2, "time": 0.93})
        ap = [round(v + 0.1 * epoch, 3) for v in AP]
        val = {"mode": "val", "epoch": epoch, "iter": 7330, "lr": 0.02}
        val.update({name: v for name, v in zip(("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75"), ap, strict=False)})
        val["bbox_mAP_copypaste"] = " ".join(f"{v:.3f}" for v in ap)
        lines.append(val)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_log_with_a_header_is_imported_as_mmdet_publishes_it(tmp_path: Path) -> None:
    path = _log(tmp_path / "20200130_204442.log.json", header=True)  # the name says nothing: the header does
    record = import_log(path)
    assert (record.code, record.dcn, record.backbone, record.schedule) == ("1111", True, "R-50", "1x")
    assert record.cell == "faster-rcnn_r50-attn1111-dcn_fpn_1x_unknown"
    assert record.run_id == "20200130_204442" and record.source == "log" and record.attention_module == "mmcv"
    assert record.memory_gb == (8012 + 2) / 1024  # the last train line of the last epoch, not the peak
    assert record.bbox_mAP == pytest.approx(0.414) and record.bbox_mAP_l == pytest.approx(0.481)
    assert record.epochs == 2 and record.torch_version == "1.3.1" and record.mmdet_version == "1.0.0+f1c7bd1"


def test_an_early_log_without_header_is_told_by_its_name(tmp_path: Path) -> None:
    name = "faster_rcnn_r50_fpn_attention_0010_1x_coco_20200130_210125.log.json"
    record = import_log(_log(tmp_path / name, header=False, epochs=12))
    assert record.cell == "faster-rcnn_r50-attn0010_fpn_1x_coco"  # the 3.x name: the rows line up
    assert (record.code, record.dcn, record.dataset, record.epochs) == ("0010", False, "coco", 12)
    assert record.memory_gb == pytest.approx((8012 + 12) / 1024)


def test_import_log_through_the_cli_into_the_table(tmp_path: Path) -> None:
    logs = [
        _log(tmp_path / "faster_rcnn_r50_fpn_attention_1111_1x_coco_20200130_210344.log.json", header=False),
        _log(
            tmp_path / "faster_rcnn_r50_fpn_attention_0010_dcn_1x_coco_20200130_210410.log.json", header=False
        ),
    ]
    broken = tmp_path / "faster_rcnn_r50_fpn_attention_0010_1x_coco_20200130_000000.log.json"
    broken.write_text(logs[0].read_text()[:-30])
    store = tmp_path / "store"
    code, out, err = run_cli("import-log", *map(str, [*logs, broken]), "--store", str(store))
    assert code == 1
    assert "imported 2 runs: 2 new" in out
    assert err.count("\n") == 1 and f"{broken}: line" in err and "is not JSON" in err
    assert len(Store(store).read().table) == 2

    code, out, _ = run_cli("import-log", *map(str, logs), "--store", str(store))
    assert code == 0 and "imported 2 runs: 0 new, 0 updated, 2 unchanged" in out

    code, out, _ = run_cli("export", "--store", str(store), "--source", "log")
    rows = table_rows(out)
    assert [r[1:3] for r in rows] == [["0010", "Y"], ["1111", "N"]]
    assert rows[0][4:8] == ["7.83", "CUDA peak allocated", "-", "41.4"]  # 8014 MB; no fps in a training log


def test_code_and_dcn_flags_override_the_name(tmp_path: Path) -> None:
    path = _log(tmp_path / "my_experiment.log.json", header=False)
    store = tmp_path / "store"
    code, _, _ = run_cli(
        "import-log", str(path), "--store", str(store), "--code", "0110", "--dcn", "on", "--as", "x"
    )
    assert code == 0
    (row,) = Store(store).read().table.to_pylist()
    assert (row["sweep"], row["code"], row["dcn"], row["query_content_position"]) == ("x", "0110", True, True)


def test_a_log_that_does_not_say_its_cell_asks_for_the_flags(tmp_path: Path) -> None:
    path = _log(tmp_path / "my_experiment.log.json", header=False)
    code, out, err = run_cli("import-log", str(path), "--store", str(tmp_path / "store"))
    assert code == 1 and "imported 0 runs" in out
    assert err == f"warning: {path}: cannot tell its attention code or DCN setting; pass --code and --dcn\n"
