"""The limits of the settings that size a cell's job or reach its sbatch script: integer ranges, Slurm names,
extra sbatch options and setup lines. The sweep's settings (``ablation.grid.settings``) and the launch's
options (``ablation.run.slurm.check_options``) are checked by the same functions, so that a value refused in
a sweep file is refused as a command-line flag too.
"""

from __future__ import annotations

import re

from ablation.errors import InputError

__all__ = [
    "BOUNDS",
    "SBATCH_OWNED",
    "check",
    "check_bounds",
    "check_line",
    "check_path",
    "check_sbatch_option",
    "check_slurm_name",
]

# The ranges of the integer settings that size a job (and the launch options that replace them): a value
# outside is a typo, which Slurm would refuse only at submission or, worse, accept.
BOUNDS: dict[str, tuple[int, int]] = {
    "gpus": (0, 64),  # one node's (a cell's job is one node)
    "tasks": (1, 1024),
    "images_per_gpu": (1, 1024),
    "workers_per_gpu": (0, 256),
    "time_limit_min": (1, 366 * 24 * 60),
    "cpus_per_task": (1, 4096),
    "mem_gb": (1, 1 << 20),
    "array_parallelism": (1, 1 << 20),
    "signal_delay_s": (0, 24 * 3600),
}
# A Slurm partition, account or QOS name, or a comma-separated list of them (sbatch --partition takes one):
# letters, digits, '_', '.', '-' and '+', so that nothing else (a newline, '#', '=') reaches the script.
_SLURM_NAME = re.compile(r"[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*")
_SBATCH_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# sbatch options the launch writes itself, or that a setting of [slurm] or [resources] owns: the [slurm]
# sbatch list may not replace them (submitit lets extra options overwrite its own).
SBATCH_OWNED: dict[str, str] = {
    "partition": "[slurm] partition",
    "account": "[slurm] account",
    "qos": "[slurm] qos",
    "mem": "[slurm] mem_gb",
    "cpus-per-task": "[slurm] cpus_per_task",
    "gpus-per-node": "[resources] gpus",
    "ntasks-per-node": "[resources] gpus and tasks",
    "time": "[resources] time_limit_min",
    "signal": "[slurm] signal_delay_s",
    **dict.fromkeys(
        ("job-name", "array", "output", "error", "open-mode", "requeue", "hold", "nodes", "wckey"),
        "the launch",
    ),
}


def check(condition: bool, message: str) -> None:
    """An ``InputError`` with ``message`` unless ``condition``."""
    if not condition:
        raise InputError(message)


def check_bounds(key: str, value: int, shown: str | None = None) -> None:
    """An ``InputError`` when the integer setting ``key`` (a key of ``BOUNDS``) is outside its range;
    ``shown`` names it in the message (default: ``key``)."""
    low, high = BOUNDS[key]
    check(
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
        f"{shown or key} must be an integer from {low} to {high}, got {value!r}",
    )


def check_slurm_name(key: str, value: str) -> None:
    """An ``InputError`` unless ``value`` is a Slurm name (or a comma-separated list of them)."""
    check(
        isinstance(value, str) and len(value) <= 256 and bool(_SLURM_NAME.fullmatch(value)),
        f"{key} {value!r} is not a Slurm name: letters, digits, '_', '.', '-' and '+', names separated by "
        "commas (at most 256 characters)",
    )


def check_line(key: str, value: str) -> None:
    """One line of printable text (tabs allowed): a line break would start another sbatch directive, and so
    would a setup line that is one (sbatch reads '#SBATCH' lines up to the script's first command)."""
    check(
        all(c == "\t" or c.isprintable() for c in value),
        f"{key}: {value!r} holds a line break or another control character; give one line of text",
    )
    check(
        not value.lstrip().startswith("#SBATCH"),
        f"{key}: {value!r} is an sbatch directive; give sbatch options in [slurm] sbatch",
    )


def check_path(key: str, value: str) -> None:
    """A dataset path the tool reads itself and writes into configs: mmengine would substitute '{{...}}' in
    the config only, so that the two would read different files."""
    check(
        "{{" not in value and value.isprintable(),
        f"{key} {value!r}: a path without '{{{{' (mmengine would substitute it) or control characters",
    )


def check_sbatch_option(option: str) -> None:
    """An ``InputError`` unless ``option`` is one long sbatch option (``--constraint=volta32gb``) on one line
    that sets nothing the launch or another setting writes."""
    key = option[2:].partition("=")[0]
    check(
        option.startswith("--") and bool(_SBATCH_KEY.fullmatch(key)),
        f"sbatch: {option!r} is not a long sbatch option such as '--constraint=volta32gb'",
    )
    check_line("sbatch", option)
    owner = SBATCH_OWNED.get(key.replace("_", "-"))
    check(
        owner is None,
        f"sbatch: {option!r} sets what {owner} sets; "
        + ("set that instead" if owner != "the launch" else "the launch writes that option itself"),
    )
