"""A sweep: a named set of cells with the base model, schedule, dataset and resources they share.

Sweeps are TOML files in ``experiments/sweeps/``; a sweep's name is its file's stem. ``SweepFile`` is a file's
top level, its sections' settings are declared in ``ablation.grid.settings``, and ``load_sweep`` finds a file,
reads it and validates it against them.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime
import functools
import keyword
import math
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablation.errors import InputError, SweepFileError, UnknownSweepError
from ablation.grid import schema
from ablation.grid.axes import MAX_DEPTH, Axis, apply, labels, parse_axes
from ablation.grid.cells import Cell, expand
from ablation.grid.schema import free_table, nested, setting
from ablation.grid.settings import (
    NAME_PATTERN,
    BenchmarkSettings,
    DatasetSettings,
    GridSettings,
    ModelSettings,
    ResourceSettings,
    ScheduleSettings,
    SlurmSettings,
)
from ablation.shipped import shipped

__all__ = [
    "Sweep",
    "available_sweeps",
    "load_sweep",
    "sweep_dirs",
]


@dataclass(frozen=True)
class SweepFile:
    """The keys of a sweep file: its top level and one table per section."""

    description: str = setting("", "one line saying what the sweep is for")
    grid: GridSettings = nested(GridSettings, "which cells: attention codes x DCN (x more axes x seeds)")
    model: ModelSettings = nested(ModelSettings, "the detector every cell shares", axes=True)
    schedule: ScheduleSettings = nested(ScheduleSettings, "the training schedule", axes=True)
    dataset: DatasetSettings = nested(DatasetSettings, "the dataset (COCO format)")
    resources: ResourceSettings = nested(ResourceSettings, "what one cell runs on")
    benchmark: BenchmarkSettings = nested(BenchmarkSettings, "how inference speed is measured")
    slurm: SlurmSettings = nested(SlurmSettings, "the cells' Slurm jobs (ablation launch --executor slurm)")
    overrides: dict[str, Any] = free_table(
        "config values merged over every cell's config, as mmdet's --cfg-options "
        "(e.g. model.train_cfg.rcnn.sampler.num = 64); not the keys a setting writes "
        "(optim_wrapper.optimizer.lr is [schedule] lr's), and custom_imports only as "
        'custom_imports.imports = ["my.module"], added to the tool\'s'
    )

    def __post_init__(self) -> None:
        _check_overrides(self.overrides, "", 1)  # the keys and values a config can hold
        _check_custom_imports(self.overrides.get("custom_imports"))
        seeded = self.overrides.get("randomness", {})
        if self.grid.seeds is not None and (not isinstance(seeded, dict) or "seed" in seeded):
            raise InputError(
                "[overrides] randomness.seed and [grid] seeds both set the seed; keep [grid] seeds"
                if isinstance(seeded, dict)
                else f"[overrides] randomness = {seeded!r}: with [grid] seeds, randomness is a table "
                "(the seed joins it), e.g. randomness.deterministic = true"
            )


_OVERRIDE_VALUES = "strings, integers, finite numbers, true or false, and lists and tables of those"
_TOML_TIMES = ((datetime.datetime, "date-time"), (datetime.date, "date"), (datetime.time, "time"))
# Top-level names a config may not define: mmengine's reserved keys, and Python's builtins (the config calls
# dict(), and a variable named so would shadow it).
_RESERVED = frozenset({"filename", "text", "pretty_text", "env_variables"})
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)


def _check_overrides(table: dict[str, Any], where: str, depth: int) -> None:
    """[overrides] becomes Python source in every config: its keys must be Python names (they become config
    variables and dict keys), each as Python reads it (NFKC: 'ﬁ' is read as 'fi'), and its values plain
    finite values, or the config would not load or would load something else."""
    if depth > MAX_DEPTH:
        raise InputError(f"[overrides] {where}: tables nest more than {MAX_DEPTH} deep; a config holds fewer")
    for key, value in table.items():
        path = f"{where}.{key}" if where else key
        if not (key.isidentifier() and not keyword.iskeyword(key)):
            inside = f" (under {where})" if where else ""
            dotted = "; write nested keys unquoted, as model.backbone.depth = 50" if "." in key else ""
            raise InputError(
                f"[overrides] key {key!r}{inside} is not a Python name (letters, digits and '_', not "
                f"starting with a digit, not a keyword): the keys become names in the config{dotted}"
            )
        read = unicodedata.normalize("NFKC", key)
        if read != key:
            raise InputError(f"[overrides] key {path!r}: Python reads it as {read!r} (NFKC); write that")
        if path == "_base_":
            raise InputError("[overrides] key '_base_': set the base config with [model] base_config")
        if not where and (key in _RESERVED or key in vars(builtins)):
            whose = (
                "mmengine reserves it" if key in _RESERVED else "it would hide Python's own, as configs use"
            )
            raise InputError(f"[overrides] key {key!r} cannot be a config variable: {whose}")
        _check_override_value(value, path, depth)


def _check_override_value(value: Any, path: str, depth: int) -> None:
    if isinstance(value, dict):
        _check_overrides(value, path, depth + 1)
    elif isinstance(value, list):
        if depth > MAX_DEPTH:
            raise InputError(f"[overrides] {path}: lists nest more than {MAX_DEPTH} deep")
        for i, item in enumerate(value):
            _check_override_value(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InputError(
            f"[overrides] {path} = {value!r} is not a finite number; values may be {_OVERRIDE_VALUES}"
        )
    elif isinstance(value, str) and "{{" in value:
        raise InputError(
            f"[overrides] {path} = {value!r}: a string may not hold '{{{{': mmengine would substitute "
            "what follows when the config loads"
        )
    elif not isinstance(value, (str, int, float, bool)):
        kind = next((name for cls, name in _TOML_TIMES if isinstance(value, cls)), type(value).__name__)
        shown = value.isoformat() if hasattr(value, "isoformat") else repr(value)
        raise InputError(f"[overrides] {path} = {shown} is a TOML {kind}; values may be {_OVERRIDE_VALUES}")


def _check_custom_imports(given: Any) -> None:
    """custom_imports is the tool's (the modules each config's types need): an override may only add
    modules to it, as custom_imports.imports = ["my.module"] (render merges them with the tool's)."""
    if given is None:
        return
    modules = given.get("imports") if isinstance(given, dict) else None
    if (
        not isinstance(given, dict)
        or set(given) != {"imports"}
        or not isinstance(modules, list)
        or not all(isinstance(m, str) and _MODULE.fullmatch(m) for m in modules)
    ):
        raise InputError(
            f"[overrides] custom_imports = {given!r}: the tool writes custom_imports (the modules its own "
            'types need); add modules as custom_imports.imports = ["my.module"], a list of module names, '
            "which it merges with its own"
        )


@dataclass(frozen=True)
class Sweep:
    """A sweep file read and validated, with the name and path it came from."""

    name: str
    path: Path
    settings: SweepFile

    @functools.cached_property  # frozen: computed once, and checked by load_sweep
    def axes(self) -> tuple[Axis, ...]:
        """The grid's extra axes ([grid.axes]), each value checked."""
        return parse_axes(self.settings, self.settings.grid.axes)

    @functools.cached_property
    def cells(self) -> tuple[Cell, ...]:
        """Every cell of the grid: in code order, DCN off before on, then each extra axis' values and the
        seeds as listed."""
        grid = self.settings.grid
        return expand(grid.codes, grid.dcn, self.axes, grid.seeds)

    def for_cell(self, cell: Cell) -> Sweep:
        """This sweep as one cell sees it: its settings with the cell's axis values set (made once per set of
        axis values: a cell's replicates, its name, config and identity all ask for it)."""
        return self.for_axes(cell.axes)

    def for_axes(self, values: tuple[tuple[str, Any], ...]) -> Sweep:
        """This sweep with the axis ``values`` ((dotted name, value) pairs) set, each table's checks run
        (``InputError`` when one fails)."""
        if not values:
            return self
        derived = self._for_axes.get(values)
        if derived is None:
            derived = dataclasses.replace(self, settings=apply(self.settings, dict(values)))
            # the same [grid.axes]: the cell's sweep takes this one's parsed axes instead of parsing them
            # again (cell names read them, for every cell at every status poll)
            derived.__dict__["axes"] = self.axes
            # and is itself for its values: asked again (cell_name of a cell's sweep), none is set twice
            derived.__dict__["_for_axes"] = {values: derived}
            self._for_axes[values] = derived
        return derived

    @functools.cached_property
    def _for_axes(self) -> dict[tuple[tuple[str, Any], ...], Sweep]:
        """The sweeps ``for_cell`` made, by the cells' axis values."""
        return {}

    @property
    def model(self) -> ModelSettings:
        return self.settings.model

    @property
    def schedule(self) -> ScheduleSettings:
        return self.settings.schedule

    @property
    def dataset(self) -> DatasetSettings:
        return self.settings.dataset

    @property
    def resources(self) -> ResourceSettings:
        return self.settings.resources

    @property
    def benchmark(self) -> BenchmarkSettings:
        return self.settings.benchmark

    @property
    def slurm(self) -> SlurmSettings:
        return self.settings.slurm

    @property
    def overrides(self) -> dict[str, Any]:
        return self.settings.overrides


def sweep_dirs() -> list[Path]:
    """Where sweep names are looked up: ./experiments/sweeps, then the sweeps shipped with the package (the
    checkout's experiments/sweeps when run from a checkout)."""
    here = Path.cwd() / "experiments" / "sweeps"
    bundled = shipped("sweeps")
    return [here] if here.resolve() == bundled.resolve() else [here, bundled]


def available_sweeps() -> dict[str, Path]:
    """Sweep name -> file, the first found in ``sweep_dirs()`` winning."""
    found: dict[str, Path] = {}
    for folder in sweep_dirs():
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
            found.setdefault(path.stem, path)
    return found


def load_sweep(name_or_path: str | Path) -> Sweep:
    """The sweep named ``name_or_path`` (a name from ``available_sweeps()``, or a path to a .toml file)."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise UnknownSweepError(f"no sweep file at {text}")
    else:
        sweeps = available_sweeps()
        if text not in sweeps:
            names = ", ".join(sweeps) or "none"
            raise UnknownSweepError(
                f"unknown sweep {text!r}; valid sweeps: {names} (or a path to a .toml file)"
            )
        path = sweeps[text]
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise SweepFileError(f"{path}: cannot read the sweep file: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise SweepFileError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:  # tomllib reads nested lists and inline tables recursively
        raise SweepFileError(f"{path}: lists or tables nest too deep to read") from None
    try:
        settings = schema.build(SweepFile, table)
    except SweepFileError as error:
        raise SweepFileError(f"{path}: {error}") from None
    _check_sweep_name(path)
    sweep = Sweep(name=path.stem, path=path, settings=settings)
    try:
        axes = sweep.axes
    except SweepFileError as error:
        raise SweepFileError(f"{path}: {error}") from None
    _check_axes_vary(path, sweep, axes)
    return sweep


def _check_axes_vary(path: Path, sweep: Sweep, axes: tuple[Axis, ...]) -> None:
    """Every axis varies some cell (an attention setting with codes = ["0000"] is a mistake), its values
    give distinct names, and every combination of values is a valid setting."""
    plain = expand(sweep.settings.grid.codes, sweep.settings.grid.dcn)
    for axis in axes:
        if not any(cell.varied_by(axis) for cell in plain):
            which = {"attention": "cells with attention (code != 0000)", "dcn": "cells with dcn = true"}
            raise SweepFileError(
                f"{path}: [grid.axes] {axis.name} varies no cell: its settings apply only to "
                f"{which.get(axis.varies or '', axis.varies)}, and the grid has none"
            )
        try:
            labels(axis)
        except SweepFileError as error:
            raise SweepFileError(f"{path}: {error}") from None
    for values in sorted({cell.axes for cell in sweep.cells if len(cell.axes) > 1}, key=repr):
        try:
            sweep.for_axes(values)  # kept: planning asks for each cell's settings again
        except InputError as error:
            shown = ", ".join(f"{name} = {value!r}" for name, value in values)
            raise SweepFileError(f"{path}: [grid.axes] the cells with {shown}: {error}") from None


def _check_sweep_name(path: Path) -> None:
    if not NAME_PATTERN.fullmatch(path.stem):
        raise SweepFileError(
            f"{path}: a sweep file's name must be letters, digits, '.' and '-' (it names folders)"
        )
