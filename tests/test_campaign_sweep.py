"""The sweep-file part of issue 31's campaign, as tests: each reproduction of the issue (aliased axes,
coerced values, values that reach the sbatch script or the config unchecked, errors after writing) gives one
line and exit 2 with nothing written, and a seeded fuzz of sweep files through ``ablation plan`` finds every
outcome either accepted and sane or such a refusal: no traceback, no internal error, no silent wrong result
(two cells with one id, a coerced value, a config that does not say what the sweep says)."""

from __future__ import annotations

import ast
import collections
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ablation.errors import InputError
from ablation.grid.sweep import load_sweep
from ablation.run import slurm

from .helpers.cli import run_cli, run_script

GRID = '[grid]\ncodes = ["0000", "0010"]\ndcn = [false]\n'


def sweep_text(extra: str = "", grid: str = GRID) -> str:
    """A sweep of ``grid`` on a base config beside it (no mmdet configs needed), plus ``extra``."""
    return f'{grid}[model]\nbase_config = "base.py"\n{extra}'


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.py").write_text("model = dict(backbone=dict(type='ResNet', depth=50))\n")
    path = folder / "mine.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(folder: Path, text: str) -> str:
    """Plan the sweep ``text``: assert one line, exit 2, nothing written; the line without the file's path."""
    path = write(folder, text)
    code, out, err = run_cli("plan", "--sweep", str(path), "--root", str(folder / "runs"))
    assert (code, out) == (2, ""), err
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1, err
    assert not (folder / "runs").exists()
    return err.removeprefix(f"error: {path}: ").rstrip("\n")


# 1. Why 3: one owner per setting ----------------------------------------------------------------------------

SEEDED = '[grid]\ncodes = ["0000", "0010"]\ndcn = [false]\nseeds = [0, 1]\n'
ONE_OWNER = [
    (
        SEEDED + '[grid.axes]\n"overrides.randomness.seed" = [1, 2]\n',
        "",
        "[grid.axes] overrides.randomness.seed[0]: [overrides] randomness.seed and [grid] seeds both set the "
        "seed; keep [grid] seeds",
    ),
    (SEEDED, "[overrides]\nrandomness.seed = 1\n", "[overrides] randomness.seed and [grid] seeds both set"),
    (
        SEEDED,
        "[overrides]\nrandomness = 3\n",
        "[overrides] randomness = 3: with [grid] seeds, randomness is a",
    ),
    (
        GRID
        + '[grid.axes]\n"schedule.lr" = [0.01, 0.02]\n"overrides.optim_wrapper.optimizer.lr" = [0.1, 0.2]\n',
        "",
        "[grid.axes] overrides.optim_wrapper.optimizer.lr: [schedule] lr writes optim_wrapper.optimizer.lr "
        "into the config; set [schedule] lr, not both (one setting, one owner)",
    ),
    (
        GRID,
        '[schedule]\nname = "2e"\nepochs = 2\nmilestones = []\n[overrides]\ntrain_cfg.max_epochs = 99\n',
        "[overrides] train_cfg.max_epochs: [schedule] epochs writes train_cfg.max_epochs into the config; "
        "set "
        "[schedule] epochs, not both (one setting, one owner)",
    ),
    (
        GRID,
        "[schedule]\ngrad_clip = 10.0\n[overrides]\noptim_wrapper.clip_grad.max_norm = 5\n",
        "[overrides] optim_wrapper.clip_grad.max_norm: [schedule] grad_clip writes",
    ),
    (
        GRID + '[grid.axes]\n"overrides.train_dataloader.batch_size" = [1, 2]\n',
        "",
        "[grid.axes] overrides.train_dataloader.batch_size: [resources] images_per_gpu writes",
    ),
    (
        GRID,
        '[overrides]\nmodel = "oops"\n',
        "[overrides] model: a value cannot replace the table model, which [model] writes into the config; "
        "keep "
        "it a table and set keys under it (model.key = ...)",
    ),
    (
        GRID,
        "[overrides]\ntest_dataloader.batch_size = 1\n",
        "[overrides] test_dataloader: [dataset] (the val split's loader) writes test_dataloader",
    ),
    (
        GRID + '[grid.axes]\n"model.neck" = ["a", "b"]\n',
        "",
        "cells faster-rcnn_r50_a_1x_coco_neck-a and faster-rcnn_r50_b_1x_coco_neck-b would get one id",
    ),
]


@pytest.mark.parametrize(("grid", "extra", "message"), ONE_OWNER)
def test_a_setting_given_twice_is_refused_naming_both(
    tmp_path: Path, grid: str, extra: str, message: str
) -> None:
    assert refused(tmp_path, sweep_text(extra, grid)).startswith(message)


def test_an_override_beside_the_settings_keys_is_still_merged(tmp_path: Path) -> None:
    body = (
        '[model.roi_align]\nmodule = "ablation"\n'
        "[overrides]\noptim_wrapper.paramwise_cfg.norm_decay_mult = 0.0\n"
        'custom_imports.imports = ["os.path"]\nrandomness.deterministic = true\n'
    )
    grid = '[grid]\ncodes = ["0010"]\ndcn = [false]\nseeds = [3]\n'
    path = write(tmp_path, sweep_text(body, grid=grid))
    code, _, err = run_cli("plan", "--sweep", str(path), "--root", str(tmp_path / "runs"))
    assert (code, err) == (0, "")
    (config,) = (tmp_path / "runs" / "mine" / "configs").glob("*.py")
    variables = run_config(config.read_text())
    assert variables["custom_imports"]["imports"] == [
        "ablation.model.attention",
        "ablation.model.roi_align",
        "os.path",
    ]  # the tool's imports first, then the user's
    assert variables["optim_wrapper"] == {
        "optimizer": {"lr": 0.02},
        "paramwise_cfg": {"norm_decay_mult": 0.0},
    }
    assert variables["randomness"] == {"deterministic": True, "seed": 3}


# 2. Why 4 and 5: values checked against their types and ranges, never coerced -------------------------------

VALUES = [
    ("[schedule]\nlr = true\n", "schedule.lr: expected a number, got true"),
    ('[schedule]\nlr = " 1_0 "\n', "schedule.lr: expected a number, got the string ' 1_0 '"),
    ("[schedule]\nlr = inf\n", "schedule.lr: expected a finite number, got inf"),
    ("[schedule]\nlr = 1e309\n", "schedule.lr: expected a finite number, got inf"),
    ('[schedule]\nlr = "inf"\n', "schedule.lr: expected a number, got the string 'inf'"),
    ("[schedule]\nlr = nan\n", "schedule.lr: expected a finite number, got nan"),
    ("[schedule]\ngrad_clip = inf\n", "schedule.grad_clip: expected a finite number, got inf"),
    ('[schedule]\ngrad_clip = "abc"\n', "schedule.grad_clip: expected a number, got the string 'abc'"),
    (
        "[model.attention]\nspatial_range = -5\n",
        "[model.attention] spatial_range must be -1 (global attention) or at least 0 (a window), got -5",
    ),
    ("[model.attention]\nposition_embedding_dim = 6\n", "[model.attention] position_embedding_dim must be a"),
    ("[slurm]\ncpus_per_task = 0\n", "[slurm] cpus_per_task must be an integer from 1 to 4096, got 0"),
    ("[slurm]\nmem_gb = -4\n", "[slurm] mem_gb must be an integer from 1 to 1048576, got -4"),
    (
        "[resources]\ngpus = 1000000000000\n",
        "[resources] gpus must be an integer from 0 to 64, got 1000000000000",
    ),
    (
        '[slurm]\npartition = "gpu\\n#SBATCH --x"\n',
        "[slurm] partition 'gpu\\n#SBATCH --x' is not a Slurm name: letters, digits",
    ),
    ('[slurm]\naccount = "a b"\n', "[slurm] account 'a b' is not a Slurm name"),
    ('[slurm]\nqos = "#SBATCH"\n', "[slurm] qos '#SBATCH' is not a Slurm name"),
    (
        '[slurm]\nsbatch = ["--comment=a\\n#SBATCH --exclusive"]\n',
        "[slurm] sbatch: '--comment=a\\n#SBATCH --exclusive' holds a line break",
    ),
    ('[slurm]\nsbatch = ["--array=0-99"]\n', "[slurm] sbatch: '--array=0-99' sets what the launch sets"),
    ('[slurm]\nsbatch = ["--mem=4G"]\n', "[slurm] sbatch: '--mem=4G' sets what [slurm] mem_gb sets"),
    ('[slurm]\nsetup = ["echo a\\rb"]\n', "[slurm] setup: 'echo a\\rb' holds a line break"),
    (
        '[slurm]\nsetup = ["#SBATCH --exclusive"]\n',
        "[slurm] setup: '#SBATCH --exclusive' is an sbatch directive",
    ),
    (
        "[overrides]\n" + ".".join(["a"] * 3000) + " = 1\n",
        "[overrides] " + ".".join(["a"] * 32) + ": tables nest more than 32 deep",
    ),
    (
        '[grid.axes]\n"overrides.' + ".".join(["a"] * 3000) + '" = [1, 2]\n',
        "[grid.axes] overrides.a.a.a.a",
    ),
    ("[overrides]\nx = " + "[" * 3000 + "]" * 3000 + "\n", "lists or tables nest too deep to read"),
    (
        '[overrides]\n"\ufb01" = 1\nfi = 2\n',
        "[overrides] key '\ufb01': Python reads it as 'fi' (NFKC); write that",
    ),
    (
        '[overrides]\ncustom_imports = {imports = ["os"], allow_failed_imports = true}\n',
        "[overrides] custom_imports",
    ),
    ('[overrides]\ncustom_imports.imports = "os"\n', "[overrides] custom_imports = {'imports': 'os'}"),
    (
        "[overrides]\ndict = 1\n",
        "[overrides] key 'dict' cannot be a config variable: it would hide Python's own",
    ),
    (
        '[overrides]\nfilename = "x"\n',
        "[overrides] key 'filename' cannot be a config variable: mmengine reserves",
    ),
    ('[overrides]\nwork_dir = "{{ fileDirname }}"\n', "[overrides] work_dir = '{{ fileDirname }}': a string"),
    (
        '[grid.axes]\n"model.base_config" = ["base.py", "missing.py"]\n',
        "[model] base_config 'missing.py': no such config",
    ),
    ('[dataset]\nname = "' + "x" * 300 + '"\n', "cell name faster-rcnn_r50_fpn_1x_xxxx"),
    (
        '[dataset]\ndata_root = "{{$DATA:/x}}/"\n',
        "[dataset] data_root '{{$DATA:/x}}/': a path without '{{' (mmengine would substitute it)",
    ),
    ('[dataset]\nclasses = ["a", "a"]\n', "[dataset] classes: a class is listed twice in ['a', 'a']"),
]


@pytest.mark.parametrize(("body", "message"), VALUES, ids=[m[:40] for _, m in VALUES])
def test_a_bad_value_is_one_line_naming_it_and_nothing_is_written(
    tmp_path: Path, body: str, message: str
) -> None:
    grid = GRID + body if body.startswith("[grid.axes]") else GRID
    assert refused(tmp_path, sweep_text("" if grid != GRID else body, grid)).startswith(message)


def test_real_processes_give_one_line_and_exit_2(tmp_path: Path) -> None:
    """As a user meets them: the console script, for cases that crashed with a traceback or internal error."""
    for i, body in enumerate(
        (
            "[schedule]\nlr = 1e309\n",
            "[overrides]\n" + ".".join(["a"] * 3000) + " = 1\n",
            '[overrides]\nmodel = "oops"\n',
        )
    ):
        path = write(tmp_path / str(i), sweep_text(body))
        done = run_script("ablation", "plan", "--sweep", str(path), "--root", str(tmp_path / str(i) / "runs"))
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert not (tmp_path / str(i) / "runs").exists()


# 3. Slurm options from the command line: checked before anything is written ---------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"partition": "gpu\n#SBATCH --x"}, "partition 'gpu\\n#SBATCH --x' is not a Slurm name"),
        ({"account": "a;b"}, "account 'a;b' is not a Slurm name"),
        ({"qos": ""}, "qos '' is not a Slurm name"),
        ({"gpus": 1000000000000}, "gpus must be an integer from 0 to 64, got 1000000000000"),
        ({"cpus": 0}, "cpus must be an integer from 1 to 4096, got 0"),
        ({"mem_gb": -4}, "mem_gb must be an integer from 1 to 1048576, got -4"),
        ({"time_min": True}, "time_min must be an integer from 1 to 527040, got True"),
        ({"array_parallelism": 0}, "array_parallelism must be an integer from 1 to 1048576, got 0"),
        ({"nodes": 2}, "nodes: not a launch option; valid: partition, account, qos, gpus, cpus"),
    ],
)
def test_slurm_options_are_checked_naming_the_flag(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    sweep = load_sweep(write(tmp_path, sweep_text()))
    with pytest.raises(InputError) as caught:
        slurm.check_options(options)
    assert str(caught.value).startswith(message)
    assert caught.value.argument == next(iter(options))  # the CLI names the flag: --partition ...
    with pytest.raises(InputError):
        slurm.parameters(sweep, options)  # what writes the script checks too
    good = {
        "partition": "gpu,gpu-long",
        "account": "lab_1",
        "qos": "high",
        "gpus": 8,
        "mem_gb": 64,
        "cpus": 4,
    }
    slurm.check_options(good)
    assert slurm.parameters(sweep, good)["partition"] == "gpu,gpu-long"


# 4. The fuzz ------------------------------------------------------------------------------------------------


class Raw(str):
    """TOML source written as it is (``1e309``, ``inf``)."""


def toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan" if math.isnan(value) else repr(value))
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 else c for c in escaped) + '"'


def toml_file(tables: dict[str, dict[str, Any]]) -> str:
    return "".join(
        f"[{name}]\n" + "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in table.items())
        for name, table in tables.items()
    )


TEXTS = st.sampled_from(
    [
        "gpu",
        "a b",
        " 1_0 ",
        "inf",
        "nan",
        "abc",
        "1e309",
        "",
        "gpu\n#SBATCH --x",
        "\ufb01",
        "x" * 300,
        "{{ a }}",
        "ok-1.2",
        "--constraint=v100",
        "--array=1",
        "faster",
        "0010",
        "all",
        "ablation",
        "mmcv",
        "sdpa",
        "SGD",
    ]
)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-3, 20),
    st.sampled_from([-1, 0, 1, 2, 4, 8, 64, 65, 2**32, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 0.01, 0.02, 1e-300, 1e300]),
    st.just(Raw("1e309")),
    TEXTS,
    st.text(max_size=6),
)
VALUES_ = st.one_of(SCALARS, st.lists(SCALARS, max_size=4))
# settings by section, each with values that fit it (drawn 2 times in 3; else anything)
SETTINGS: dict[str, dict[str, list[Any]]] = {
    "grid": {"codes": [["0010"], ["0000", "1111"]], "dcn": [[True], [False, True]], "seeds": [[0, 1], [7]]},
    "model": {"detector": ["frcnn"], "backbone": ["r18"], "pretrained": [False]},
    "model.attention": {
        "module": ["ablation", "mmcv"],
        "implementation": ["reference", "sdpa"],
        "spatial_range": [-1, 0, 3],
        "num_heads": [1, 8],
        "kv_stride": [1, 4],
        "position_embedding_dim": [8, 64],
    },
    "model.dcn": {"deform_groups": [1, 2], "stages": [[True, True, True, True]]},
    "schedule": {
        "name": ["3e"],
        "lr": [0.01, 1],
        "weight_decay": [0, 1e-4],
        "grad_clip": [5.0, 1],
        "milestones": [[1]],
        "warmup_iters": [0, 10],
        "val_interval": [0, 1],
    },
    "dataset": {"name": ["d"], "classes": [["a", "b"]], "scale": [[64, 32]]},
    "resources": {
        "gpus": [0, 1, 8],
        "tasks": [8],
        "images_per_gpu": [1],
        "workers_per_gpu": [0, 4],
        "time_limit_min": [30],
        "keep_checkpoints": ["last"],
    },
    "benchmark": {"warmup_images": [0], "timed_images": [3]},
    "slurm": {
        "partition": ["gpu", "a,b"],
        "account": ["lab_1"],
        "qos": ["normal"],
        "cpus_per_task": [4],
        "mem_gb": [16],
        "array_parallelism": [8],
        "sbatch": [["--constraint=v100"], ["--exclusive"]],
        "setup": [["module load cuda/12.1"]],
    },
}
OVERRIDE_KEYS = st.sampled_from(
    [
        "model",
        "backbone",
        "depth",
        "train_cfg",
        "max_epochs",
        "optim_wrapper",
        "optimizer",
        "lr",
        "randomness",
        "seed",
        "custom_imports",
        "imports",
        "\ufb01",
        "fi",
        "dict",
        "filename",
        "_delete_",
        "x",
        "test_dataloader",
        "batch_size",
        "default_hooks",
        "logger",
        "interval",
        "work_dir",
        "class",
        "a-b",
    ]
)
FITTING_OVERRIDES = [
    ("model", "backbone", "depth"),
    ("model", "neck", "out_channels"),
    ("randomness", "deterministic"),
    ("x",),
    ("default_hooks", "checkpoint", "interval"),
    ("model", "train_cfg", "rcnn", "sampler", "num"),
]
AXES = st.sampled_from(
    [
        "schedule.lr",
        "schedule.epochs",
        "schedule.name",
        "model.detector",
        "model.attention.kv_stride",
        "model.attention.spatial_range",
        "model.pretrained",
        "overrides.randomness.seed",
        "overrides.optim_wrapper.optimizer.lr",
        "overrides.model.x",
        "overrides.train_cfg.max_epochs",
        "overrides.fi",
        "overrides.\ufb01",
        "dataset.name",
        "resources.gpus",
        "nope.x",
    ]
)
FITTING_AXES = [
    ("schedule.lr", [0.01, 0.02]),
    ("model.attention.kv_stride", [1, 2]),
    ("overrides.model.rpn_head.feat_channels", [64, 128]),
    ("model.pretrained", [True, False]),
    ("schedule.warmup_iters", [0, 5]),
]


def put(table: dict[str, Any], keys: list[str] | tuple[str, ...], value: Any) -> None:
    """``value`` at the dotted ``keys`` of ``table``, tables made (or a value replaced) on the way."""
    for key in keys[:-1]:
        if not isinstance(table.get(key), dict):
            table[key] = {}
        table = table[key]
    table[keys[-1]] = value


@st.composite
def sweep_files(draw: st.DrawFn) -> tuple[str, list[tuple[str, str, Any]]]:
    """A sweep file's text, and the (section, key, value) settings it gives (to check what was accepted)."""
    tables: dict[str, dict[str, Any]] = {
        "grid": {
            "codes": draw(st.sampled_from([["0000", "0010"], ["0010"], ["1111", "0000"]])),
            "dcn": draw(st.sampled_from([[False], [False, True]])),
        },
        "model": {"base_config": "base.py"},
        "schedule": {"name": "2e", "epochs": 2, "milestones": []},
    }
    given: dict[tuple[str, str], Any] = {}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from(sorted(SETTINGS)))
        key = draw(st.sampled_from(sorted(SETTINGS[section])))
        fits = draw(st.integers(0, 2)) > 0
        value = draw(st.sampled_from(SETTINGS[section][key]) if fits else VALUES_)
        tables.setdefault(section, {})[key] = given[(section, key)] = value
    if draw(st.booleans()):
        axes = {}
        for _ in range(draw(st.integers(1, 2))):
            if draw(st.integers(0, 2)) > 0:
                name, values = draw(st.sampled_from(FITTING_AXES))
                axes[name] = values
            else:
                axes[draw(AXES)] = draw(st.lists(SCALARS, min_size=1, max_size=3))
        tables["grid"]["axes"] = axes
    if draw(st.booleans()):
        overrides: dict[str, Any] = {}
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.integers(0, 2)) > 0:
                put(overrides, draw(st.sampled_from(FITTING_OVERRIDES)), draw(st.integers(1, 512)))
            else:
                put(overrides, draw(st.lists(OVERRIDE_KEYS, min_size=1, max_size=3)), draw(VALUES_))
        tables["overrides"] = overrides
    return toml_file(tables), [(section, key, value) for (section, key), value in given.items()]


@dataclass
class Tally:
    cases: int = 0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)


def run_config(text: str) -> dict[str, Any]:
    """A rendered config's variables, run as Python (mmengine does as much, after its own substitutions)."""
    ast.parse(text)
    scope: dict[str, Any] = {}
    exec(compile(text, "config", "exec"), {"__builtins__": {"dict": dict}}, scope)  # only dict(): plain data
    return scope


def check_accepted(path: Path, root: Path, given: list[tuple[str, str, Any]]) -> list[str]:
    """What would make an accepted sweep a silent wrong result: a setting held as another value or type than
    the file gave, two cells with one id or one name, a config that does not load or does not hold the
    sweep's overrides as given."""
    problems = []
    sweep = load_sweep(path)
    for section, key, value in given:
        held = sweep.settings
        for part in [*section.split("."), key]:
            held = getattr(held, part)
        if key == "codes" and value == "all":
            continue
        if not same(value, held):
            problems.append(f"{section}.{key} = {value!r} held as {held!r}")
    names: dict[str, str] = {}
    ids: dict[str, str] = {}
    for config in sorted((root / "mine" / "configs").glob("*.py")):
        text = config.read_text()
        cell, cell_id = re.search(r"^# cell (\S+)  id (\S+)", text, re.M).groups()  # type: ignore[union-attr]
        if names.setdefault(cell_id, cell) != cell or ids.setdefault(cell, cell_id) != cell_id:
            problems.append(f"cells {names[cell_id]} and {cell} share id {cell_id}, or a name has two ids")
        try:
            variables = run_config(text)
        except Exception as error:  # any failure to load is the finding
            problems.append(f"{config.name} does not run: {type(error).__name__}: {error}")
            continue
        if not isinstance(variables.get("model"), dict):
            problems.append(f"{config.name}: model is {variables.get('model')!r}")
        for key, value in flat(sweep.overrides):
            if key.startswith("custom_imports"):
                continue
            if not same(value, lookup(variables, key)):
                problems.append(f"{config.name}: override {key} = {value!r} reads {lookup(variables, key)!r}")
    return problems


def same(given: Any, held: Any) -> bool:
    """Equal without coercion: a bool stays a bool, a string a string; an integer may be held as a float."""
    if isinstance(given, Raw):
        return False  # 1e309 is never a value to hold
    if isinstance(given, list):
        return isinstance(held, (list, tuple)) and len(given) == len(held) and all(map(same, given, held))
    if isinstance(given, bool) or isinstance(held, bool):
        return type(given) is type(held) and given == held
    if isinstance(given, (int, float)) and isinstance(held, (int, float)):
        return (
            math.isfinite(given)
            and float(given) == float(held)
            and not (type(given) is float and type(held) is int)
        )
    if type(held).__name__ == "AttentionCode":
        return bool(given == str(held))
    return type(given) is type(held) and bool(given == held)


def flat(table: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in table.items():
        if isinstance(value, dict):
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def lookup(variables: dict[str, Any], key: str) -> Any:
    value: Any = variables
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def classify(tally: Tally, text: str, given: list[tuple[str, str, Any]]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sweep-fuzz-"))
    try:
        path = write(folder, text)
        root = folder / "runs"
        try:
            code, out, err = run_cli("plan", "--sweep", str(path), "--root", str(root))
        except BaseException as error:  # what escapes main is a traceback
            tally.outcomes["traceback"] += 1
            tally.problems.append(f"traceback {type(error).__name__}: {error}\n{text}")
            return
        if "Traceback" in err:
            kind = "traceback"
        elif err.startswith("internal error"):
            kind = "internal error"
        elif code == 0 and err == "":
            problems = check_accepted(path, root, given)
            kind = "silent wrong result" if problems else "accepted"
            tally.problems.extend(f"{p}\n{text}" for p in problems)
        elif code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1:
            kind = "refused" if not root.exists() else "refused after writing"
        else:
            kind = "other"
        if kind not in ("accepted", "refused", "silent wrong result"):
            tally.problems.append(f"{kind}: exit {code}: {err!r}\n{text}")
        tally.outcomes[kind] += 1
    finally:
        tally.cases += 1
        shutil.rmtree(folder, ignore_errors=True)


FUZZ_CASES = 1000


def test_fuzzed_sweep_files_are_accepted_and_sane_or_refused_in_one_line() -> None:
    tally = Tally()

    @settings(
        max_examples=FUZZ_CASES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(sweep_files())
    def one(case: tuple[str, list[tuple[str, str, Any]]]) -> None:
        classify(tally, *case)

    one()
    o = tally.outcomes
    print(
        f"sweep fuzz: {tally.cases} cases ({o['accepted']} accepted and sane, {o['refused']} refused in "
        f"one line, exit 2, nothing written), {o['traceback']} tracebacks, {o['internal error']} internal "
        f"errors, {o['silent wrong result']} silent wrong results, {o['refused after writing']} refused "
        f"after writing, {o['other']} other"
    )
    assert tally.problems == [], "\n\n".join(tally.problems[:5])
    assert (
        o["accepted"] >= FUZZ_CASES // 10 and o["refused"] >= FUZZ_CASES // 4
    )  # the fuzz reaches both sides


FITTING = [
    *(
        (section, f"{key} = {toml_value(value)}")
        for section, table in SETTINGS.items()
        if section != "grid"
        for key, values in table.items()
        for value in values
    ),
    *(("grid.axes", f"{toml_string(name)} = {toml_value(values)}") for name, values in FITTING_AXES),
    *(("overrides", f"{'.'.join(keys)} = 64") for keys in FITTING_OVERRIDES),
]


@pytest.mark.parametrize(("section", "line"), FITTING, ids=[f"{s}:{line}" for s, line in FITTING])
def test_each_fitting_value_of_the_fuzz_is_accepted_alone(tmp_path: Path, section: str, line: str) -> None:
    """The other side of the fuzz's refusals: a value that fits is not refused (the fuzz counts a refusal as
    an outcome, whether or not the file was right)."""
    grid = GRID if section != "grid.axes" else GRID + f"[grid.axes]\n{line}\n"
    header = {"grid.axes": None, "model": ""}.get(section, f"[{section}]\n")  # [model] ends sweep_text
    extra = "" if header is None else f"{header}{line}\n"
    if section == "schedule" and line.startswith("milestones"):
        extra += "epochs = 2\n"
    path = write(tmp_path, sweep_text(extra, grid))
    code, _, err = run_cli("plan", "--sweep", str(path), "--root", str(tmp_path / "runs"))
    assert (code, err) == (0, "")
