"""The verdict a newcomer reads first (ablation.analysis.effects_text.verdict): on planted designs, which
main effects it names as resolved, how many it counts as not, their margin, and the seeds per cell it says
would resolve the largest of those, against the analysis's own rows and the formula; one seed (Lenth's
margin), nothing resolved, everything resolved, no interval at all, nothing to estimate; and ``ablation
effects`` printing it first in markdown only."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ablation.analysis.effects import FactorialAnalysis, analyse
from ablation.analysis.effects_text import seeds_needed, verdict
from ablation.analysis.numbers import FACTOR_COLUMNS

from .helpers.cli import run_cli
from .helpers.store import grid_runs, store_with

DCN = FACTOR_COLUMNS[-1]


def planted(seeds: int, effects: dict[str, float], sd: float = 0.3, rng: int = 0) -> pd.DataFrame:
    """The full 2^5 grid of the four attention factors and DCN, ``seeds`` runs a cell: box AP 30 points, plus
    half of each planted effect (AP points) at the factor's high level and minus half at its low, plus normal
    noise of ``sd`` AP points (a fixed draw); in the store's unit (a fraction)."""
    noise = np.random.default_rng(rng)
    rows = []
    for levels in itertools.product((False, True), repeat=len(FACTOR_COLUMNS)):
        on = dict(zip(FACTOR_COLUMNS, levels, strict=True))
        for _ in range(seeds):
            ap = 30.0 + sum(e / 2 * (1 if on[f] else -1) for f, e in effects.items())
            rows.append({**on, "bbox_mAP": (ap + sd * noise.standard_normal()) / 100})
    return pd.DataFrame(rows)


def mains(analysis: FactorialAnalysis) -> pd.DataFrame:
    """The main effects, largest first, with each one's margin (its interval's half-width)."""
    found = analysis.main().assign(
        half=lambda t: (t["high"] - t["low"]) / 2, size=lambda t: t["effect"].abs()
    )
    return found.sort_values("size", ascending=False)


def test_a_planted_effect_is_named_the_nulls_counted_and_the_seeds_worked_out() -> None:
    analysis = analyse(planted(2, {DCN: 2.0}, rng=2), "box AP")
    assert analysis.method == "replicates"
    rows = mains(analysis)
    hit, rest = rows[rows["resolved"].astype(bool)], rows[~rows["resolved"].astype(bool)]
    assert list(hit["term"]) == [DCN] and len(rest) == 4  # this draw: DCN alone is resolved
    text = verdict(analysis)
    dcn = hit.iloc[0]
    assert text.startswith(
        f"On box AP (AP points), 1 of 5 main effects is resolved from noise at 95%: deformable convolution "
        f"{dcn['effect']:+.2f} (±{dcn['half']:.2f}). The other 4 ("
    )
    for label in rest["label"]:
        assert label in text
    largest = rest.iloc[0]
    assert f"the largest: {largest['label']} {largest['effect']:+.2f})" in text
    assert f"are within the margin of ±{rest['half'].max():.2f} AP points." in text  # a balanced design
    needed = math.ceil(2 * (largest["half"] / largest["size"]) ** 2)
    assert needed > 2
    assert text.endswith(
        f"To resolve an effect of {largest['size']:.2f} ({largest['label']}) would take about {needed} seeds "
        "per cell (now 2)."
    )
    assert "of the 26 interactions" in text


def test_the_seeds_formula() -> None:
    """Half-width ∝ 1/sqrt(runs per cell): ceil(now * (margin / |effect|)^2), and always more than now."""
    assert seeds_needed(2, 0.6, 0.4) == math.ceil(2 * 2.25) == 5
    assert seeds_needed(2, 0.6, -0.4) == 5
    assert seeds_needed(1, 0.5, 0.1) == 25
    assert seeds_needed(3, 0.4, 0.4) == 4  # at the margin: one more seed
    assert seeds_needed(2, 0.6, 0.0) is None


def test_a_half_width_does_shrink_as_one_over_the_root_of_the_runs() -> None:
    """The rule behind the formula, on the analysis itself: the same within-cell spread (each cell's runs at
    its mean ± 0.3 AP points) over 2 and over 8 runs per cell; the margins' ratio is 2, up to the t quantile
    and the sample sd's n/(n-1)."""
    from scipy import stats

    def exact(seeds: int) -> pd.DataFrame:
        frame = planted(seeds, {DCN: 2.0}, sd=0.0)
        signs = np.tile([1.0, -1.0], len(frame) // 2)
        return frame.assign(bbox_mAP=frame["bbox_mAP"] + 0.003 * signs)

    two, eight = (analyse(exact(n), "box AP") for n in (2, 8))
    ratio = mains(two)["half"].iloc[0] / mains(eight)["half"].iloc[0]
    t_two, t_eight = (stats.t.ppf(0.975, a.residual_df) for a in (two, eight))
    spread = math.sqrt((2 / 1) / (8 / 7))  # the within-cell sd: 0.3 * sqrt(n / (n - 1))
    assert ratio == pytest.approx(math.sqrt(8 / 2) * t_two / t_eight * spread)


def test_one_seed_uses_lenths_margin_and_says_now_one() -> None:
    analysis = analyse(planted(1, {DCN: 2.0}), "box AP")
    assert analysis.method == "lenth" and analysis.lenth is not None
    text = verdict(analysis)
    me = analysis.lenth.me
    assert f"deformable convolution {mains(analysis).iloc[0]['effect']:+.2f} (±{me:.2f})" in text
    assert f"within the margin of ±{me:.2f} AP points" in text
    largest = mains(analysis)[~mains(analysis)["resolved"].astype(bool)].iloc[0]
    assert f"about {math.ceil((me / largest['size']) ** 2)} seeds per cell (now 1)." in text


def test_nothing_resolved_says_every_difference_is_noise() -> None:
    analysis = analyse(planted(2, {}, rng=2), "box AP")
    rows = mains(analysis)
    assert not rows["resolved"].astype(bool).any()
    text = verdict(analysis)
    assert text.startswith(
        "On box AP (AP points), none of the 5 main effects is resolved from noise at 95%: every difference "
        f"here is within the noise of ±{rows['half'].max():.2f} AP points (the largest: "
        f"{rows.iloc[0]['label']} {rows.iloc[0]['effect']:+.2f})."
    )
    assert "To resolve an effect of" in text


def test_everything_resolved_names_them_all_and_asks_for_no_seeds() -> None:
    effects = {f: 2.0 + i for i, f in enumerate(FACTOR_COLUMNS)}
    analysis = analyse(planted(2, effects, sd=0.01), "box AP")
    text = verdict(analysis)
    assert text.startswith("On box AP (AP points), all 5 main effects are resolved from noise at 95%: ")
    first = text.split(". ")[0]
    assert first.index("deformable convolution +6.00") < first.index(
        "query-key content +2.00"
    )  # largest first
    assert "To resolve" not in text


def test_tiny_figures_read_with_a_digit_and_rounding_errors_as_zero() -> None:
    """A margin of a few thousandths reads with its significant digit; the effects of a design without noise
    (rounding errors of 1e-16 around 0) read +0.0000, never with sixteen decimals."""
    small = verdict(analyse(planted(2, {DCN: 1.0}, sd=0.01), "box AP"))
    assert re.search(r"deformable convolution \+1\.00 \(±0\.00[1-9]\)", small)
    exact = verdict(analyse(planted(2, {DCN: 1.0, FACTOR_COLUMNS[0]: 0.5}, sd=0.0), "box AP"))
    assert not re.search(r"\d\.\d{5}", exact) and "+0.0000" in exact
    assert "To resolve" not in exact  # no seeds resolve an effect of 0


def test_no_interval_says_why_and_recommends_seeds() -> None:
    """Two factors, one run per cell: the main effects and their interaction leave no residual."""
    frame = planted(1, {DCN: 2.0})
    analysis = analyse(frame[~frame[list(FACTOR_COLUMNS[:3])].any(axis=1)], "box AP")
    assert analysis.method == "none"
    text = verdict(analysis)
    assert text.startswith("On box AP (AP points), the 2 main effects have no interval, so no effect can be ")
    assert analysis.reason.rstrip(".") in text
    assert text.endswith("run every cell with two or more seeds ([grid] seeds) to measure the noise.")


def test_nothing_to_estimate_gives_the_reason() -> None:
    frame = planted(1, {})
    analysis = analyse(frame[~frame[list(FACTOR_COLUMNS)].any(axis=1)], "box AP")
    assert verdict(analysis) == (
        "No effect on box AP (AP points) could be estimated: no factor or setting has two levels among the "
        "runs."
    )
    assert verdict(analyse(planted(1, {}).iloc[0:0], "box AP")).startswith("No effect on box AP")


def test_a_memory_verdict_goes_by_the_name_it_is_shown_by() -> None:
    frame = (
        planted(2, {DCN: 2.0}, rng=2).rename(columns={"bbox_mAP": "fps"}).assign(fps=lambda t: t["fps"] * 100)
    )
    text = verdict(analyse(frame, "fps"), "the fps")
    assert text.startswith("On the fps (img/s), 1 of 5 main effects is resolved")


def test_ablation_effects_prints_the_verdict_first_in_markdown_only(tmp_path: Path) -> None:
    store = store_with(tmp_path, grid_runs("study"))
    analysis = analyse(store.read().frame(), "box AP")
    said = verdict(analysis)
    code, out, err = run_cli("effects", "--sweep", "study", "--store", str(store.path), "--metric", "box AP")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("## study (run): effects on box AP") and lines[2] == said
    assert lines[4].startswith("Lenth's method")  # the method sentence after it
    for fmt in ("csv", "latex"):
        code, out, _ = run_cli("effects", "--sweep", "study", "--store", str(store.path), "--format", fmt)
        assert code == 0 and "resolved from noise at" not in out
