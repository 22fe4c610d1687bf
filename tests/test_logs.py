from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ablation.errors import AblationError, LogFormatError
from ablation.results import logs
from ablation.run.result_file import METRICS

HEADER = {
    "env_info": "sys.platform: linux\nPython: 3.7.10\nCUDA available: True\nPyTorch: 1.7.0",
    "config": "model = dict(\n    type='FasterRCNN',\n    backbone=dict(type='ResNet', depth=50))\n",
    "seed": 0,
    "exp_name": "faster_rcnn_r50_fpn_attention_1111_1x_coco.py",
}


def _train(epoch: int, it: int, memory: int | None = 8181, **extra: Any) -> dict[str, Any]:
    line: dict[str, Any] = {"mode": "train", "epoch": epoch, "iter": it, "lr": 0.02, "data_time": 0.05}
    if memory is not None:
        line["memory"] = memory
    line.update(loss_rpn_cls=0.06, loss_rpn_bbox=0.05, loss_cls=0.3, acc=90.1, loss_bbox=0.25, loss=0.66)
    line.update(time=0.93, **extra)
    return line


def _val(epoch: int, ap: tuple[float, ...], copypaste: bool = True) -> dict[str, Any]:
    line: dict[str, Any] = {"mode": "val", "epoch": epoch, "iter": 7330, "lr": 0.02}
    line.update(zip(METRICS, ap, strict=True))
    if copypaste:
        line["bbox_mAP_copypaste"] = " ".join(f"{v:.3f}" for v in ap)
    return line


AP1 = (0.214, 0.391, 0.215, 0.12, 0.235, 0.281)
AP2 = (0.374, 0.581, 0.404, 0.212, 0.41, 0.481)


def _metrics(*values: float | None) -> dict[str, float | None]:
    return dict(zip(METRICS, values, strict=True))


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _one_line(error: pytest.ExceptionInfo[LogFormatError], path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# ---- read_json_lines -------------------------------------------------------------------------------------


def test_json_lines_skip_blank_lines_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b'{"a": 1}\r\n\r\n   \n{"b": [1, 2]}\r\n')
    assert logs.read_json_lines(path) == [{"a": 1}, {"b": [1, 2]}]


def test_json_lines_accept_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert logs.read_json_lines(path) == [{"a": 1}]


def test_a_truncated_last_line_is_named(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "cut.log.json", [HEADER, _train(1, 50), _train(1, 100)])
    with path.open("a", encoding="utf-8") as file:
        file.write('{"mode": "train", "epoch": 1, "iter": 150, "lr": 0.0')  # the job died mid-write
    for reader in (logs.read_json_lines, logs.mmdet2_log, logs.mmengine_scalars, logs.test_metrics):
        with pytest.raises(LogFormatError) as error:
            reader(path)
        assert _one_line(error, path) == f"{path}: line 4 is not JSON (truncated or corrupt?)"


def test_a_corrupt_middle_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mid.json"
    path.write_text('{"a": 1}\n\n{"a": 2,,}\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(LogFormatError, match=r": line 3 is not JSON"):
        logs.read_json_lines(path)


@pytest.mark.parametrize(
    ("text", "what"), [("[1, 2, 3]", "an array"), ("42", "42"), ('"text"', "'text'"), ("null", "None")]
)
def test_a_line_that_is_json_but_not_an_object(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(f'{{"a": 1}}\n{text}\n', encoding="utf-8")
    with pytest.raises(LogFormatError) as error:
        logs.read_json_lines(path)
    assert _one_line(error, path) == f"{path}: line 2 is {what}, not a JSON object"


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_an_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(content)
    for reader in (logs.read_json_lines, logs.mmdet2_log, logs.mmengine_scalars, logs.test_metrics):
        with pytest.raises(LogFormatError) as error:
            reader(path)
        assert _one_line(error, path) == f"{path}: empty file"


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "20240101_000000.json"
    readers = (
        logs.read_json_lines,
        logs.mmdet2_log,
        logs.mmengine_scalars,
        logs.test_metrics,
        logs.benchmark_fps,
    )
    for reader in readers:
        with pytest.raises(LogFormatError) as error:
            reader(path)
        assert _one_line(error, path) == f"{path}: no such file"


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match=r"is a folder, not a file"):
        logs.read_json_lines(tmp_path)
    with pytest.raises(LogFormatError, match=r"is a folder, not a file"):
        logs.benchmark_fps(tmp_path)


def test_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x08\x08\x00\xff\xfe\x80\x81" + bytes(range(256)))
    with pytest.raises(LogFormatError) as error:
        logs.read_json_lines(path)
    assert _one_line(error, path) == f"{path}: line 1 is not UTF-8 text (binary or corrupt?)"
    assert isinstance(error.value, AblationError)


def test_utf8_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "20240101_000000.log"
    path.write_text(
        "2024/01/01 00:00:00 - mmengine - INFO - \x00 Epoch(train) [1][50/7330]\n", encoding="utf-8"
    )
    with pytest.raises(LogFormatError, match=r": line 1 is not JSON"):
        logs.read_json_lines(path)


def test_deeply_nested_json_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(LogFormatError, match=r": line 1 is not JSON"):
        logs.read_json_lines(path)


# ---- mmdet 2.x .log.json ---------------------------------------------------------------------------------


def test_mmdet2_log_with_header(tmp_path: Path) -> None:
    lines = [HEADER, _train(1, 50, 3000), _train(1, 100, 3100), _val(1, AP1)]
    lines += [_train(2, 50, 3200), _train(2, 100, 3150), _val(2, AP2)]
    figures = logs.mmdet2_log(_write_lines(tmp_path / "20210101_000000.log.json", lines))
    assert figures.metrics == dict(zip(METRICS, AP2, strict=True))
    assert figures.epochs == 2
    assert figures.memory_mb == 3150.0
    assert figures.iterations is None
    assert figures.config == HEADER["config"]
    assert figures.header == HEADER


def test_mmdet2_log_without_header(tmp_path: Path) -> None:
    lines = [_train(1, 50), _train(1, 100, memory=8200), _val(1, AP1)]
    figures = logs.mmdet2_log(_write_lines(tmp_path / "20200101_000000.log.json", lines))
    assert figures == logs.LogFigures(
        metrics=dict(zip(METRICS, AP1, strict=True)), memory_mb=8200.0, epochs=1
    )
    assert figures.config is None and figures.header is None


def test_mmdet2_memory_is_the_last_training_line_of_the_last_epoch_not_the_max(tmp_path: Path) -> None:
    lines = [_train(1, 50, 9000), _train(1, 100, 9999), _val(1, AP1)]
    lines += [_train(2, 50, 8500), _train(2, 100, 8400), _val(2, AP2)]
    assert logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", lines)).memory_mb == 8400.0


def test_mmdet2_without_memory_on_cpu(tmp_path: Path) -> None:
    lines = [_train(1, 50, None), _val(1, AP1)]
    assert logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", lines)).memory_mb is None


def test_mmdet2_metrics_come_from_the_last_epoch_only(tmp_path: Path) -> None:
    lines = [HEADER, _train(1, 50), _val(1, AP1), _train(2, 50), _train(2, 100)]  # epoch 2 not evaluated
    figures = logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", lines))
    assert figures.metrics == {}
    assert figures.epochs == 2


def test_mmdet2_the_last_val_line_of_the_last_epoch_wins(tmp_path: Path) -> None:
    lines = [_train(1, 50), _val(1, AP2), _val(1, AP1)]
    assert logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", lines)).metrics["bbox_mAP"] == 0.214


def test_mmdet2_copypaste_only_val_line(tmp_path: Path) -> None:
    val = {"mode": "val", "epoch": 1, "iter": 7330, "lr": 0.02}
    val["bbox_mAP_copypaste"] = "0.374 0.581 0.404 0.212 0.410 -1.000"
    val["segm_mAP"] = 0.341
    val["segm_mAP_copypaste"] = "0.341 0.551 0.363 0.155 0.370 0.506"
    figures = logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", [_train(1, 50), val]))
    assert figures.metrics == {
        "bbox_mAP": 0.374,
        "bbox_mAP_50": 0.581,
        "bbox_mAP_75": 0.404,
        "bbox_mAP_s": 0.212,
        "bbox_mAP_m": 0.41,
        "bbox_mAP_l": None,
    }


def test_mmdet2_copypaste_fills_only_the_missing_keys(tmp_path: Path) -> None:
    val = {"mode": "val", "epoch": 1, "bbox_mAP": 0.3741, "bbox_mAP_copypaste": "0.374 0.5 0.4 0.2 0.4 0.5"}
    metrics = logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", [_train(1, 50), val])).metrics
    assert metrics["bbox_mAP"] == 0.3741
    assert metrics["bbox_mAP_l"] == 0.5
    assert set(metrics) == set(METRICS)


def test_mmdet2_a_bad_copypaste_is_named(tmp_path: Path) -> None:
    val = {"mode": "val", "epoch": 1, "bbox_mAP_copypaste": "0.374 0.581 oops"}
    path = _write_lines(tmp_path / "a.log.json", [_train(1, 50), val])
    with pytest.raises(LogFormatError) as error:
        logs.mmdet2_log(path)
    assert (
        _one_line(error, path) == f"{path}: line 2: bbox_mAP_copypaste is '0.374 0.581 oops', not 6 numbers"
    )


def test_mmdet2_minus_one_is_none(tmp_path: Path) -> None:
    ap = (0.3, 0.5, 0.3, -1.0, 0.3, 0.4)
    metrics = logs.mmdet2_log(
        _write_lines(tmp_path / "a.log.json", [_train(1, 50), _val(1, ap, False)])
    ).metrics
    assert metrics["bbox_mAP_s"] is None
    assert metrics["bbox_mAP"] == 0.3
    assert -1 not in metrics.values()


def test_mmdet2_val_line_with_segm_keys_only_gives_no_box_figures(tmp_path: Path) -> None:
    val = {"mode": "val", "epoch": 1, "segm_mAP": 0.34, "segm_mAP_copypaste": "0.34 0.55 0.36 0.15 0.37 0.50"}
    assert logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", [_train(1, 50), val])).metrics == {}


def test_mmdet2_ignores_unknown_modes_keys_and_mode_less_lines(tmp_path: Path) -> None:
    lines = [_train(1, 50, whatever=[1, {"x": None}]), {"mode": "test", "epoch": 9}, {"note": "no mode"}]
    figures = logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", lines))
    assert (figures.epochs, figures.memory_mb, figures.metrics, figures.header) == (1, 8181.0, {}, None)


def test_mmdet2_epochs_is_the_largest_training_epoch(tmp_path: Path) -> None:
    # two logs of a resumed run pasted together in the wrong order
    lines = [_train(3, 50, 7000), _val(3, AP2), _train(1, 50, 6000), _val(1, AP1)]
    figures = logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", lines))
    assert (figures.epochs, figures.memory_mb, figures.metrics["bbox_mAP"]) == (3, 7000.0, 0.374)


def test_mmdet2_no_training_line(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "a.log.json", [HEADER, _val(1, AP1)])
    with pytest.raises(LogFormatError) as error:
        logs.mmdet2_log(path)
    assert _one_line(error, path) == (
        f"{path}: no training line (mode 'train'); is this an mmdet 2.x .log.json?"
    )


def test_mmdet2_refuses_mmengine_scalars(tmp_path: Path) -> None:
    lines = [{"lr": 0.01, "loss": 2.5, "epoch": 1, "iter": 2, "step": 2}, {"coco/bbox_mAP": 0.1, "step": 1}]
    with pytest.raises(LogFormatError, match=r"no training line \(mode 'train'\)"):
        logs.mmdet2_log(_write_lines(tmp_path / "scalars.json", lines))


@pytest.mark.parametrize(("key", "value"), [("epoch", "1"), ("epoch", 1.5), ("epoch", True), ("epoch", None)])
def test_mmdet2_a_bad_epoch_is_named(tmp_path: Path, key: str, value: object) -> None:
    bad = _train(1, 100)
    bad[key] = value
    path = _write_lines(tmp_path / "a.log.json", [_train(1, 50), bad])
    with pytest.raises(LogFormatError) as error:
        logs.mmdet2_log(path)
    assert _one_line(error, path).startswith(f"{path}: line 2: epoch is ")


def test_mmdet2_a_training_line_without_epoch(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "a.log.json", [{"mode": "train", "iter": 50}])
    with pytest.raises(LogFormatError) as error:
        logs.mmdet2_log(path)
    assert _one_line(error, path) == f"{path}: line 1 (mode 'train') has no epoch"


def test_mmdet2_a_metric_that_is_not_a_number(tmp_path: Path) -> None:
    val = _val(1, AP1)
    val["bbox_mAP_75"] = "n/a"
    path = _write_lines(tmp_path / "a.log.json", [_train(1, 50), val])
    with pytest.raises(LogFormatError) as error:
        logs.mmdet2_log(path)
    assert _one_line(error, path) == f"{path}: line 2: bbox_mAP_75 is 'n/a', not a number"


def test_mmdet2_an_epoch_written_as_float_is_accepted(tmp_path: Path) -> None:
    line = _train(1, 50)
    line["epoch"] = 12.0
    assert logs.mmdet2_log(_write_lines(tmp_path / "a.log.json", [line])).epochs == 12


# ---- mmengine vis_data/scalars.json ----------------------------------------------------------------------


def _step(epoch: int, it: int, memory: int | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {"lr": 0.00334, "data_time": 0.0157, "loss": 2.81, "loss_rpn_cls": 0.69}
    line.update(loss_rpn_bbox=0.16, loss_cls=1.38, acc=20.3, loss_bbox=0.57, time=1.1, epoch=epoch, iter=it)
    if memory is not None:
        line["memory"] = memory
    line["step"] = it
    return line


def _coco(epoch: int, ap: tuple[float, ...]) -> dict[str, Any]:
    line: dict[str, Any] = {f"coco/{key}": value for key, value in zip(METRICS, ap, strict=True)}
    line.update(data_time=0.0037, time=0.207, step=epoch)
    return line


def test_scalars_of_a_cpu_run(tmp_path: Path) -> None:
    lines = [_step(1, 2), _coco(1, (0.001, 0.007, 0.0, 0.0, 0.002, 0.0))]
    lines += [_step(2, 5), _coco(2, (0.002, 0.004, 0.003, 0.0, 0.003, 0.0))]
    figures = logs.mmengine_scalars(_write_lines(tmp_path / "scalars.json", lines))
    assert figures == logs.LogFigures(
        metrics=_metrics(0.002, 0.004, 0.003, 0.0, 0.003, 0.0),
        memory_mb=None,
        epochs=2,
        iterations=5,
    )


def test_scalars_memory_is_the_max_over_training_lines(tmp_path: Path) -> None:
    lines = [_step(1, 50, 3900), _step(1, 100, 4120), _coco(1, AP1), _step(2, 150, 4010), _step(2, 200, 3950)]
    figures = logs.mmengine_scalars(_write_lines(tmp_path / "scalars.json", lines))
    assert figures.memory_mb == 4120.0
    assert (figures.epochs, figures.iterations) == (2, 200)
    assert figures.metrics == dict(zip(METRICS, AP1, strict=True))  # the last validation line, epoch 1's


def test_scalars_validation_only(tmp_path: Path) -> None:
    figures = logs.mmengine_scalars(_write_lines(tmp_path / "scalars.json", [_coco(0, AP2)]))
    assert figures == logs.LogFigures(metrics=dict(zip(METRICS, AP2, strict=True)))


def test_scalars_training_only(tmp_path: Path) -> None:
    figures = logs.mmengine_scalars(_write_lines(tmp_path / "scalars.json", [_step(1, 50, 100)]))
    assert figures == logs.LogFigures(metrics={}, memory_mb=100.0, epochs=1, iterations=50)


def test_scalars_of_iteration_based_training_have_no_epochs(tmp_path: Path) -> None:
    lines = [{"lr": 0.02, "loss": 1.0, "iter": 500, "memory": 2000, "step": 500}, _coco(500, AP1)]
    figures = logs.mmengine_scalars(_write_lines(tmp_path / "scalars.json", lines))
    assert (figures.epochs, figures.iterations, figures.memory_mb) == (None, 500, 2000.0)


def test_scalars_minus_one_is_none(tmp_path: Path) -> None:
    ap = (0.001, 0.007, 0.0, -1.0, -1.0, 0.0)
    metrics = logs.mmengine_scalars(_write_lines(tmp_path / "scalars.json", [_coco(1, ap)])).metrics
    assert metrics["bbox_mAP_s"] is None and metrics["bbox_mAP_m"] is None
    assert metrics["bbox_mAP_75"] == 0.0


def test_scalars_without_training_or_validation_lines(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "scalars.json", [{"lr": 0.01, "step": 1}])
    with pytest.raises(LogFormatError) as error:
        logs.mmengine_scalars(path)
    assert "no training line" in _one_line(error, path)


def test_scalars_refuses_an_mmdet2_log(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "a.log.json", [HEADER, _train(1, 50)])
    with pytest.raises(LogFormatError) as error:
        logs.mmengine_scalars(path)
    assert _one_line(error, path) == (
        f"{path}: line 2 has a 'mode'; this is an mmdet 2.x .log.json, not mmengine scalars"
    )


def test_scalars_a_bad_memory_is_named(tmp_path: Path) -> None:
    bad = _step(1, 100)
    bad["memory"] = "4 GB"
    path = _write_lines(tmp_path / "scalars.json", [_step(1, 50, 10), bad])
    with pytest.raises(LogFormatError) as error:
        logs.mmengine_scalars(path)
    assert _one_line(error, path) == f"{path}: line 2: memory is '4 GB', not a number"


def test_scalars_nan_loss_is_fine_and_nan_metric_is_none(tmp_path: Path) -> None:
    path = tmp_path / "scalars.json"
    path.write_text(
        '{"loss": NaN, "epoch": 1, "iter": 2, "step": 2}\n'
        '{"coco/bbox_mAP": NaN, "coco/bbox_mAP_50": Infinity}\n',
        encoding="utf-8",
    )
    figures = logs.mmengine_scalars(path)
    assert figures.metrics == {"bbox_mAP": None, "bbox_mAP_50": None}
    assert figures.iterations == 2


# ---- tools/test.py metrics JSON --------------------------------------------------------------------------

TEST_LINE = (
    '{"coco/bbox_mAP": 0.002, "coco/bbox_mAP_50": 0.004, "coco/bbox_mAP_75": 0.003, "coco/bbox_mAP_s": 0.0, '
    '"coco/bbox_mAP_m": 0.003, "coco/bbox_mAP_l": -1.0, "data_time": 0.0034, "time": 0.1948}'
)


def test_test_metrics_of_one_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "20240101_000000.json"
    path.write_text(TEST_LINE, encoding="utf-8")
    figures = logs.test_metrics(path)
    assert figures == logs.LogFigures(metrics=_metrics(0.002, 0.004, 0.003, 0.0, 0.003, None))


def test_test_metrics_takes_the_last_line_with_box_ap(tmp_path: Path) -> None:
    path = tmp_path / "20240101_000000.json"
    path.write_text(
        '{"coco/bbox_mAP": 0.5, "coco/segm_mAP": 0.4}\n' + TEST_LINE + '\n{"data_time": 0.1, "time": 0.2}\n',
        encoding="utf-8",
    )
    assert logs.test_metrics(path).metrics["bbox_mAP"] == 0.002


def test_test_metrics_without_coco_keys(tmp_path: Path) -> None:
    path = tmp_path / "20240101_000000.json"
    path.write_text('{"pascal_voc/mAP": 0.8, "data_time": 0.0034, "time": 0.1948}', encoding="utf-8")
    with pytest.raises(LogFormatError) as error:
        logs.test_metrics(path)
    assert _one_line(error, path) == f"{path}: no coco/bbox_mAP; not a tools/test.py metrics file"


def test_test_metrics_of_an_array(tmp_path: Path) -> None:
    path = tmp_path / "20240101_000000.json"
    path.write_text("[" + TEST_LINE + "]", encoding="utf-8")
    with pytest.raises(LogFormatError, match=r"line 1 is an array, not a JSON object"):
        logs.test_metrics(path)


# ---- benchmark.py output ---------------------------------------------------------------------------------


def _bench(tmp_path: Path, text: str | bytes) -> float | None:
    path = tmp_path / "benchmark.log"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return logs.benchmark_fps(path)


MMDET3 = """\
11/22 07:05:01 - mmengine - INFO - Load checkpoint from work_dirs/x/epoch_12.pth
11/22 07:05:40 - mmdet - INFO - Done image [50 /2000], fps: 12.1 img/s, times per image: 82.6 ms/img, \
cuda memory: 2211 MB
11/22 07:06:20 - mmdet - INFO - Done image [2000/2000], fps: 13.9 img/s, times per image: 71.9 ms/img, \
cuda memory: 2211 MB
11/22 07:06:25 - mmdet - INFO - ============== Done ==================
11/22 07:06:25 - mmdet - INFO - Overall fps: 13.8 img/s, times per image: 72.5 ms/img
11/22 07:06:25 - mmdet - INFO - cuda memory: 2211 MB
"""


def test_benchmark_mmdet3(tmp_path: Path) -> None:
    assert _bench(tmp_path, MMDET3) == 13.8


def test_benchmark_mmdet2(tmp_path: Path) -> None:
    text = (
        "Done image [50 / 2000], fps: 12.1 img / s, times per image: 82.6 ms / img\n"
        "Done image [2000/ 2000], fps: 14.0 img / s, times per image: 71.4 ms / img\n"
        "Overall fps: 13.9 img / s, times per image: 71.9 ms / img\n"
    )
    assert _bench(tmp_path, text) == 13.9


def test_benchmark_early_mmdet2_without_times_per_image(tmp_path: Path) -> None:
    assert (
        _bench(tmp_path, "Done image [50 / 2000], fps: 12.1 img / s\nOverall fps: 11.5 img / s\n\n") == 11.5
    )


def test_benchmark_repeat_form_takes_the_average(tmp_path: Path) -> None:
    text = (
        "11/22 07:06:25 - mmdet - INFO - Overall fps: [13.7, 13.9][13.8] img/s, "
        "times per image: [73.0, 71.9][72.5] ms/img\n"
    )
    assert _bench(tmp_path, text) == 13.8
    assert _bench(tmp_path, "Overall fps: [20.1, 20.3, 20.5][20.3] img / s\n") == 20.3


def test_benchmark_ignores_the_dataloader_and_dataset_benchmarks(tmp_path: Path) -> None:
    text = MMDET3 + (
        "11/22 08:00:00 - mmdet - INFO - Overall fps: 250.0 batch/s, times per batch: 4.0 ms/batch, "
        "batch size: 2, num_workers: 2\n"
        # mmdet 3.3's dataloader benchmark says img/s in its repeat form, but times per batch
        "11/22 08:01:00 - mmdet - INFO - Overall fps: [250.1, 249.9][250.0] img/s, times per batch: "
        "[4.0, 4.0][4.0] ms/batch, batch size: 2, num_workers: 2\n"
        "11/22 08:02:00 - mmdet - INFO - Overall fps: 480.5 img/s, times per img: 2.1 ms/img\n"
    )
    assert _bench(tmp_path, text) == 13.8


def test_benchmark_only_per_iteration_lines_is_none(tmp_path: Path) -> None:
    text = (
        "11/22 07:05:40 - mmdet - INFO - Done image [50 /2000], fps: 12.1 img/s, times per image: 82.6 ms/img"
    )
    assert _bench(tmp_path, text) is None


def test_benchmark_the_last_line_wins(tmp_path: Path) -> None:
    text = (
        "Overall fps: 9.5 img / s\n" + MMDET3 + "Overall fps: [15.0, 15.2][15.1] img/s, times per image: x\n"
    )
    assert _bench(tmp_path, text) == 15.1
    assert _bench(tmp_path, MMDET3 + MMDET3.replace("13.8 img/s", "14.2 img/s")) == 14.2


@pytest.mark.parametrize("text", ["", "\n", "training finished\nfps: 13.8\n", "Overall fps: n/a img/s\n"])
def test_benchmark_without_an_overall_line_is_none(tmp_path: Path, text: str) -> None:
    assert _bench(tmp_path, text) is None


def test_benchmark_survives_non_utf8_bytes(tmp_path: Path) -> None:
    text = b"\xff\xfe\x00garbage \x80\x81\n" + MMDET3.encode() + b"\xc3\x28 trailing\n"
    assert _bench(tmp_path, text) == 13.8
    assert _bench(tmp_path, bytes(range(256)) * 4) is None


def test_benchmark_windows_line_endings(tmp_path: Path) -> None:
    assert _bench(tmp_path, MMDET3.replace("\n", "\r\n")) == 13.8
