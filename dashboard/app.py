"""The ablation dashboard: accuracy-efficiency trade-offs, factor effects, runs, live status, downloads.

Started by ``ablation dashboard [--store DIR] [--root DIR] [--port N]``, which runs
``streamlit run dashboard/app.py`` with ABLATION_STORE and ABLATION_ROOT set. The figures and numbers come
from ``ablation.analysis.figures``, ``ablation.analysis.numbers`` and ``ablation.analysis.effects`` (the
factorial analysis); this file only lays them out.
``?page=effects`` (or trade-offs, runs, status, downloads) opens a page directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from ablation.analysis import effects, figures
from ablation.analysis import numbers as analysis
from ablation.results.export import FORMATS, TableOptions, render, results_table
from ablation.results.latest import latest_runs
from ablation.results.records import SOURCES
from ablation.results.store import Store

PAGES = {
    "trade-offs": "Trade-offs",
    "effects": "Factor effects",
    "runs": "Runs",
    "status": "Status",
    "downloads": "Downloads",
}
STORE = Path(os.environ.get("ABLATION_STORE") or Path(os.environ.get("ABLATION_ROOT") or "runs") / "store")
ROOT = Path(os.environ.get("ABLATION_ROOT") or "runs")


@st.cache_data(show_spinner="reading the store", max_entries=4)
def load(path: str, signature: tuple[int, int, int]) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The store's runs; ``signature`` (Store.signature) is part of the cache key, so a new or changed run
    file makes the next rerun read the store again."""
    read = Store(Path(path)).read()
    return read.frame(), read.problems


def main() -> None:
    st.set_page_config(page_title="ablation", layout="wide")
    store = Store(STORE)
    frame, problems = load(str(STORE), store.signature())
    for problem in problems:
        st.warning(problem)

    wanted = st.query_params.get("page", "trade-offs")
    with st.sidebar:
        st.title("ablation")
        keys = list(PAGES)
        page = st.radio(
            "page",
            keys,
            index=keys.index(wanted) if wanted in keys else 0,
            format_func=PAGES.__getitem__,
            key="page",
        )
        st.caption(f"store: `{STORE}` ({len(frame)} runs)")
        chosen = filters(frame)

    if page == "status":
        status_page()
        return
    if frame.empty:
        st.info(
            f"The store at `{STORE}` holds no run yet. Fill it with `ablation run --sweep smoke` (runs the "
            "smoke sweep and harvests it), or `ablation harvest` for runs that already finished."
        )
        return
    {"trade-offs": tradeoffs_page, "effects": effects_page, "runs": runs_page, "downloads": downloads_page}[
        page
    ](chosen)


def filters(frame: pd.DataFrame) -> pd.DataFrame:
    """The sidebar's filters: which sweeps and sources every page shows."""
    sweeps = sorted(str(s) for s in frame["sweep"].dropna().unique()) if not frame.empty else []
    present = [s for s in SOURCES if not frame.empty and (frame["source"] == s).any()]
    # No widget keys: when the store gains a sweep or source, the widget is a new one and starts with all
    # chosen, so new runs show up instead of being filtered out by a choice made before they existed.
    picked_sweeps = st.multiselect("sweeps", sweeps, default=sweeps)
    picked_sources = st.multiselect("sources", present, default=present)
    if frame.empty:
        return frame
    return frame[frame["sweep"].isin(picked_sweeps) & frame["source"].isin(picked_sources)]


# --- trade-offs ------------------------------------------------------------------------------------------


def tradeoffs_page(frame: pd.DataFrame) -> None:
    st.header("Accuracy against efficiency")
    runs = latest_runs(frame)
    points = analysis.replicate_means(runs)
    replicated = bool((points["n"] > 1).any())
    which = (
        f"{len(points)} cells from {len(runs)} runs (the latest finished run of each seed of each cell of "
        "each sweep and source): a cell run with several seeds is one point at the mean of its runs, with "
        "bars of the 95% confidence interval of that mean"
        if replicated
        else f"{len(points)} cells (the latest finished run of each cell of each sweep and source)"
    )
    st.caption(
        f"{which}. Colour: DCN; circles: own runs, diamonds: imported logs, open stars: the published model "
        "zoo. Dashed: the Pareto frontier. Select a point to open its run."
    )
    tabs = st.tabs(["AP vs fps", "AP vs memory", "AP vs FLOPs"])
    with tabs[0]:
        tradeoff_chart(points, "fps")
    with tabs[1]:
        kinds = [k for k in figures.MEMORY_TITLES if (runs["memory_kind"] == k).any()]
        if not kinds:
            st.info("No run has a memory figure.")
        for kind in kinds:  # never one axis for a CUDA peak and a CPU RSS
            st.subheader(figures.MEMORY_TITLES[kind])
            tradeoff_chart(analysis.replicate_means(runs[runs["memory_kind"] == kind]), "memory_gb", kind)
    with tabs[2]:
        tradeoff_chart(points, "flops")
    selected = st.session_state.get("selected_run")
    if selected:
        st.subheader("Selected run")
        show_run(frame, tuple(selected))


def tradeoff_chart(points: pd.DataFrame, x: str, memory_kind: str | None = None) -> None:
    front = analysis.pareto_front(points, x, higher_x_is_better=figures.AXES[x][1])
    figure = figures.tradeoff_figure(points, x, front, memory_kind)
    event = st.plotly_chart(
        figure,
        width="stretch",
        on_select="rerun",
        selection_mode="points",
        key=f"chart-{x}-{memory_kind}",
    )
    chosen = [list(c) for p in (event.selection.points if event else []) if (c := p.get("customdata"))]
    if chosen:
        st.session_state["selected_run"] = chosen[0]


# --- factor effects --------------------------------------------------------------------------------------


def effects_page(frame: pd.DataFrame) -> None:
    st.header("Factor effects")
    groups = sorted({(str(a), str(b)) for a, b in frame[["sweep", "source"]].itertuples(index=False)})
    group = st.selectbox(
        "sweep and source (a factorial analysis needs one design)",
        groups,
        format_func=lambda g: f"{g[0]} ({g[1]})",
        key="effects-group",
    )
    rows = latest_runs(frame[(frame["sweep"] == group[0]) & (frame["source"] == group[1])])
    cells = analysis.cell_means(rows, ())
    present = len(cells[["code", "dcn"]].dropna().drop_duplicates())
    st.caption(
        f"{len(rows)} runs (the latest finished run of each seed of each cell) in {len(cells)} cells, "
        f"covering {present} of the 32 combinations of the 2^4 attention factors x DCN grid. An effect "
        "is the mean with the factor at its high level minus the mean at its low level; its bar spans "
        "its 95% interval. Green: resolved from noise and better, red: resolved and worse (for the "
        "metric, whatever the sign), "
        "grey hatched: not resolved from noise."
    )
    kinds = [k for k in figures.MEMORY_TITLES if (rows["memory_kind"] == k).any()]
    kind = kinds[0] if len(kinds) == 1 else None
    if len(kinds) > 1:
        kind = st.radio(
            "memory kind", kinds, format_func=figures.MEMORY_TITLES.__getitem__, key="effects-kind"
        )
    memory_rows = rows if kind is None else rows[(rows["memory_kind"] == kind) | rows["memory_kind"].isna()]
    metrics = {
        "bbox_mAP": rows,
        "fps": rows,
        **({"memory_gb": memory_rows} if kind else {}),
        "flops": rows,
    }
    names = {m: figures.METRIC_UNITS[m][0] for m in metrics}
    if kind:
        names["memory_gb"] = f"{figures.MEMORY_TITLES[kind]} memory"
    tabs = st.tabs(list(names.values()))
    for tab, (metric, chosen) in zip(tabs, metrics.items(), strict=True):
        with tab:
            effects_section(effects.analyse(chosen, metric), names[metric])
    if not kind:
        st.caption("No run of this design has a memory figure: no memory effects.")
    st.subheader("Box AP of every cell")
    st.plotly_chart(figures.ap_heatmap(analysis.ap_grid(rows)), width="stretch", key="effects-ap-grid")


def effects_section(result: effects.FactorialAnalysis, name: str) -> None:
    """One metric's factorial analysis: its method, the design behind it, its main effects, two-factor
    interactions and half-normal plot, and in an expander the tables."""
    _, unit, scale = figures.METRIC_UNITS[result.metric]
    lo, hi = result.runs_per_cell
    per_cell = f"{lo}" if lo == hi else f"{lo} to {hi}"
    blocks = f"; blocks: {', '.join(result.blocks)}" if result.blocks else ""
    design = f"{result.runs} runs in {result.cells} cells, n per cell {per_cell}{blocks}."
    if result.method == "none":
        st.warning(f"No interval: {result.reason.rstrip('.')}. {design}")
    else:
        st.caption(f"**{result.method}**: {result.description} {design}")
    if result.aliased:
        pairs = "; ".join(f"{left} with {right}" for left, right in result.aliased.items())
        st.info(
            f"Aliased in these runs (their factors move together, e.g. codes 0000 and 1111 only): {pairs}. "
            "An aliased pair's effects cannot be told apart: the effect shown is theirs together."
        )
    key = f"effects-{result.metric}"
    left, right = st.columns(2)
    with left:
        st.plotly_chart(figures.effects_figure(result, name, unit, scale), width="stretch", key=f"{key}-main")
    with right:
        st.plotly_chart(
            figures.interactions_figure(result, name, unit, scale), width="stretch", key=f"{key}-pairs"
        )
    st.plotly_chart(figures.half_normal_figure(result, name, unit, scale), width="stretch", key=f"{key}-half")
    with st.expander(
        f"the numbers: effects on {name}" + (" and the ANOVA" if result.anova is not None else "")
    ):
        table = effects_table(result, unit, scale)
        number = st.column_config.NumberColumn(format="%.3g")
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_config={c: number for c in table.columns if c not in ("term", "order", "resolved")},
        )
        if result.anova is not None:
            st.markdown("ANOVA (statsmodels' `anova_lm`, type 2 sums of squares in the store's unit)")
            st.dataframe(result.anova, width="stretch")
        if result.lenth is not None:
            found = result.lenth
            st.markdown(
                f"Lenth's method over m = {found.m} effects: PSE {found.pse * scale:.4g} {unit}, margin of "
                f"error ME {found.me * scale:.4g} {unit} (t with {found.df:.3g} df), simultaneous margin SME "
                f"{found.sme * scale:.4g} {unit}."
            )


def effects_table(result: effects.FactorialAnalysis, unit: str, scale: float) -> pd.DataFrame:
    """The analysis's effects for people: in ``unit``, the interval as low and high, whether it is resolved
    from noise, and whether simultaneously where Lenth's method gives that."""
    table = result.effects
    shown = pd.DataFrame(
        {
            "term": table["label"],
            "order": table["order"],
            f"effect ({unit})": table["effect"] * scale,
            "low": table["low"] * scale,
            "high": table["high"] * scale,
            "se": table["se"] * scale,
            "df": table["df"],
            "p": table["p"],
            "resolved": table["resolved"],
        }
    )
    if result.lenth is not None:
        shown["simultaneous"] = table["simultaneous"]
    # what the method does not give (Lenth: no p; no error: no interval) gets no column
    return shown.dropna(axis=1, how="all") if len(shown) else shown


# --- runs ------------------------------------------------------------------------------------------------

_RUN_COLUMNS = {
    "sweep": "sweep",
    "source": "source",
    "status": "status",
    "cell": "cell",
    "code": "code",
    "dcn": "DCN",
    "bbox_mAP": "box AP",
    "fps": "fps",
    "memory_gb": "memory (GB)",
    "memory_kind": "memory kind",
    "flops": "GFLOPs",
    "attention_impl": "attention impl.",
    "epochs": "epochs",
    "finished": "finished",
    "run_id": "run",
}


def runs_page(frame: pd.DataFrame) -> None:
    st.header("Runs")
    left, middle, right = st.columns(3)
    statuses = left.multiselect("status", ["done", "failed", "running"], key="runs-status")
    codes = middle.multiselect(
        "code", sorted(str(c) for c in frame["code"].dropna().unique()), key="runs-code"
    )
    dcn = right.radio("DCN", ["both", "off", "on"], horizontal=True, key="runs-dcn")
    rows = frame
    if statuses:
        rows = rows[rows["status"].isin(statuses)]
    if codes:
        rows = rows[rows["code"].isin(codes)]
    if dcn != "both":
        rows = rows[rows["dcn"].fillna(False) == (dcn == "on")]
    table = with_replicate_columns(rows[list(_RUN_COLUMNS)].rename(columns=_RUN_COLUMNS), rows)
    table["box AP"] = table["box AP"] * 100
    table["GFLOPs"] = table["GFLOPs"] / 1e9
    st.caption(f"{len(table)} runs; click a column to sort, a row to open it.")
    event = st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="runs-table",
        column_config={
            "box AP": st.column_config.NumberColumn(format="%.1f"),
            "fps": st.column_config.NumberColumn(format="%.1f"),
            "memory (GB)": st.column_config.NumberColumn(format="%.2f"),
            "GFLOPs": st.column_config.NumberColumn(format="%.1f"),
            "finished": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )
    picked = event.selection.rows if event else []
    if picked:
        row = rows.iloc[picked[0]]
        st.session_state["selected_run"] = [str(row[c]) for c in figures.KEY_COLUMNS]
    selected = st.session_state.get("selected_run")
    if selected:
        show_run(frame, tuple(selected))


def with_replicate_columns(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``table`` (a row per run of ``runs``) with the runs' axis and seed columns after its "cell" column."""
    if "cell" not in table.columns:  # no run at all
        return table
    extra = analysis.replicate_columns(runs, taken=[str(c) for c in table.columns])
    after = table.columns.get_loc("cell") + 1
    return pd.concat([table.iloc[:, :after], extra, table.iloc[:, after:]], axis=1)


def show_run(frame: pd.DataFrame, key: tuple[str, ...]) -> None:
    """One run: its figures, its training curves, and for a failure its error and log tail."""
    match = frame
    for column, value in zip(figures.KEY_COLUMNS, key, strict=True):
        match = match[match[column].astype(str) == value]
    if match.empty:
        st.info("That run is not in the current selection.")
        return
    run: dict[str, Any] = match.iloc[0].to_dict()
    st.markdown(
        f"**{run['cell']}** · {analysis.describe_code(_clean(run['code']), _clean(run['dcn']))} · "
        f"sweep `{run['sweep']}` · source {run['source']} · status **{run['status']}**"
    )
    shown = {k: v for k, v in run.items() if _clean(v) is not None and k not in ("log_tail",)}
    with st.expander("every column"):
        st.json({k: str(v) for k, v in shown.items()})
    if run["status"] == "failed":
        st.error(run.get("error") or "failed")
        if _clean(run.get("log_tail")):
            st.code(str(run["log_tail"]), language="text")
    work_dir = analysis.work_dir_of(_clean(run.get("origin")))
    if work_dir is None:
        return
    try:
        train, val = analysis.training_curves(work_dir)
    except Exception as error:  # a corrupt log must not take the page down
        st.warning(f"training curves unavailable: {error}")
        return
    if train.empty and val.empty:
        st.caption(f"no training curves in {work_dir}")
        return
    st.plotly_chart(figures.curves_figure(train, val), width="stretch")


def _clean(value: Any) -> Any:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


# --- status ----------------------------------------------------------------------------------------------


def status_page() -> None:
    from ablation.cli.report import progress
    from ablation.run.launch import STATES, recorded_status

    st.header("Live sweeps")
    folders = sorted(p.parent for p in ROOT.glob("*/manifest.json"))
    if not folders:
        st.info(f"No sweep has been launched under `{ROOT}` (`ablation launch --sweep NAME`).")
        return
    for folder in folders:
        try:
            cells = recorded_status(folder)
        except Exception as error:  # one unreadable manifest must not hide the others
            st.warning(f"{folder}: {error}")
            continue
        counts = {state: sum(1 for c in cells if c.state == state) for state in STATES}
        finished = counts["done"] + counts["failed"] + counts["lost"]
        st.subheader(folder.name)
        st.progress(finished / max(1, len(cells)), text=", ".join(f"{n} {s}" for s, n in counts.items() if n))
        table = pd.DataFrame(
            [
                {
                    "cell": c.submission.cell,
                    "state": c.state,
                    "progress": progress(Path(c.submission.work_dir)) if c.state == "running" else "",
                    "attempt": c.submission.attempt,
                    "executor": c.submission.executor,
                    "job": c.submission.job_id,
                    "submitted": c.submission.submitted,
                    "box AP": None if c.result is None or c.result.ap is None else 100 * c.result.ap,
                    "problem": c.problem or "",
                }
                for c in cells
            ]
        )
        # a cell's seed and axes, as its result file (written when its job starts) says them
        settings = pd.DataFrame(
            [
                {"seed": None, **({} if c.result is None else {"seed": c.result.seed, **c.result.axes})}
                for c in cells
            ],
            dtype=object,  # an integer axis stays integers beside the cells without a result
        )
        st.dataframe(with_replicate_columns(table, settings), hide_index=True, width="stretch")


# --- downloads -------------------------------------------------------------------------------------------


def downloads_page(frame: pd.DataFrame) -> None:
    st.header("Downloads")
    left, middle, right = st.columns(3)
    breakdown = left.checkbox("AP50/75/s/m/l", key="dl-breakdown")
    complexity = middle.checkbox("GFLOPs and parameters", key="dl-complexity")
    timing = middle.checkbox("seconds of training, test, fps and FLOPs", key="dl-timing")
    codes = sorted(str(c) for c in frame["code"].dropna().unique())
    baseline = right.selectbox("Δ box AP against", ["none", *codes], key="dl-baseline")
    options = TableOptions(
        breakdown=breakdown,
        complexity=complexity,
        timing=timing,
        baseline=None if baseline == "none" else baseline,
    )
    table = results_table(frame, options)
    st.caption(
        f"{len(table.rows)} rows, as `ablation export` writes them ({table.left_out} runs not shown: not "
        "finished, or an older run of a shown cell)."
    )
    columns = st.columns(len(FORMATS))
    suffix = {"markdown": ("md", "text/markdown"), "csv": ("csv", "text/csv"), "latex": ("tex", "text/x-tex")}
    for column, fmt in zip(columns, FORMATS, strict=True):
        extension, mime = suffix[fmt]
        column.download_button(
            f"{fmt}",
            render(table, fmt),
            file_name=f"ablation-results.{extension}",
            mime=mime,
            key=f"dl-{fmt}",
        )
    st.markdown(render(table, "markdown"))


main()
