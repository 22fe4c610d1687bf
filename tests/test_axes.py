"""Seeds and extra axes of a grid ([grid] seeds, [grid.axes]): validation, the cells they make, names, ids,
configs, and the selection flags (--where, --seeds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from ablation import AttentionCode, InputError, Selection, SweepFileError, load_sweep, plan
from ablation.grid.axes import short_names
from ablation.grid.cells import select

from .helpers.cli import REPO, run_script, write_sweep

GRID = '[grid]\ncodes = ["0000", "1111"]\ndcn = [false, true]\n'
KV = '[grid.axes]\n"model.attention.kv_stride" = [1, 2]\n'


def sweep_of(tmp_path: Path, text: str, name: str = "axes") -> Path:
    return write_sweep(tmp_path, text, name)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(SweepFileError) as caught:
        load_sweep(sweep_of(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    return message.split(": ", 1)[1]  # without the file's path


def test_an_attention_axis_varies_only_the_cells_with_attention(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_of(tmp_path, GRID + "seeds = [0, 1, 2]\n" + KV))
    cells = sweep.cells
    # 0000 (DCN off, on) once each, 1111 once per kv_stride; every one of them 3 times, once per seed
    assert len(cells) == (2 + 2 * 2) * 3
    assert [(str(c.code), c.dcn, c.axes, c.seed) for c in cells[:4]] == [
        ("0000", False, (), 0),
        ("0000", False, (), 1),
        ("0000", False, (), 2),
        ("0000", True, (), 0),
    ]
    assert cells[6].axes == (("model.attention.kv_stride", 1),) and cells[9].axes[0][1] == 2
    (axis,) = sweep.axes
    assert axis.short == "kv_stride" and axis.varies == "attention"


def test_quoted_and_nested_axis_names_read_alike(tmp_path: Path) -> None:
    quoted = load_sweep(sweep_of(tmp_path, GRID + KV, "quoted"))
    nested = load_sweep(
        sweep_of(tmp_path, GRID + "[grid.axes.model.attention]\nkv_stride = [1, 2]\n", "nested")
    )
    assert quoted.axes == nested.axes and quoted.cells == nested.cells


@pytest.mark.parametrize(
    ("axes", "expected"),
    [
        (
            '"model.attention.kv_strid" = [1, 2]',
            "[grid.axes] model.attention.kv_strid: no such setting; did you mean model.attention.kv_stride?",
        ),
        (
            '"resources.gpus" = [1, 2]',
            "[grid.axes] resources.gpus: [resources] is shared by every cell of a sweep; an axis is a "
            "setting of [model], [schedule] or a config key under [overrides] "
            "(see `ablation sweeps --schema`)",
        ),
        (
            '"model.attention.kv_stride" = [1, "two"]',
            "[grid.axes] model.attention.kv_stride[1]: expected an integer, got the string 'two'",
        ),
        (
            '"model.attention.kv_stride" = [1, 0]',
            "[grid.axes] model.attention.kv_stride[1]: kv_stride must be at least 1, got 0",
        ),
        (
            '"model.attention.kv_stride" = 2',
            "[grid.axes] model.attention.kv_stride: expected a non-empty list of values, got 2",
        ),
        (
            '"model.attention.kv_stride" = [2, 2]',
            "[grid.axes] model.attention.kv_stride: a value is listed twice",
        ),
        ('"schedule" = [1]', "[grid.axes] schedule: a table, not a setting; name one of its settings"),
        (
            '"overrides.model.x" = [{ a = 1 }]',
            "[grid.axes] overrides.model.x[0]: a table; under [overrides] an axis value is a value or a list",
        ),
        (
            '"model.attention.stages" = [[false, false, false, false]]',
            "[grid.axes] model.attention.stages[0]: stages: switch attention on in at least one stage",
        ),
    ],
)
def test_a_bad_axis_is_one_line_naming_it(tmp_path: Path, axes: str, expected: str) -> None:
    assert error_of(tmp_path, f"{GRID}[grid.axes]\n{axes}\n") == expected


def test_an_axis_that_varies_no_cell_is_an_error(tmp_path: Path) -> None:
    assert error_of(tmp_path, '[grid]\ncodes = ["0000"]\n' + KV) == (
        "[grid.axes] model.attention.kv_stride varies no cell: its settings apply only to cells with "
        "attention (code != 0000), and the grid has none"
    )
    dcn = '[grid]\ndcn = [false]\n[grid.axes]\n"model.dcn.deform_groups" = [1, 2]\n'
    assert "varies no cell: its settings apply only to cells with dcn = true" in error_of(tmp_path, dcn)


def test_a_combination_of_values_that_is_no_setting_is_an_error(tmp_path: Path) -> None:
    text = GRID + '[grid.axes]\n"model.attention.module" = ["ablation", "mmcv"]\n'
    text += '"model.attention.implementation" = ["reference", "sdpa"]\n'
    assert error_of(tmp_path, text) == (
        "[grid.axes] the cells with model.attention.module = 'mmcv', model.attention.implementation = "
        "'sdpa': implementation 'sdpa' needs module = \"ablation\" (mmcv's has only its own)"
    )


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [
        ("[0, 0]", "[grid] seeds: a seed is listed twice"),
        ("[-1]", "[grid] seeds must be integers from 0 to 2**32 - 1 (numpy's range), got [-1]"),
        ("[]", "[grid] seeds: give at least one seed, or leave seeds unset"),
        ('["0"]', "grid.seeds[0]: expected an integer, got the string '0'"),
    ],
)
def test_bad_seeds_are_one_line(tmp_path: Path, seeds: str, expected: str) -> None:
    assert error_of(tmp_path, f"[grid]\nseeds = {seeds}\n") == expected


def test_seeds_and_a_seed_in_the_overrides_are_an_error(tmp_path: Path) -> None:
    text = "[grid]\nseeds = [0]\n[overrides]\nrandomness.seed = 3\n"
    assert error_of(tmp_path, text) == (
        "[overrides] randomness.seed and [grid] seeds both set the seed; keep [grid] seeds"
    )


def test_values_that_would_share_a_name_are_an_error(tmp_path: Path) -> None:
    text = GRID + '[grid.axes]\n"overrides.model.note" = ["a b", "a-b"]\n'
    assert error_of(tmp_path, text) == (
        "[grid.axes] overrides.model.note: values 'a b' and 'a-b' would give cells one name (note-a-b); make "
        "them differ in letters or digits"
    )


def test_without_axes_or_seeds_the_cells_names_and_ids_are_today_s(tmp_path: Path) -> None:
    """The shipped sweep's names and ids, as the golden plan has them (an explicit empty table alike)."""
    shipped = plan(load_sweep("coco-1x"), tmp_path / "a", write=False)
    text = (REPO / "experiments/sweeps/coco-1x.toml").read_text() + "\n[grid.axes]\n"
    again = plan(load_sweep(sweep_of(tmp_path, text, "coco-1x")), tmp_path / "b", write=False)
    assert [(p.name, p.cell_id) for p in again.cells] == [(p.name, p.cell_id) for p in shipped.cells]
    golden = [line.split()[:2] for line in (REPO / "tests/golden/plan-coco-1x.txt").read_text().splitlines()]
    assert [[p.name, p.cell_id] for p in shipped.cells] == golden[2 : 2 + len(shipped.cells)]


def test_names_carry_axis_labels_and_seeds_and_replicates_share_the_cell_s_id(tmp_path: Path) -> None:
    text = GRID.replace("dcn = [false, true]", "dcn = [true]") + "seeds = [0, 1]\n" + KV
    text += '"model.dcn.stages" = [[false, true, true, true], [false, false, true, false]]\n'
    planned = plan(load_sweep(sweep_of(tmp_path, text)), tmp_path / "runs")
    names = [p.name for p in planned.cells]
    assert names[:2] == [
        "faster-rcnn_r50-dconv-c3-c5_fpn_1x_coco_stages-c3-c5_seed0",
        "faster-rcnn_r50-dconv-c3-c5_fpn_1x_coco_stages-c3-c5_seed1",
    ]
    assert "faster-rcnn_r50-dconv-c4_fpn_1x_coco_stages-c4_seed0" in names
    assert "faster-rcnn_r50-attn1111-dcn_fpn_1x_coco_kv-stride-2_stages-c3-c5_seed1" in names
    assert len(set(names)) == len(names) == (2 + 2 * 2) * 2
    by_cell: dict[str, set[str]] = {}
    for p in planned.cells:
        by_cell.setdefault(p.config.cell_name, set()).add(p.cell_id)
        assert p.identity.cell == p.config.cell_name and p.name == f"{p.config.cell_name}_seed{p.cell.seed}"
    assert all(len(ids) == 1 for ids in by_cell.values())  # the replicates of a cell: one id
    assert len({next(iter(ids)) for ids in by_cell.values()}) == len(by_cell)  # the cells: one each


def test_a_cell_s_config_holds_its_axis_values_and_its_seed(tmp_path: Path) -> None:
    text = (
        GRID
        + "seeds = [5]\n"
        + KV.replace("[1, 2]", "[4]")
        + '"overrides.model.rpn_head.in_channels" = [128]\n'
    )
    text += '"schedule.lr" = [0.01]\n'
    planned = plan(load_sweep(sweep_of(tmp_path, text)), tmp_path / "runs")
    (cell,) = [p for p in planned.cells if str(p.cell.code) == "1111" and not p.cell.dcn]
    cfg = Config.fromfile(str(cell.path))
    assert cfg.randomness.seed == 5
    assert cfg.model.backbone.plugins[0].cfg.kv_stride == 4
    assert cfg.model.rpn_head.in_channels == 128 and cfg.optim_wrapper.optimizer.lr == 0.01
    (baseline,) = [p for p in planned.cells if str(p.cell.code) == "0000" and not p.cell.dcn]
    plain = Config.fromfile(str(baseline.path))
    assert "plugins" not in plain.model.backbone and plain.randomness.seed == 5
    assert baseline.identity.axes == {"overrides.model.rpn_head.in_channels": 128, "schedule.lr": 0.01}
    assert cell.identity.axes == {**baseline.identity.axes, "model.attention.kv_stride": 4}


def test_a_seed_joins_the_overrides_randomness_without_changing_the_cell_s_id(tmp_path: Path) -> None:
    text = '[grid]\ncodes = ["0010"]\ndcn = [false]\nseeds = [0, 1]\n'
    text += "[overrides]\nrandomness.deterministic = true\n"
    planned = plan(load_sweep(sweep_of(tmp_path, text)), tmp_path / "runs")  # writes (renders) each config
    for p, seed in zip(planned.cells, (0, 1), strict=True):
        cfg = Config.fromfile(str(p.path))
        assert (cfg.randomness.seed, cfg.randomness.deterministic) == (seed, True)
        assert p.config.variables["randomness"] == {"deterministic": True}  # the id's input holds no seed
    again = plan(load_sweep(sweep_of(tmp_path, text)), tmp_path / "other", write=False)
    assert {p.cell_id for p in planned.cells} == {p.cell_id for p in again.cells} and len(again.cells) == 2


def test_a_base_config_axis_plans_each_cell_on_its_base(tmp_path: Path) -> None:
    text = '[grid]\ncodes = ["0000"]\ndcn = [false]\n[grid.axes]\n"model.base_config" = [\n'
    text += '  "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",\n'
    text += '  "mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py",\n]\n'
    planned = plan(load_sweep(sweep_of(tmp_path, text)), tmp_path / "runs")
    depths = [Config.fromfile(str(p.path)).model.backbone.depth for p in planned.cells]
    assert depths == [50, 101] and planned.cells[0].cell_id != planned.cells[1].cell_id


def test_where_keeps_the_cells_an_axis_does_not_vary(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_of(tmp_path, GRID + "seeds = [0, 1, 2]\n" + KV))
    picked = select(sweep.cells, Selection(where=(("kv_stride", "2"),), seeds=(0, 2)), sweep.axes)
    assert [(str(c.code), c.dcn, c.value(sweep.axes[0]), c.seed) for c in picked] == [
        ("0000", False, None, 0),
        ("0000", False, None, 2),
        ("0000", True, None, 0),
        ("0000", True, None, 2),
        ("1111", False, 2, 0),
        ("1111", False, 2, 2),
        ("1111", True, 2, 0),
        ("1111", True, 2, 2),
    ]
    dotted = select(sweep.cells, Selection(where=(("attention.kv_stride", "2"),)), sweep.axes)
    assert len(dotted) == 2 * 3 + 2 * 3


def test_where_takes_a_value_as_toml_or_as_the_tables_show_it(tmp_path: Path) -> None:
    text = (
        GRID
        + '[grid.axes]\n"model.attention.stages" = [[false, false, true, true], [false, true, true, true]]\n'
    )
    sweep = load_sweep(sweep_of(tmp_path, text))
    for given in ("[false, true, true, true]", "c3-c5"):
        picked = select(
            sweep.cells, Selection(codes=(AttentionCode("1111"),), where=(("stages", given),)), sweep.axes
        )
        assert [c.axes for c in picked] == [(("model.attention.stages", (False, True, True, True)),)] * 2
    with pytest.raises(InputError, match=r"its values: c4-c5, c3-c5$"):
        select(sweep.cells, Selection(where=(("stages", "c2-c5"),)), sweep.axes)


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (
            Selection(where=(("stride", "2"),)),
            "where stride=2: 'stride' is not an axis of this sweep's grid; its axes: "
            "model.attention.kv_stride",
        ),
        (
            Selection(where=(("kv_stride", "3"),)),
            "where kv_stride=3: not a value of model.attention.kv_stride; its values: 1, 2",
        ),
        (Selection(seeds=(4,)), "seeds: seed 4 not in this sweep's grid; its seeds: 0, 1, 2"),
    ],
)
def test_selecting_what_the_grid_lacks_names_what_it_has(
    tmp_path: Path, selection: Selection, expected: str
) -> None:
    sweep = load_sweep(sweep_of(tmp_path, GRID + "seeds = [0, 1, 2]\n" + KV))
    with pytest.raises(InputError) as caught:
        select(sweep.cells, selection, sweep.axes)
    assert str(caught.value) == expected


def test_plan_lists_the_axes_and_seeds_and_a_bad_selection_exits_2(tmp_path: Path) -> None:
    sweep = sweep_of(tmp_path, GRID + "seeds = [0, 1]\n" + KV)
    done = run_script(
        "ablation", "plan", "--sweep", str(sweep), "--root", str(tmp_path / "runs"), "--dcn", "off"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["cell", "id", "code", "factors", "dcn", "kv_stride", "seed", "config"]
    rows = [line.split() for line in lines[2:8]]
    assert [(r[2], r[-3], r[-2]) for r in rows] == [
        ("0000", "-", "0"),
        ("0000", "-", "1"),
        ("1111", "1", "0"),
        ("1111", "1", "1"),
        ("1111", "2", "0"),
        ("1111", "2", "1"),
    ]
    assert "6 runs of 3 cells of sweep axes" in done.stdout
    bad = run_script(
        "ablation", "status", "--sweep", str(sweep), "--root", str(tmp_path), "--where", "kv_stride=9"
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == (
        "error: --where kv_stride=9: not a value of model.attention.kv_stride; its values: 1, 2\n"
    )
    malformed = run_script("ablation", "plan", "--sweep", str(sweep), "--where", "kv_stride")
    assert malformed.returncode == 2
    assert "expected AXIS=VALUE such as kv_stride=2, got 'kv_stride'" in malformed.stderr


def test_an_axis_is_headed_by_the_shortest_end_of_its_name_that_tells_it_apart() -> None:
    assert short_names(["model.attention.kv_stride"]) == {"model.attention.kv_stride": "kv_stride"}
    assert short_names(["model.attention.kv_stride", "model.dcn.kv_stride", "overrides.x.y"]) == {
        "model.attention.kv_stride": "attention.kv_stride",
        "model.dcn.kv_stride": "dcn.kv_stride",
        "overrides.x.y": "y",
    }
    assert short_names(["a.b", "b"]) == {"a.b": "a.b", "b": "b"}
