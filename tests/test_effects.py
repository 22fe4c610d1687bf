"""The factorial analysis (ablation.analysis.effects): two textbook designs with their published figures, the
rules that pick the design's factors and the method, and simulations of designs with known effects and noise
that check the intervals cover the truth, and Lenth's method flags what is there, at their nominal rates."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablation.analysis.effects import analyse, half_normal, lenth
from ablation.analysis.numbers import FACTOR_COLUMNS

QK, QPOS, KEY, POS, DCN = FACTOR_COLUMNS
BITS = (QK, QPOS, KEY, POS)


def design(factors: tuple[str, ...], ys: dict[str, list[float]], metric: str = "fps") -> pd.DataFrame:
    """Runs of a 2^k design in Yates's notation: ys maps '(1)', 'a', 'ab', ... to a cell's replicates, the
    letters a, b, c, ... standing for ``factors`` in order; each factor of FACTOR_COLUMNS not given is off.
    The responses go into ``metric``, by default fps, whose display unit is its store unit (box AP's
    effects are 100x its store fractions: test_effects_are_in_the_display_unit)."""
    rows = []
    for cell, values in ys.items():
        on = set() if cell == "(1)" else set(cell)
        levels = {column: False for column in FACTOR_COLUMNS}
        levels |= {column: letter in on for letter, column in zip("abcde", factors, strict=False)}
        rows += [{**levels, metric: float(v)} for v in values]
    return pd.DataFrame(rows)


def yates(k: int) -> list[str]:
    """The 2^k cells in standard order: (1), a, b, ab, c, ac, bc, abc, ..."""
    cells = [""]
    for letter in "abcde"[:k]:
        cells += [cell + letter for cell in cells]
    return [cell or "(1)" for cell in cells]


def effect_of(analysis_effects: pd.DataFrame, *columns: str) -> pd.Series:
    (row,) = analysis_effects[analysis_effects["term"] == ":".join(columns)].itertuples(index=False)
    return pd.Series(row._asdict())


# --- textbook designs ---------------------------------------------------------------------------------------

# Montgomery, Design and Analysis of Experiments (8th ed.), Example 6.2: the filtration rate of a chemical in
# a pilot plant, an unreplicated 2^4 (A temperature, B pressure, C formaldehyde concentration, D stirring
# rate). Its published effect estimates (Table 6.11), and the analysis the book draws from them: A, C, D, AC
# and AD are the active effects.
FILTRATION = dict(
    zip(
        yates(4),
        ([v] for v in (45, 71, 48, 65, 68, 60, 80, 65, 43, 100, 45, 104, 75, 86, 70, 96)),
        strict=True,
    )
)
FILTRATION_EFFECTS = {
    "A": 21.625, "B": 3.125, "C": 9.875, "D": 14.625,
    "AB": 0.125, "AC": -18.125, "AD": 16.625, "BC": 2.375, "BD": -0.375, "CD": -1.125,
    "ABC": 1.875, "ABD": 4.125, "ACD": -1.625, "BCD": -2.625, "ABCD": 1.375,
}  # fmt: skip

# Montgomery, Example 6.1: the etch rate of a plasma etcher, a 2^3 with two replicates (A gap, B gas flow,
# C RF power): its effects (Table 6.4/6.5) and ANOVA: SS_A = 41,310.5625, SS_C = 374,850.0625,
# SS_AC = 94,402.5625, SS_E = 18,020.50 on 8 degrees of freedom.
ETCH = dict(
    zip(
        yates(3),
        ([550, 604], [669, 650], [633, 601], [642, 635], [1037, 1052], [749, 868], [1075, 1063], [729, 860]),
        strict=True,
    )
)
ETCH_EFFECTS = {
    "A": -101.625,
    "B": 7.375,
    "C": 306.125,
    "AB": -24.875,
    "AC": -153.625,
    "BC": -2.125,
    "ABC": 5.625,
}


def by_letters(factors: tuple[str, ...], letters: str) -> tuple[str, ...]:
    return tuple(factors["ABCDE".index(letter)] for letter in letters)


def test_the_unreplicated_textbook_design_gives_its_published_effects_and_lenths_verdict() -> None:
    analysis = analyse(design(BITS, FILTRATION), "fps")
    assert (analysis.method, analysis.runs, analysis.cells, analysis.runs_per_cell) == (
        "lenth",
        16,
        16,
        (1, 1),
    )
    assert len(analysis.effects) == 15
    for letters, published in FILTRATION_EFFECTS.items():
        assert effect_of(analysis.effects, *by_letters(BITS, letters))["effect"] == pytest.approx(
            published, abs=1e-12
        )
    # Lenth's PSE from its definition on the published effects: the median |effect| is 2.625, so s0 = 3.9375;
    # the ten effects under 2.5 s0 = 9.84 have the median 1.75, and PSE = 1.5 x 1.75 = 2.625. ME and SME are
    # t quantiles with m/3 = 5 df times PSE: t(0.975; 5) = 2.5706, t(gamma; 5), gamma = (1 + 0.95^(1/15))/2.
    found = analysis.lenth
    assert found is not None
    assert (found.pse, found.df, found.m) == (2.625, 5.0, 15)
    assert found.me == pytest.approx(2.625 * 2.5706, abs=1e-3)
    assert found.sme == pytest.approx(2.625 * stats.t.ppf((1 + 0.95 ** (1 / 15)) / 2, 5), rel=1e-12)
    assert round(found.me, 2) == 6.75 and round(found.sme, 1) == 13.7
    resolved = {
        "".join("ABCD"[BITS.index(c)] for c in row.term.split(":"))
        for row in analysis.effects.itertuples()
        if row.resolved
    }
    assert resolved == {"A", "C", "D", "AC", "AD"}  # the book's active effects
    simultaneous = {
        "".join("ABCD"[BITS.index(c)] for c in row.term.split(":"))
        for row in analysis.effects.itertuples()
        if row.simultaneous
    }
    assert simultaneous == {"A", "D", "AC", "AD"}  # C (9.875) is under SME
    assert analysis.anova is None and "Lenth" in analysis.description


def test_the_replicated_textbook_design_gives_its_published_effects_anova_and_t_intervals() -> None:
    factors = (QK, KEY, DCN)
    analysis = analyse(design(factors, ETCH), "fps")
    assert (analysis.method, analysis.runs, analysis.cells, analysis.runs_per_cell) == (
        "replicates",
        16,
        8,
        (2, 2),
    )
    assert analysis.residual_df == 8.0
    # the standard error of an effect in a 2^k with n replicates: 2 sqrt(MS_E / (n 2^k)), MS_E = SS_E / 8
    se = 2 * math.sqrt(18020.5 / 8 / 16)
    half = stats.t.ppf(0.975, 8) * se
    for letters, published in ETCH_EFFECTS.items():
        row = effect_of(analysis.effects, *by_letters(factors, letters))
        assert row["effect"] == pytest.approx(published, abs=1e-9)
        assert row["se"] == pytest.approx(se, rel=1e-9)
        assert (row["low"], row["high"]) == pytest.approx((published - half, published + half), rel=1e-9)
        assert row["resolved"] == (abs(published) > half)
    anova = analysis.anova
    assert anova is not None
    assert anova.loc["Residual", "sum_sq"] == pytest.approx(18020.5)
    assert anova.loc["Residual", "df"] == 8
    labels = {letter: analysis.factors[i].label for i, letter in enumerate("ABC")}
    assert anova.loc[labels["A"], "sum_sq"] == pytest.approx(41310.5625)
    assert anova.loc[labels["C"], "sum_sq"] == pytest.approx(374850.0625)
    assert anova.loc[f"{labels['A']} x {labels['C']}", "sum_sq"] == pytest.approx(94402.5625)


# --- the design's factors and the method -------------------------------------------------------------------


def full_grid(
    rng: np.random.Generator, seeds: int = 1, kv_stride: list[object] | None = None
) -> pd.DataFrame:
    """The 16 codes x DCN, ``seeds`` runs each, box AP as noise; an axis column when kv_stride is given (a
    value per run, cycled)."""
    rows = []
    for bits in itertools.product((False, True), repeat=5):
        for _ in range(seeds):
            rows.append({**dict(zip(FACTOR_COLUMNS, bits, strict=True)), "bbox_mAP": rng.normal(0.4, 0.003)})
    frame = pd.DataFrame(rows)
    if kv_stride is not None:
        frame["model.attention.kv_stride"] = [kv_stride[i % len(kv_stride)] for i in range(len(frame))]
    return frame


def test_todays_default_grid_is_an_unreplicated_2_to_the_5_analysed_with_lenths_method() -> None:
    analysis = analyse(full_grid(np.random.default_rng(1)), "bbox_mAP")
    assert (analysis.method, len(analysis.effects), analysis.lenth and analysis.lenth.m) == ("lenth", 31, 31)
    assert [f.column for f in analysis.factors] == list(FACTOR_COLUMNS)
    assert list(analysis.main()["term"]) == list(FACTOR_COLUMNS)
    assert len(analysis.interactions()) == 10
    points = half_normal(analysis)
    assert list(points["size"]) == sorted(abs(analysis.effects["effect"]))
    assert points["quantile"].is_monotonic_increasing and points["quantile"].iloc[0] > 0


def test_factors_moving_together_are_aliased_and_a_constant_one_is_left_out() -> None:
    """Codes 0000 and 1111 only, DCN off and on, three seeds: the four bits are one factor."""
    rng = np.random.default_rng(2)
    rows = [
        {**{bit: on for bit in BITS}, DCN: dcn, "bbox_mAP": rng.normal(0.4 + 0.01 * on, 0.002)}
        for on in (False, True)
        for dcn in (False, True)
        for _ in range(3)
    ]
    analysis = analyse(pd.DataFrame(rows), "bbox_mAP")
    assert [f.column for f in analysis.factors] == [QK, DCN]
    assert set(analysis.aliased) == {
        "query content & relative position",
        "key content only",
        "relative position only",
    }
    assert set(analysis.aliased.values()) == {"query-key content"}
    assert analysis.method == "replicates" and analysis.residual_df == 12 - 4
    assert effect_of(analysis.effects, QK)["resolved"]

    no_dcn = analyse(pd.DataFrame(rows)[lambda f: ~f[DCN]], "bbox_mAP")
    assert [f.column for f in no_dcn.factors] == [QK]


def test_an_axis_with_two_values_everywhere_is_a_factor_and_one_with_one_value_where_set_is_nothing() -> None:
    rng = np.random.default_rng(3)
    factor = analyse(full_grid(rng, kv_stride=[1, 2]), "bbox_mAP")
    # cycled per run over 32 cells: kv_stride follows DCN's pattern (rows alternate DCN) -> aliased with it
    assert factor.aliased == {"kv_stride 1→2": "deformable convolution"}
    frame = pd.concat([full_grid(rng).assign(**{"model.attention.kv_stride": s}) for s in (1, 2)])
    crossed = analyse(frame, "bbox_mAP")
    assert [f.label for f in crossed.factors][-1] == "kv_stride 1→2"
    assert (crossed.method, len(crossed.effects)) == ("lenth", 63)

    one_level = frame.assign(
        **{"model.attention.kv_stride": [None if i % 4 == 0 else 2 for i in range(len(frame))]}
    )
    analysis = analyse(one_level, "bbox_mAP")  # set to 2 where set: no contrast to estimate
    assert analysis.settings == () and analysis.method == "replicates"  # two runs per cell
    assert list(analysis.effects["kind"].unique()) == ["factor"]


def test_an_incomplete_unreplicated_grid_pools_the_omitted_interactions_and_a_tiny_one_has_no_interval() -> (
    None
):
    grid = full_grid(np.random.default_rng(4))
    pooled = analyse(grid.iloc[:-3], "bbox_mAP")  # three cells missing
    assert pooled.method == "pooled" and pooled.residual_df == 29 - 16
    assert "pools the omitted interactions" in pooled.description
    assert pooled.effects["low"].notna().all()

    square = design((QK, DCN), {"(1)": [1.0], "a": [2.0], "b": [3.0], "ab": [5.0]})
    tiny = analyse(square, "fps")  # 2^2 unreplicated: 3 effects, too few for Lenth, no residual
    assert tiny.method == "none" and "no residual" in tiny.reason
    assert list(tiny.effects["effect"]) == pytest.approx([1.5, 2.5, 0.5])
    assert tiny.effects["low"].isna().all() and tiny.effects["resolved"].isna().all()


def test_runs_without_the_metric_are_left_out_and_memory_kinds_do_not_mix() -> None:
    grid = full_grid(np.random.default_rng(5), seeds=2)
    grid.loc[0, "bbox_mAP"] = np.nan
    analysis = analyse(grid, "bbox_mAP")
    assert (analysis.runs, analysis.runs_per_cell) == (63, (1, 2))
    memory = grid.assign(memory_gb=1.0, memory_kind=["cpu_peak_rss", "cuda_peak_allocated"] * 32)
    with pytest.raises(ValueError, match="mix memory kinds"):
        analyse(memory, "memory_gb")
    with pytest.raises(ValueError, match="no column 'fps'"):
        analyse(grid, "fps")
    empty = analyse(grid.assign(bbox_mAP=np.nan), "bbox_mAP")
    assert empty.method == "none" and empty.effects.empty and "no run has" in empty.reason


def test_lenth_of_no_spread_gives_zero_margins() -> None:
    found = lenth([0.0] * 7 + [1.0])
    assert (found.pse, found.me, found.sme) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="at least 2 effects"):
        lenth([1.0])


# --- simulations with known effects ------------------------------------------------------------------------

TRUE_EFFECTS = {(QK,): 0.012, (KEY,): 0.0, (DCN,): -0.006, (QK, KEY): 0.004, (QK, DCN): 0.0, (KEY, DCN): 0.0}
SIGMA = 0.003  # seed noise of box AP as a fraction: 0.3 AP points, the top of the study's range


def simulated(
    rng: np.random.Generator, factors: tuple[str, ...], truth: dict[tuple[str, ...], float], replicates: int
) -> pd.DataFrame:
    """A 2^k, ``replicates`` runs per cell: y = 0.4 + sum(effect/2 x the term's ±1 column) + N(0, SIGMA)."""
    rows = []
    for bits in itertools.product((-1.0, 1.0), repeat=len(factors)):
        coded = dict(zip(factors, bits, strict=True))
        mean = 0.4 + sum(e / 2 * math.prod(coded[f] for f in term) for term, e in truth.items())
        levels = {column: False for column in FACTOR_COLUMNS} | {f: coded[f] > 0 for f in factors}
        rows += [{**levels, "bbox_mAP": mean + rng.normal(0, SIGMA)} for _ in range(replicates)]
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_the_replicates_95_percent_intervals_cover_the_true_effects_95_percent_of_the_time() -> None:
    """400 simulated 2^3 designs with three replicates (the seeds = [0, 1, 2] of a sweep): 2,800 intervals of
    the seven effects. Expected coverage 0.95; the tolerance, ±0.02, is about 5 binomial standard errors of
    2,800 independent intervals (0.004), wider because a design's intervals share its error estimate. Measured
    with this seed: 0.945."""
    rng = np.random.default_rng(20261202)
    factors = (QK, KEY, DCN)
    truth = {**TRUE_EFFECTS, (QK, KEY, DCN): 0.0}
    covered, total = 0, 0
    for _ in range(400):
        analysis = analyse(simulated(rng, factors, TRUE_EFFECTS, 3), "bbox_mAP")
        assert analysis.method == "replicates" and analysis.residual_df == 16
        for row in analysis.effects.itertuples():
            term = tuple(row.term.split(":"))
            covered += row.low <= 100 * truth[term] <= row.high  # box AP effects are in AP points
            total += 1
    assert total == 2800
    assert 0.93 <= covered / total <= 0.97, covered / total


def test_lenths_method_flags_the_planted_effects_and_the_null_ones_at_about_its_nominal_rate() -> None:
    """400 simulated unreplicated 2^4 designs (15 effects) with two planted effects of 8 standard errors of an
    effect (sd of an effect: 2 SIGMA / sqrt(16)) and 13 null ones. Lenth's margin of error, t(0.975; m/3)
    PSE, is known to be conservative: the exact 5% critical value of |effect| / PSE for m = 15 is 2.16 (Ye
    & Hamada 2000; 2.16 again over 20,000 simulated null designs here) against t(0.975; 5) = 2.57. Under
    pure noise it flags 3.0% of null effects at m = 15 and 3.8% at m = 31 (4,000 designs each), fewer
    beside planted effects, which inflate the PSE. Measured with this seed: planted effects flagged 100% of
    the time, null ones 2.4%, and 1.75% of the designs have a null effect beyond SME. The test allows 1-5%
    null flags (at most the nominal rate, not far below it) and at most 5% of designs with one beyond SME."""
    rng = np.random.default_rng(1989)
    factors = BITS
    effect_sd = 2 * SIGMA / 4
    planted = {(QK,): 8 * effect_sd, (KEY, POS): -8 * effect_sd}
    found_planted, found_null, null_total, designs_with_a_null_sme = 0, 0, 0, 0
    for _ in range(400):
        analysis = analyse(simulated(rng, factors, planted, 1), "bbox_mAP")
        assert analysis.method == "lenth"
        sme_null = False
        for row in analysis.effects.itertuples():
            if tuple(row.term.split(":")) in planted:
                found_planted += bool(row.resolved)
            else:
                found_null += bool(row.resolved)
                null_total += 1
                sme_null |= bool(row.simultaneous)
        designs_with_a_null_sme += sme_null
    assert found_planted / 800 >= 0.97, found_planted / 800
    assert 0.01 <= found_null / null_total <= 0.05, found_null / null_total
    assert designs_with_a_null_sme / 400 <= 0.05, designs_with_a_null_sme / 400


def test_effects_are_in_the_display_unit() -> None:
    """Box AP is stored as a fraction and analysed in AP points: the effects, their intervals, Lenth's PSE
    and margins and the method's sentence read 100x the fractions; FLOPs read in GFLOPs. (The filtration
    rates over 200 keep every fraction within box AP's valid range, [0, 1]: the effects read half of them.)"""
    fractions = design(BITS, {k: [v / 200 for v in ys] for k, ys in FILTRATION.items()}, "bbox_mAP")
    points, raw = analyse(fractions, "box AP"), analyse(design(BITS, FILTRATION), "fps")
    assert list(points.effects["effect"]) == pytest.approx([e / 2 for e in raw.effects["effect"]])
    assert points.lenth is not None and raw.lenth is not None
    assert points.lenth.pse == pytest.approx(raw.lenth.pse / 2)
    assert points.lenth.me == pytest.approx(raw.lenth.me / 2)
    assert f"PSE {raw.lenth.pse / 2:.3g} AP points" in points.description
    flops = design(BITS, {k: [v * 1e9 for v in ys] for k, ys in FILTRATION.items()}, "flops")
    assert list(analyse(flops, "GFLOPs").effects["effect"]) == pytest.approx(list(raw.effects["effect"]))
