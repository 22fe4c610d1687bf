"""Resuming from mmengine's own checkpoints with torch's safe unpickler.

torch >= 2.6 unpickles with ``weights_only=True`` unless told otherwise, and mmengine 0.10.7 calls
``torch.load`` without saying. Its checkpoints hold, besides tensors, the message hub's ``HistoryBuffer``
(numpy arrays of logged scalars, and its statistics methods, pickled as ``getattr(HistoryBuffer, 'mean')``)
and numpy scalars, so a resume fails with ``Unsupported global``. Turning ``weights_only`` off would let a
checkpoint run code. Instead the few classes an mmengine checkpoint needs are allowlisted, and ``getattr``
only in a form that returns HistoryBuffer's statistics methods; anything else in a checkpoint is refused.
"""

from __future__ import annotations

from typing import Any

__all__ = ["allow_mmengine_checkpoints"]


def _history_buffer_getattr(owner: Any, name: str) -> Any:
    """``getattr`` for unpickling, limited to the statistics methods of mmengine's HistoryBuffer."""
    from mmengine.logging.history_buffer import HistoryBuffer

    statistics = {"min", "max", "current", "mean", *HistoryBuffer._statistics_methods}
    if owner is HistoryBuffer and name in statistics:
        return getattr(owner, name)
    raise ValueError(
        f"a checkpoint asks for getattr({owner!r}, {name!r}): refused, not a HistoryBuffer statistic"
    )


def allow_mmengine_checkpoints() -> None:
    """Allowlist, for ``torch.load(weights_only=True)``, what mmengine's training checkpoints hold."""
    import numpy as np
    import torch
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # type: ignore[attr-defined]
    dtypes = [type(np.dtype(kind)) for kind in ("float64", "float32", "int64", "int32", "bool")]
    torch.serialization.add_safe_globals(
        [
            HistoryBuffer,
            np.ndarray,
            np.dtype,
            multiarray._reconstruct,
            multiarray.scalar,
            *dtypes,
            (_history_buffer_getattr, "builtins.getattr"),
        ]
    )
