"""Estimates of replicates (mean, sd, Student's t and Welch intervals), the groups of a cell's replicates, and
the rule that leaves out the replicates of an older config of a cell."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scipy import stats

from ablation.results.latest import latest_runs
from ablation.results.records import RunRecord
from ablation.results.replicates import Estimate, difference, estimate, replicate_groups
from ablation.results.store import Store

from .helpers.store import record, stored

# Student's t's 0.975 quantile (two-sided 95%): with 2 degrees of freedom in closed form, (2p - 1) /
# sqrt(2p(1 - p)) = 4.3026527297494..., and with 4 as printed tables give it.
T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
T975_DF4 = 2.776445105

# R's documented Welch example, t.test(extra ~ group, data = sleep): t = -1.8608, df = 17.776,
# 95 percent confidence interval: -3.3654832 0.2054832; means 0.75 and 2.33.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def at(day: int) -> datetime:
    return datetime(2024, 5, day, tzinfo=UTC)


def replicate(code: str, seed: int | None, ap: float | None, **more: Any) -> RunRecord:
    """A done run of the cell ``code`` (no DCN) of sweep 'abl', replicate ``seed`` of config ``cell_id``."""
    cell_id = more.pop("cell_id", f"id{code}")
    fields: dict[str, Any] = {
        "sweep": "abl",
        "cell": f"cell{code}",
        "run_id": cell_id if seed is None else f"{cell_id}-s{seed}",
        "cell_id": cell_id,
        "seed": seed,
        "backbone": "R-50",
        "schedule": "1x",
        "bbox_mAP": ap,
        "finished": at(1),
    }
    return record(code, False, **{**fields, **more})


# --- estimate -------------------------------------------------------------------------------------------


def test_estimate_is_the_mean_with_students_t_interval() -> None:
    found = estimate([1.0, 2.0, 3.0])
    assert (found.mean, found.n, found.sd) == (2.0, 3, 1.0)
    half = T975_DF2 / math.sqrt(3)
    assert found.low == pytest.approx(2.0 - half, rel=1e-12)
    assert found.high == pytest.approx(2.0 + half, rel=1e-12)
    assert found.half("ci") == pytest.approx(half, rel=1e-12)
    assert found.half() == found.half("ci")
    assert found.half("sd") == 1.0
    assert found.df == 2.0
    assert found.resolved is False  # the interval (-0.48, 4.48) holds 0
    assert estimate([10.0, 11.0, 12.0]).resolved is True


def test_estimate_agrees_with_scipys_one_sample_t_test() -> None:
    values = [0.401, 0.397, 0.405, 0.399, 0.402]
    found = estimate(values)
    interval = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert (found.low, found.high) == pytest.approx((interval.low, interval.high), rel=1e-12)
    wider = estimate(values, level=0.99)
    assert wider.low is not None and found.low is not None and wider.low < found.low
    assert found.sd == pytest.approx(stats.tstd(values), rel=1e-12)


def test_one_value_has_no_spread_and_equal_values_no_width() -> None:
    one = estimate([0.4])
    assert one == Estimate(mean=0.4, n=1, sd=None, low=None, high=None)
    assert (one.half("ci"), one.half("sd"), one.resolved) == (None, None, None)
    same = estimate([0.4, 0.4, 0.4])
    assert (same.mean, same.sd, same.low, same.high, same.half()) == (0.4, 0.0, 0.4, 0.4, 0.0)


def test_the_mean_and_sd_are_statistics_exact_ones_rounded_once() -> None:
    """estimate's own exact arithmetic gives, to the last bit, what statistics.mean and statistics.stdev give
    (the exact values rounded once), over seeded samples of every size and magnitude a store holds, and of
    values that cancel or repeat."""
    rng = random.Random(29)
    draws = [
        lambda: rng.uniform(0.3, 0.45),  # box AP
        lambda: rng.uniform(5, 25),  # fps
        lambda: float(rng.randint(41_000_000, 48_000_000)),  # parameters
        lambda: rng.uniform(1.8e11, 2.4e11),  # FLOPs
        lambda: rng.choice([0.1, 0.4, 1 / 3, -0.2]),  # repeats
        lambda: rng.uniform(-1, 1) * 10.0 ** rng.randint(-300, 300),  # anything
    ]
    for _ in range(3000):
        draw = rng.choice(draws)
        values = [draw() for _ in range(rng.choice([1, 2, 2, 3, 4, 5, 10]))]
        found = estimate(values)
        assert found.mean == statistics.mean(values), values
        assert found.sd == (statistics.stdev(values) if len(values) > 1 else None), values


def test_bad_inputs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="no values"):
        estimate([])
    with pytest.raises(ValueError, match="finite"):
        estimate([1.0, float("nan")])
    with pytest.raises(ValueError, match="spread"):
        estimate([1.0, 2.0]).half("iqr")
    with pytest.raises(ValueError, match="level"):
        estimate([1.0, 2.0], level=95)


# --- difference -----------------------------------------------------------------------------------------


def test_difference_reproduces_rs_welch_example() -> None:
    found = difference(SLEEP_1, SLEEP_2)
    assert found.mean == pytest.approx(0.75 - 2.33, abs=1e-12)
    assert found.low == pytest.approx(-3.3654832, abs=1e-7)
    assert found.high == pytest.approx(0.2054832, abs=1e-7)
    assert found.df == pytest.approx(17.776, abs=1e-3)
    assert found.mean / (found.se or 0.0) == pytest.approx(-1.8608, abs=1e-4)
    assert found.resolved is False
    assert (found.n, found.sd, found.half("sd")) == (10, None, None)


def test_difference_agrees_with_scipys_welch_test_and_resolves() -> None:
    a, b = [0.400, 0.402, 0.404], [0.370, 0.372, 0.374, 0.371]
    found = difference(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert (found.low, found.high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert found.df == pytest.approx(welch.df, rel=1e-12)
    assert found.resolved is True
    # equal sizes and variances: Welch's df is 2(n-1) and the interval t(0.975, 4) * se
    even = difference([0.400, 0.402, 0.404], [0.370, 0.372, 0.374])
    assert even.df == pytest.approx(4.0)
    assert even.half() == pytest.approx(T975_DF4 * math.sqrt(2 * 0.002**2 / 3), rel=1e-9)


def test_difference_with_one_run_on_a_side_has_no_interval() -> None:
    found = difference([0.40, 0.41, 0.42], [0.37])
    assert found.mean == pytest.approx(0.04)
    assert (found.n, found.low, found.high, found.resolved) == (1, None, None, None)
    flat = difference([0.4, 0.4], [0.3, 0.3])  # neither side varies: the interval is the difference
    assert flat.low == flat.high == pytest.approx(0.1)
    assert flat.resolved is True


# --- latest_runs with replicates --------------------------------------------------------------------------


def test_latest_run_of_each_seed_and_only_the_current_config(tmp_path: Path) -> None:
    runs = [
        # cell 1111: an older config's three replicates, then two of the current config (a rerun of seed 0)
        *(replicate("1111", s, 0.39, cell_id="old", finished=at(1)) for s in (0, 1, 2)),
        replicate("1111", 0, 0.40, cell_id="new", finished=at(3), run_id="new-s0"),
        replicate("1111", 0, 0.41, cell_id="new", finished=at(4), run_id="new-s0-again"),
        replicate("1111", 1, 0.42, cell_id="new", finished=at(2)),
        replicate("1111", 2, 0.43, cell_id="new", status="failed", finished=at(5)),
        # cell 0000: three seeds, and an imported row with no cell_id that no rule leaves out
        *(replicate("0000", s, 0.37, finished=at(1)) for s in (0, 1, 2)),
        replicate("0000", None, 0.36, cell_id=None, run_id="log", finished=at(9)),
    ]
    latest = latest_runs(stored(tmp_path, runs))
    got = sorted(zip(latest["cell"], latest["run_id"], strict=True))
    assert got == [
        ("cell0000", "id0000-s0"),
        ("cell0000", "id0000-s1"),
        ("cell0000", "id0000-s2"),
        ("cell0000", "log"),
        ("cell1111", "new-s0-again"),
        ("cell1111", "new-s1"),
    ]


def test_the_newest_run_decides_the_config_after_each_seeds_latest(tmp_path: Path) -> None:
    """Each seed's latest run first, then the config of the cell's newest: an older config's replicate that
    finishes last wins the cell back, and a seed whose latest run is of the other config drops out."""
    runs = [
        replicate("1111", 0, 0.40, cell_id="a", finished=at(1)),
        replicate("1111", 1, 0.40, cell_id="a", finished=at(1)),
        replicate("1111", 0, 0.41, cell_id="b", finished=at(2)),
    ]
    frame = stored(tmp_path, runs)
    assert list(latest_runs(frame)["run_id"]) == ["b-s0"]
    later = stored(tmp_path / "later", [*runs, replicate("1111", 1, 0.40, cell_id="a", finished=at(3))])
    assert list(latest_runs(later)["run_id"]) == ["a-s1"]  # seed 0's latest (b-s0) is of config b


# --- replicate_groups -----------------------------------------------------------------------------------


def test_groups_hold_a_cells_replicates_ordered_by_seed(tmp_path: Path) -> None:
    runs = [
        replicate("1111", 2, 0.404, fps=22.0, axes={"model.attention.kv_stride": 2}),
        replicate("1111", 0, 0.400, fps=20.0, axes={"model.attention.kv_stride": 2}),
        replicate("1111", 1, 0.402, axes={"model.attention.kv_stride": 2}),  # no fps measured
        replicate("0000", None, 0.372),
        replicate("0000", None, 0.371, source="reference", run_id="zoo", cell_id=None),
    ]
    groups = replicate_groups(stored(tmp_path, runs))
    by_key = {(g.identity["source"], g.identity["cell"]): g for g in groups}
    assert sorted(by_key) == [("reference", "cell0000"), ("run", "cell0000"), ("run", "cell1111")]
    attention = by_key["run", "cell1111"]
    assert attention.n == 3
    assert attention.seeds == (0, 1, 2)
    assert attention.identity["code"] == "1111" and attention.identity["dcn"] is False
    assert attention.identity["cell_id"] == "id1111"
    assert attention.axes == {"model.attention.kv_stride": 2}
    assert attention.values("bbox_mAP") == [0.400, 0.402, 0.404]
    ap = attention.estimate("bbox_mAP")
    assert ap is not None and ap.mean == pytest.approx(0.402) and ap.sd == pytest.approx(0.002)
    fps = attention.estimate("fps")
    assert fps is not None and (fps.n, fps.mean) == (2, 21.0)
    assert attention.estimate("flops") is None
    assert attention.estimate("no_such_column") is None
    plain = by_key["run", "cell0000"]
    assert (plain.n, plain.seeds, plain.axes) == (1, (None,), {"model.attention.kv_stride": None})
    assert plain.first("bbox_mAP") == 0.372
    assert replicate_groups(Store(tmp_path / "empty").read().frame()) == []
    assert replicate_groups(pd.DataFrame()) == []
