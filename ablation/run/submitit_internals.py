"""Every use of submitit beyond its documented API, in one place.

submitit's public surface (executors, ``map_array``, ``Job.job_id``, ``helpers.Checkpointable``) does not
cover what a launcher that outlives its jobs, and can be killed mid-submission, needs. What it uses besides,
checked against the submitit versions pinned in pyproject.toml (``submitit>=1.5.4,<1.6``; the test suite's
executor, Slurm and dry-run tests exercise each one):

- ``LocalJob._process``: the controller's ``Popen``, polled to reap it and to tell whether it still runs;
- the local controller's command line, ``python -m submitit.local._local FOLDER``, to recognise its process
  from another process (a local job's id is the controller's pid);
- ``submitit.slurm.slurm._make_sbatch_string`` and ``SlurmExecutor._submitit_command_str``: the sbatch script
  that ``launch --dry-run`` prints, as submitit would submit it;
- ``submitit.core.utils.JobPaths``, ``DelayedSubmission.dump`` and ``DelayedSubmission.set_timeout``: a job's
  pickle written before sbatch answers, where and as submitit itself writes it, so that a later launch can
  complete the submission of a killed launcher.

When a new submitit changes one of these, the tests that exercise it fail; the range in pyproject.toml says
which versions were checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["dump_submission", "is_local_controller", "local_process", "sbatch_string", "submitted_pickle"]

_LOCAL_CONTROLLER = b"submitit.local._local"


def local_process(job: Any) -> Any:
    """The ``subprocess.Popen`` of a local job's controller, or None (not a local job)."""
    return getattr(job, "_process", None)


def is_local_controller(command_line: bytes) -> bool:
    """Whether ``/proc/PID/cmdline`` is that of a submitit local job's controller."""
    return _LOCAL_CONTROLLER in command_line


def sbatch_string(executor: Any, count: int) -> str:
    """The sbatch script ``executor`` (a SlurmExecutor with its parameters) would submit for a job array of
    ``count`` tasks (a plain job for 1)."""
    from submitit.slurm.slurm import _make_sbatch_string

    arguments: dict[str, Any] = dict(executor.parameters)
    if count > 1:
        arguments["map_count"] = count
    script: str = _make_sbatch_string(
        command=executor._submitit_command_str, folder=executor.folder, **arguments
    )
    return script


def submitted_pickle(folder: Path, job_id: str) -> Path:
    """Where submitit keeps the pickle of job ``job_id`` of an executor whose folder is ``folder/%j``."""
    from submitit.core.utils import JobPaths

    path: Path = JobPaths(folder / "%j", job_id).submitted_pickle
    return path


def dump_submission(function: Any, argument: Any, path: Path, timeout_min: int, max_timeouts: int) -> None:
    """Pickle ``function(argument)`` as submitit pickles a job, with its time-out countdown for requeues."""
    import submitit

    delayed = submitit.helpers.DelayedSubmission(function, argument)
    delayed.set_timeout(timeout_min, max_timeouts)
    path.parent.mkdir(parents=True, exist_ok=True)
    delayed.dump(path)
