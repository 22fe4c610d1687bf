from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ablation import ALL_CODES, AttentionCode, InputError, SweepFileError, UnknownSweepError, load_sweep
from ablation.grid.cells import Selection, select
from ablation.grid.schema import describe
from ablation.grid.sweep import SweepFile, available_sweeps

from .helpers.cli import write_sweep


def test_the_shipped_sweeps() -> None:
    assert set(available_sweeps()) >= {"coco-1x", "smoke"}
    paper = load_sweep("coco-1x")
    assert len(paper.cells) == 32
    assert {c.code for c in paper.cells} == set(ALL_CODES)
    assert paper.resources.gpus * paper.resources.images_per_gpu == 16
    assert (paper.schedule.name, paper.schedule.epochs, paper.dataset.name) == ("1x", 12, "coco")
    smoke = load_sweep("smoke")
    assert smoke.resources.gpus == 0 and not smoke.model.pretrained
    assert [(c.code, c.dcn) for c in smoke.cells] == [(c.code, c.dcn) for c in paper.cells]
    assert smoke.dataset.synthetic is not None and smoke.dataset.classes is not None


def test_an_empty_file_is_the_paper_s_setting(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, ""))
    assert sweep.name == "mine"
    assert sweep.settings == SweepFile()
    assert dataclasses.replace(load_sweep("coco-1x").settings, description="") == SweepFile()
    assert len(sweep.cells) == 32


def test_a_sweep_is_found_by_path_and_by_name_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "experiments" / "sweeps"
    folder.mkdir(parents=True)
    write_sweep(folder, '[grid]\ncodes = ["0010"]\n', name="local")
    monkeypatch.chdir(tmp_path)
    assert len(load_sweep("local").cells) == 2
    assert len(load_sweep("experiments/sweeps/local.toml").cells) == 2
    assert "coco-1x" in available_sweeps()  # the checkout's sweeps stay visible


def test_unknown_sweep_names_the_valid_ones() -> None:
    with pytest.raises(UnknownSweepError, match=r"unknown sweep 'nope'; valid sweeps: .*coco-1x.*smoke"):
        load_sweep("nope")
    with pytest.raises(UnknownSweepError, match="no sweep file at"):
        load_sweep("missing/file.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "colour = 1\n",
            r"unknown key 'colour'; valid keys: description, grid, model, schedule, dataset, resources",
        ),
        (
            "[schedule]\nepoch = 3\n",
            r"\[schedule\] unknown key 'epoch'; valid keys: name, epochs, optimizer, lr, weight_decay",
        ),
        (
            "[model.attention]\nheads = 3\n",
            r"\[model.attention\] unknown key 'heads'; valid keys: module, implementation, stages, position",
        ),
        ('[grid]\ncodes = ["10a1"]\n', r"grid.codes\[0\]: bad attention code '10a1'"),
        ('[grid]\ncodes = "some"\n', r"grid.codes: expected a list, got the string 'some'"),
        ('[grid]\ncodes = ["0010", "0010"]\n', r"\[grid\] codes: a code is listed twice"),
        ("[grid]\ndcn = [1]\n", r"grid.dcn\[0\]: expected true or false, got 1"),
        ('[schedule]\nepochs = "12"\n', r"schedule.epochs: expected an integer, got the string '12'"),
        ("[schedule]\nepochs = true\n", r"schedule.epochs: expected an integer, got true"),
        ("[schedule]\nmilestones = [11, 8]\n", r"\[schedule\] milestones must rise strictly"),
        ('[schedule]\nname = "1 x"\n', r"\[schedule\] name '1 x' must be letters, digits"),
        (
            "[model.attention]\nstages = [true]\n",
            r"model.attention.stages: expected a list of 4 values, got 1",
        ),
        (
            '[model.attention]\nposition = "before"\n',
            r"position 'before' is not one of after_conv1, after_conv2",
        ),
        (
            '[model.attention]\nmodule = "stock"\n',
            r"\[model.attention\] module 'stock' is not one of 'ablation', 'mmcv'",
        ),
        (
            '[model.attention]\nimplementation = "flash"\n',
            r"\[model.attention\] implementation 'flash' is not one of 'reference', 'sdpa'",
        ),
        (
            '[model.attention]\nmodule = "mmcv"\nimplementation = "sdpa"\n',
            r"\[model.attention\] implementation 'sdpa' needs module = \"ablation\"",
        ),
        ("[resources]\ngpus = -1\n", r"\[resources\] gpus must be an integer from 0 to 64, got -1"),
        ("model = 3\n", r"\[model\] expected a table, got 3"),
        ("overrides = 3\n", r"overrides: expected a table, got 3"),
        ("[dataset]\nsynthetic = [4, 2]\n", r"\[dataset\] synthetic: also set classes"),
        ("[benchmark]\ntimed_images = 0\n", r"\[benchmark\] timed_images must be at least 1, got 0"),
        ("[grid\n", r"not valid TOML"),
    ],
)
def test_bad_files_get_one_line_naming_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_sweep(tmp_path, text)
    with pytest.raises(SweepFileError, match=message) as caught:
        load_sweep(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b"description = '\xff'\n")
    with pytest.raises(SweepFileError, match="cannot read the sweep file"):
        load_sweep(path)


def test_the_schema_documents_every_setting() -> None:
    rows = describe(SweepFile)
    keys = [key for key, _, _ in rows]
    assert "schedule.epochs" in keys and "model.attention.kv_stride" in keys and "[resources]" in keys
    assert all(doc for _, _, doc in rows)
    assert dict((k, d) for k, d, _ in rows)["grid.codes"] == '"all"'


def test_codes_parse_to_attention_codes(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, '[grid]\ncodes = ["1111", "0000"]\ndcn = [true]\n'))
    assert [c.code for c in sweep.cells] == [AttentionCode("0000"), AttentionCode("1111")]
    assert all(c.dcn for c in sweep.cells)


@given(
    st.sets(st.sampled_from(ALL_CODES), min_size=1).map(sorted),
    st.sampled_from([[False], [True], [False, True], [True, False]]),
)
def test_the_grid_is_the_product_of_its_axes(codes: list[AttentionCode], dcn: list[bool]) -> None:
    text = f"[grid]\ncodes = {[str(c) for c in codes]}\ndcn = {str(dcn).lower()}\n".replace("'", '"')
    with tempfile.TemporaryDirectory() as folder:
        sweep = load_sweep(write_sweep(Path(folder), text))
    cells = sweep.cells
    assert len(cells) == len(codes) * len(dcn) == len(set(cells))
    assert list(cells) == sorted(cells, key=lambda c: (c.code, c.dcn))
    assert {(c.code, c.dcn) for c in cells} == {(c, d) for c in codes for d in dcn}


def test_selecting_a_dcn_setting_the_grid_lacks_is_an_error(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, "[grid]\ndcn = [false]\n"))
    with pytest.raises(InputError, match="no cell with dcn=on in this sweep's grid"):
        select(sweep.cells, Selection(dcn=True))
    assert len(select(sweep.cells, Selection(codes=(AttentionCode("0010"),)))) == 1
