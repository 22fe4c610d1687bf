"""The ablation dashboard: accuracy-efficiency trade-offs, factor effects, runs, live curves, live status,
downloads.

Started by ``ablation dashboard [--store DIR] [--root DIR] [--port N]``, which runs
``streamlit run dashboard/app.py`` with ABLATION_STORE and ABLATION_ROOT set (the store's location rule is
``ablation.results.store.locate``). The numbers come from a ``Runs`` selection (``ablation.analysis.runs``:
the runs that count, the cells at their replicates' means, the analyses per memory kind, the trade-off
axes), the figures from ``ablation.analysis.figures`` and ``effect_charts``, the labels and units from
``ablation.vocabulary``, the status table's lines and a running cell's progress from
``ablation.run.status_table`` and ``ablation.run.eta``, a run's curves from ``ablation.results.curves``;
this file only lays them out (and builds the Live curves chart). ``?page=effects`` (or trade-offs, runs,
live, status, downloads) opens a page directly. The Live curves and Status pages show the sweeps launched
under the root; while a cell runs or waits they show it again by themselves (the logs every REFRESH_S, the
executors' states polled every POLL_S at most). A figure of the store that is not a finite number in its
valid range is read as missing on every page, and named in a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from ablation import vocabulary
from ablation.analysis import effect_charts, figures
from ablation.analysis import numbers as analysis
from ablation.analysis.effects_text import EFFECT_HEADERS, error_lines, method, sections, verdict
from ablation.analysis.runs import Analysis, Runs
from ablation.fsio import root_dir
from ablation.results.curves import SECONDS, training_curves, work_dir_of
from ablation.results.export import FORMATS, render
from ablation.results.records import SOURCES, screen_frame
from ablation.results.store import Store, locate
from ablation.results.table import TableOptions
from ablation.vocabulary import MISSING

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ablation.run.cost import Cost
    from ablation.run.launch import RecordedCell

PAGES = {
    "trade-offs": "Trade-offs",
    "effects": "Factor effects",
    "runs": "Runs",
    "live": "Live curves",
    "status": "Status",
    "downloads": "Downloads",
}
SUMMARY_OVER = 64  # a table of more rows is summarised first, the whole of it in an expander
STORE = locate()
ROOT = root_dir()
REFRESH_S = 5.0  # the Live curves page reads the cells' logs again this often while one runs
POLL_S = 20.0  # and asks the executors (sacct on Slurm) for the cells' states this often at most
_ACTIVE = ("running", "pending")  # the states of a cell whose curves are still to grow
LIVE_AT_MOST = 6  # with no cell picked, the page overlays the running cells, or this many of the others


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
    frame, dropped = screen_frame(frame)  # the store's read screens them too; a page never meets one
    for problem in (*problems, *dropped):
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
    if page == "live":
        live_page()
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
    runs = Runs(frame)
    points = runs.cells
    which = (
        f"{len(points)} cells from {len(runs)} runs (the latest finished run of each seed of each cell of "
        "each sweep and source): a cell run with several seeds is one point at the mean of its runs, with "
        "bars of the 95% confidence interval of that mean"
        if runs.replicated
        else f"{len(points)} cells (the latest finished run of each cell of each sweep and source)"
    )
    st.caption(
        f"{which}. Colour: DCN; circles: own runs, diamonds: imported logs, open stars: the published model "
        "zoo. Dashed: the Pareto frontier. Select a point to open its run."
    )
    across = runs.tradeoff_axes  # fps, memory, GFLOPs and GPU-hours (CPU-hours on a CPU grid)
    tabs = st.tabs([f"AP vs {m.name}" for m in across])
    for tab, metric in zip(tabs, across, strict=True):
        with tab:
            if "cost" in metric.roles and not _held(points, metric.column):
                st.info(
                    f"No cell has {metric.name}: the store keeps a run's compute for the cells that "
                    "`ablation launch` ran and harvested."
                )
                continue
            if metric.column != "memory_gb":
                tradeoff_chart(points, metric)
                continue
            if not runs.memory_kinds:
                st.info("No run has a memory figure.")
            for kind in runs.memory_kinds:  # never one axis for a CUDA peak and a CPU RSS
                st.subheader(vocabulary.memory_label(kind))
                tradeoff_chart(runs.where("memory_kind", kind).cells, metric, kind)
    selected = st.session_state.get("selected_run")
    if selected:
        st.subheader("Selected run")
        show_run(frame, tuple(selected))


def _held(points: pd.DataFrame, column: str) -> bool:
    return column in points and bool(pd.to_numeric(points[column], errors="coerce").notna().any())


def tradeoff_chart(points: pd.DataFrame, metric: vocabulary.Metric, memory_kind: str | None = None) -> None:
    x = metric.column
    front = analysis.pareto_front(points, x, higher_x_is_better=bool(metric.higher_is_better))
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
    runs = Runs(frame[(frame["sweep"] == group[0]) & (frame["source"] == group[1])])
    rows = runs.latest
    present = len(runs.cells[["code", "dcn"]].dropna().drop_duplicates())
    analyses = runs.analyses()
    st.caption(
        f"{len(rows)} runs (the latest finished run of each seed of each cell) in {len(runs.cells)} cells, "
        f"covering {present} of the 32 combinations of the 2^4 attention factors x DCN grid. An effect "
        "is the mean with the factor at its high level minus the mean at its low level; its bar spans "
        "its 95% interval. Green: resolved from noise and better, red: resolved and worse (for the "
        "metric, whatever the sign), grey hatched: not resolved from noise."
        + (
            " A setting (an axis set on some cells only, such as kv_stride on the cells with attention, or "
            "with more than two values) has a chart of its own: each level against its first, within the "
            "cells it is set on, and its interactions with the factors."
            if any(a.result.settings for a in analyses)
            else ""
        )
    )
    kinds = runs.memory_kinds
    if len(kinds) > 1:
        kind = st.radio("memory kind", kinds, format_func=vocabulary.memory_label, key="effects-kind")
        analyses = [a for a in analyses if a.memory_kind in (None, kind)]
    tabs = st.tabs([a.name for a in analyses])
    for tab, found in zip(tabs, analyses, strict=True):
        with tab:
            effects_section(found)
    if not kinds:
        st.caption("No run of this design has a memory figure: no memory effects.")
    st.subheader("Box AP of every cell")
    st.plotly_chart(figures.ap_heatmap(analysis.ap_grid(rows)), width="stretch", key="effects-ap-grid")


def effects_section(found: Analysis) -> None:
    """One metric's factorial analysis: first its verdict (what is resolved from noise, and what seeds would
    resolve the rest), then its method, the design behind it, its main effects, two-factor interactions and
    half-normal plot, and in an expander the numbers (those of ``ablation effects``)."""
    result, name = found.result, found.name
    said = verdict(result, name)
    if said:
        st.info(said)
    lo, hi = result.runs_per_cell
    per_cell = f"{lo}" if lo == hi else f"{lo} to {hi}"
    design = f"{result.runs} runs in {result.cells} cells, n per cell {per_cell}."
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
    key = f"effects-{result.metric}-{found.memory_kind}"
    left, right = st.columns(2)
    with left:
        st.plotly_chart(effect_charts.effects_figure(result, name), width="stretch", key=f"{key}-main")
    with right:
        st.plotly_chart(effect_charts.interactions_figure(result, name), width="stretch", key=f"{key}-pairs")
    for setting in result.settings:
        figure = effect_charts.setting_figure(result, setting, name)
        st.plotly_chart(figure, width="stretch", key=f"{key}-{setting.term}")
    if result.inseparable:
        st.info(f"Not separable from the terms before them with these runs: {', '.join(result.inseparable)}.")
    st.plotly_chart(effect_charts.half_normal_figure(result, name), width="stretch", key=f"{key}-half")
    with st.expander(
        f"the numbers: effects on {name}" + (" and the ANOVA" if result.anova is not None else "")
    ):
        st.markdown(method(result))
        headers = [f"{EFFECT_HEADERS[0]}", f"effect ({found.metric.unit})", *EFFECT_HEADERS[2:]]
        for words, rows in sections(result):
            st.markdown(f"{words}:")
            st.dataframe(pd.DataFrame(rows, columns=headers), hide_index=True, width="stretch")
        if result.anova is not None:
            st.markdown(f"ANOVA (statsmodels' `anova_lm`, type 2 sums of squares in {found.metric.unit}²)")
            st.dataframe(result.anova, width="stretch")
        for line in error_lines(result):
            st.markdown(line)


# --- runs ------------------------------------------------------------------------------------------------

_RUN_COLUMNS = {
    "sweep": "sweep",
    "source": "source",
    "status": "status",
    "cell": "cell",
    "code": "code",
    "dcn": "DCN",
}
_RUN_AFTER = {"memory_kind": "memory kind", "attention_impl": "attention impl.", "epochs": "epochs",
              "finished": "finished", "run_id": "run"}  # fmt: skip


def _runs_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A row per run: its identity, its 'status' figures in their display units (headed 'name (unit)'), then
    the memory kind and the rest; with the column formats of the figures' precision."""
    table = rows[list(_RUN_COLUMNS)].rename(columns=_RUN_COLUMNS)
    formats: dict[str, Any] = {}
    for metric in vocabulary.metrics("status"):
        header = metric.titled
        column = rows[metric.column] if metric.column in rows else pd.Series(pd.NA, index=rows.index)
        table[header] = pd.to_numeric(column, errors="coerce").astype("float64") * metric.scale
        digits = max(metric.decimals, metric.significant)
        formats[header] = st.column_config.NumberColumn(format=f"%.{digits}f")
    for column, header in _RUN_AFTER.items():
        table[header] = rows.get(column)
    formats["finished"] = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")
    return with_replicate_columns(table, rows), formats


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
    table, formats = _runs_table(rows)
    st.caption(f"{len(table)} runs; click a column to sort, a row to open it.")
    event = st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="runs-table",
        column_config=formats,
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
    work_dir = work_dir_of(_clean(run.get("origin")), (ROOT, STORE))
    if work_dir is None:
        return
    try:
        train, val = training_curves(work_dir)
    except Exception as error:  # a corrupt log must not take the page down
        st.warning(f"training curves unavailable: {error}")
        return
    if train.empty and val.empty:
        st.caption(f"no training curves in {work_dir}")
        return
    st.plotly_chart(figures.curves_figure(train, val), width="stretch")


def _clean(value: Any) -> Any:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


# --- live curves -----------------------------------------------------------------------------------------


def sweep_folders() -> list[Path]:
    """The sweeps launched under the root: the folders with a manifest; with none, says how to launch one."""
    folders = sorted(p.parent for p in ROOT.glob("*/manifest.json"))
    if not folders:
        st.info(f"No sweep has been launched under `{ROOT}` (`ablation launch --sweep NAME`).")
    return folders


def live_page() -> None:
    st.header("Live curves")
    folders = sweep_folders()
    if not folders:
        return
    folder = st.selectbox("sweep", folders, format_func=lambda p: p.name, key="live-sweep")
    active = any(c.state in _ACTIVE for c in _recorded(folder, quiet=True) or [])
    # while a cell runs or waits to, the section reads the logs again every REFRESH_S seconds, alone
    st.fragment(run_every=REFRESH_S if active else None)(live_section)(folder, active)


def _recorded(folder: Path, quiet: bool = False) -> list[RecordedCell] | None:
    """The cells of a sweep folder as last polled (``_polled``); None when its manifest cannot be read,
    said in a warning unless ``quiet``."""
    try:
        return _polled(str(folder))
    except Exception as error:  # an unreadable manifest: said, and no cells
        if not quiet:
            st.warning(f"{folder}: {error}")
        return None


@st.cache_data(ttl=POLL_S, show_spinner=False, max_entries=16)
def _polled(folder: str) -> list[RecordedCell]:
    """The cells' states, from one poll of their executors (sacct on Slurm): at most once in POLL_S
    seconds, however often the page reads the logs."""
    from ablation.run.launch import recorded_status

    return recorded_status(Path(folder))


def live_section(folder: Path, was_active: bool) -> None:
    """The picked cells' curves; once no cell runs or waits any more, the whole page again (which stops
    the refreshing)."""
    recorded = _recorded(folder) or []
    if was_active and not any(c.state in _ACTIVE for c in recorded):
        st.rerun()
    cells = [c for c in recorded if c.state in ("running", "done", "failed")]
    running = [c.submission.cell for c in cells if c.state == "running"]
    names = [c.submission.cell for c in cells]
    picked = st.multiselect(
        "cells to overlay (none picked: the running cells, else the first few)",
        names,
        key=f"live-cells-{folder.name}",
    )
    shown = picked or running or names[:LIVE_AT_MOST]
    if not shown:
        st.info(f"No cell of `{folder.name}` has started yet.")
        return
    curves = {}
    for cell in cells:
        if cell.submission.cell not in shown:
            continue
        try:
            curves[cell.submission.cell] = training_curves(Path(cell.submission.work_dir), seconds=True)
        except Exception as error:  # one corrupt log must not hide the other cells' curves
            st.warning(f"{cell.submission.cell}: training curves unavailable: {error}")
    st.plotly_chart(live_figure(curves), width="stretch", key="live-curves")
    states = {c.submission.cell: c.state for c in cells}
    st.dataframe(live_table(curves, states), hide_index=True, width="stretch")
    when = datetime.now().strftime("%H:%M:%S")
    st.caption(
        f"{len(curves)} cell{'' if len(curves) == 1 else 's'}; read at {when}"
        + (f", again every {REFRESH_S:.0f} s while a cell runs or waits" if was_active else "")
    )


def live_table(curves: dict[str, tuple[pd.DataFrame, pd.DataFrame]], states: dict[str, str]) -> pd.DataFrame:
    """A row per drawn cell: its state and its last logged iteration, loss, learning rate and seconds per
    iteration."""
    rows = []
    for cell, (train, _) in curves.items():
        last = train.iloc[-1] if not train.empty else None
        rows.append(
            {
                "cell": cell,
                "state": states[cell],
                "iteration": None if last is None else int(last["iter"]),
                "loss": None if last is None else float(last["loss"]),
                "lr": None if last is None else float(last["lr"]),
                "s/iter": None if last is None else float(last[SECONDS]),
            }
        )
    return pd.DataFrame(rows)


LIVE_PANELS = ("training loss", "learning rate", "seconds per iteration", "box AP per validation")


def live_figure(curves: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> go.Figure:
    """The cells' training loss, learning rate and seconds per iteration against the iteration, and their
    box AP per validation against the epoch: a panel each, a colour per cell (its legend entry shows or hides
    all its lines)."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    ap = vocabulary.metric("bbox_mAP")
    figure = make_subplots(rows=2, cols=2, subplot_titles=LIVE_PANELS, vertical_spacing=0.14)
    palette = qualitative.Plotly
    for number, (cell, (train, val)) in enumerate(curves.items()):
        colour = palette[number % len(palette)]
        iters = train["iter"].astype(float).tolist()
        lines: Sequence[tuple[int, int, list[float], list[float]]] = (
            (1, 1, iters, train["loss"].astype(float).tolist()),
            (1, 2, iters, train["lr"].astype(float).tolist()),
            (2, 1, iters, train[SECONDS].astype(float).tolist()),
            (2, 2, val["epoch"].astype(float).tolist(), (val["bbox_mAP"].astype(float) * ap.scale).tolist()),
        )
        for row, col, x, y in lines:
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    name=cell,
                    legendgroup=cell,
                    showlegend=(row, col) == (1, 1),
                    mode="lines+markers" if (row, col) == (2, 2) or len(x) < 30 else "lines",
                    line={"color": colour},
                    hovertemplate=f"{cell}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
                ),
                row=row,
                col=col,
            )
    for col in (1, 2):
        figure.update_xaxes(title_text="iteration", row=1, col=col)
    figure.update_xaxes(title_text="iteration", row=2, col=1)
    figure.update_xaxes(title_text="epoch", row=2, col=2)
    figure.update_yaxes(title_text="s / iteration", row=2, col=1)
    figure.update_yaxes(title_text=ap.axis_title, row=2, col=2)
    figure.update_layout(height=640, margin={"t": 40}, legend={"title": {"text": "cell"}})
    return figure


# --- status ----------------------------------------------------------------------------------------------


def status_page() -> None:
    st.header("Live sweeps")
    folders = sweep_folders()
    if not folders:
        return
    active = any(c.state in _ACTIVE for folder in folders for c in _recorded(folder, quiet=True) or [])
    # while a cell runs or waits, the sweeps are shown again as often as their states are polled
    st.fragment(run_every=POLL_S if active else None)(status_sections)(folders, active)


def status_sections(folders: list[Path], was_active: bool) -> None:
    """Each sweep's states, expected finish and compute, and its table; once no cell runs or waits any
    more, the whole page again (which stops the refreshing)."""
    from ablation.run import status_table
    from ablation.run.eta import after_training_s, parallelism, sweep_eta
    from ablation.run.launch import STATES

    polled = {folder: _recorded(folder) for folder in folders}  # one unreadable manifest hides no other
    if was_active and not any(c.state in _ACTIVE for cells in polled.values() for c in cells or []):
        st.rerun()
    for folder, cells in polled.items():
        if cells is None:
            continue
        counts = {state: sum(1 for c in cells if c.state == state) for state in STATES}
        finished = counts["done"] + counts["failed"] + counts["lost"]
        st.subheader(folder.name)
        st.progress(finished / max(1, len(cells)), text=", ".join(f"{n} {s}" for s, n in counts.items() if n))
        # the expected finish (Slurm's array parallelism is the sweep file's: here the running cells) and
        # the compute spent and still to spend
        eta = sweep_eta(cells, parallelism(cells, None))
        for line in (status_table.eta_line(eta), status_table.cost_line(eta)):
            if line:
                st.markdown(line)
        rest = after_training_s(cells)
        figures_of = status_table.headers()
        table = pd.DataFrame(
            [
                {
                    "cell": c.submission.cell,
                    "state": c.state,
                    **running_progress(c, rest),
                    "attempt": c.submission.attempt,
                    "executor": c.submission.executor,
                    "job": c.submission.job_id,
                    "submitted": c.submission.submitted,
                    **dict(zip(figures_of, status_table.figures(c.result), strict=True)),
                    **cost_figures(c.cost),
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


def running_progress(cell: RecordedCell, after_training: float | None) -> dict[str, str]:
    """A running cell's epoch and iteration, seconds per iteration and time left (``ablation.run.eta``);
    blank for the others."""
    from ablation.run import status_table
    from ablation.run.eta import cell_progress

    if cell.state != "running":
        return {"progress": "", "s/iter": "", "time left": ""}
    folder = Path(cell.submission.work_dir)
    at = cell_progress(folder, after_training)
    if at is None:
        return {"progress": status_table.progress(folder), "s/iter": MISSING, "time left": MISSING}
    return {
        "progress": at.text,
        "s/iter": MISSING if at.s_per_iter is None else f"{at.s_per_iter:.3g}",
        "time left": MISSING if at.left_s is None else status_table.duration(at.left_s),
    }


def cost_figures(cost: Cost | None) -> dict[str, str]:
    """A cell's compute so far, over all its jobs' attempts: the vocabulary's 'cost' figures (attempts,
    GPU-, CPU- and wall hours) in their display precision."""
    shown = {}
    for metric in vocabulary.metrics("cost"):
        value = None if cost is None else getattr(cost, metric.column)
        shown[metric.name] = metric.format(None if value is None else metric.display(value))
    return shown


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
        relative_to=STORE.parent,
    )
    table = Runs(frame).table(options)
    st.caption(
        f"{len(table.rows)} rows, as `ablation export` writes them ({table.left_out} runs not shown: not "
        "finished, or an older run of a shown cell)."
    )
    columns = st.columns(len(FORMATS))
    suffix = {"markdown": ("md", "text/markdown"), "csv": ("csv", "text/csv"), "latex": ("tex", "text/x-tex")}
    rendered = {fmt: render(table, fmt) for fmt in FORMATS}
    for column, fmt in zip(columns, FORMATS, strict=True):
        extension, mime = suffix[fmt]
        column.download_button(
            f"{fmt}",
            rendered[fmt],
            file_name=f"ablation-results.{extension}",
            mime=mime,
            key=f"dl-{fmt}",
        )
    if len(table.rows) > SUMMARY_OVER:  # a summary first, the whole table on request
        best = table.best_rows()
        st.markdown(
            f"The best cell (highest box AP) of each attention code and DCN setting: {len(best)} rows of "
            f"{len(table.rows)}, all of them under *all rows*."
        )
        st.markdown(render(table.only(best), "markdown"))
        with st.expander(f"all {len(table.rows)} rows"):
            st.markdown(rendered["markdown"])
        return
    st.markdown(rendered["markdown"])


main()
