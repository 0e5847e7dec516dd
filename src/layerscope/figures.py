"""Figures of the per-layer results, drawn from long-form frames.

Each function draws one figure from metric or probing frames (see
:mod:`layerscope.tables`) and saves it as ``{out}.png`` (150 dpi) and
``{out}.pdf``. Figures are built with matplotlib's object API on the Agg
canvas: nothing goes through pyplot, so no state is shared between calls or
with a caller's own pyplot figures.

Multi-model figures take ``models``, the models to draw, in order. A model's
colour is its position in that list (:func:`model_colors`): the same in every
figure, and unchanged when a model is appended. What each figure shows and
what to look for in it is in docs/figures.md.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from layerscope import tables

log = logging.getLogger(__name__)

__all__ = [
    "FigureFiles",
    "model_colors",
    "plot_best_vs_last",
    "plot_correlations",
    "plot_metrics_vs_depth",
    "plot_prompt_entropy_hist",
    "plot_score_vs_depth",
    "plot_task_heatmap",
]

DPI = 150

METRIC_ORDER = (
    "prompt_entropy",
    "dataset_entropy",
    "effective_rank",
    "curvature",
    "infonce",
    "lidar",
    "dime",
)
METRIC_NAMES = {
    "prompt_entropy": "Prompt entropy",
    "dataset_entropy": "Dataset entropy",
    "effective_rank": "Effective rank",
    "curvature": "Curvature",
    "infonce": "InfoNCE loss",
    "lidar": "LiDAR",
    "dime": "DiME",
}
# What the direction layer_choice uses (tables.DIRECTIONS) means, per metric.
METRIC_DIRECTIONS = {
    "prompt_entropy": "lower = more compressed",
    "dataset_entropy": "higher = more diverse",
    "effective_rank": "higher = more directions",
    "curvature": "lower = straighter",
    "infonce": "lower = more invariant",
    "lidar": "higher = more invariant",
    "dime": "higher = more invariant",
}
# The variant drawn per metric when none is asked for: entropies divided by
# their largest possible value log min(N, D), so models of different width
# and prompts of different length share a [0, 1] scale; the rest as computed.
PLOT_VARIANTS = {
    "prompt_entropy": "max_entropy",
    "dataset_entropy": "max_entropy",
    "curvature": "radians",
}
_RAW_UNITS = {
    "prompt_entropy": "entropy (nats)",
    "dataset_entropy": "entropy (nats)",
    "effective_rank": "effective rank (dimensions)",
    "infonce": "loss (nats)",
    "lidar": "effective rank (dimensions)",
    "dime": "entropy difference (nats)",
}
_VARIANT_UNITS = {
    "max_entropy": "entropy / log min(N, D)",
    "log_n": "entropy / log N",
    "log_d": "entropy / log D",
    "radians": "mean turning angle (radians)",
}

_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 3.5,
    "legend.frameon": False,
    "pdf.fonttype": 42,
}


class FigureFiles(list):
    """The files a figure function wrote (PNG, then PDF), and the figure.

    A list of :class:`pathlib.Path`; ``figure`` is the
    :class:`matplotlib.figure.Figure` they show, to inspect its artists
    (legend labels, line colours) without comparing images.
    """

    def __init__(self, paths: Sequence[Path], figure: Figure):
        super().__init__(paths)
        self.figure = figure


def model_colors(models: Sequence[str]) -> dict[str, tuple]:
    """A colour per model, fixed by its position in ``models``.

    Parameters
    ----------
    models : sequence of str
        Model names in the order of the config.

    Returns
    -------
    dict of str -> RGB tuple
        tab10's colours in order, then tab20's lighter shades; beyond 20
        models colours repeat (with a warning). Appending a model leaves the
        colours of the others as they were.

    Raises
    ------
    ValueError
        A model is named twice.
    """
    if len(set(models)) != len(models):
        raise ValueError(f"models has repeated names: {list(models)}")
    palette = list(matplotlib.colormaps["tab10"].colors)
    palette += list(matplotlib.colormaps["tab20"].colors[1::2])
    if len(models) > len(palette):
        log.warning("%d models share %d colours", len(models), len(palette))
    return {model: palette[i % len(palette)] for i, model in enumerate(models)}


def _styled(function):
    """Draw inside the module's rc settings (restored afterwards)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_RC):
            return function(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


@contextlib.contextmanager
def _quiet(name: str):
    """Raise logger ``name`` to WARNING for a while.

    fontTools logs every font it subsets for a PDF at INFO, which would fill
    a job's log.
    """
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _save(figure: Figure, out: str | os.PathLike, what: str) -> FigureFiles:
    """Save ``{out}.png`` and ``{out}.pdf``, each atomically."""
    stem = Path(out)
    if stem.suffix in {".png", ".pdf"}:
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)

    paths = []
    for fmt, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        path = stem.with_name(f"{stem.name}.{fmt}")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with _quiet("fontTools"):
                figure.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        paths.append(path)
    log.info("wrote %s to %s.{png,pdf}", what, stem)
    return FigureFiles(paths, figure)


def _models_in(frame: pd.DataFrame, models: Sequence[str], what: str) -> list[str]:
    """The models of ``models`` that ``frame`` has, in order."""
    present = set(frame["model"])
    missing = [model for model in models if model not in present]
    if missing:
        log.warning("%s: no rows for models %s", what, missing)
    extra = sorted(present - set(models))
    if extra:
        log.info("%s: models %s are not in models, left out", what, extra)
    shown = [model for model in models if model in present]
    if not shown:
        raise ValueError(
            f"{what}: none of the models {list(models)} has rows "
            f"(the frame has {sorted(present)})"
        )
    return shown


def _model_handles(models: Sequence[str], colors: dict) -> list[Line2D]:
    return [
        Line2D([], [], color=colors[model], marker="o", label=model) for model in models
    ]


def _ordered(metrics: Sequence[str]) -> list[str]:
    known = [metric for metric in METRIC_ORDER if metric in set(metrics)]
    return known + sorted(set(metrics) - set(METRIC_ORDER))


def _variant(rows: pd.DataFrame, metric: str, variants: dict) -> str:
    """The variant to draw for ``metric`` among those ``rows`` have."""
    have = list(dict.fromkeys(rows["variant"]))
    wanted = variants.get(metric, "raw")
    if wanted in have:
        return wanted
    fallback = "raw" if "raw" in have else have[0]
    log.warning("%s has no variant %r; drawing %r", metric, wanted, fallback)
    return fallback


def _unit(metric: str, variant: str) -> str:
    if metric == "infonce" and variant == "log_n":
        return "loss / log N (1 = chance)"
    if variant == "entropy":
        return "entropy (nats)"
    if variant in _VARIANT_UNITS:
        return _VARIANT_UNITS[variant]
    return _RAW_UNITS.get(metric, "value")


def _metric_title(metric: str) -> str:
    name = METRIC_NAMES.get(metric, metric)
    direction = METRIC_DIRECTIONS.get(metric)
    return f"{name}\n({direction})" if direction else name


# --------------------------------------------------------------------------
# Metrics


@_styled
def plot_metrics_vs_depth(
    metrics: pd.DataFrame,
    out: str | os.PathLike,
    models: Sequence[str],
    source: str,
    variants: dict[str, str] | None = None,
) -> FigureFiles:
    """Each metric against relative depth, one panel a metric, one line a model.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Metric rows (``model, source, metric, variant, layer, depth, value``).
    out : path
        Path stem: ``{out}.png`` and ``{out}.pdf`` are written.
    models : sequence of str
        Models to draw, in order; fixes their colours.
    source : str
        The corpus whose metrics are drawn.
    variants : dict of str -> str, optional
        Variant per metric, over :data:`PLOT_VARIANTS` (``max_entropy`` for
        the entropies, ``radians`` for curvature, else ``raw``).

    Returns
    -------
    FigureFiles
        The PNG and PDF paths, with the figure.
    """
    colors = model_colors(models)
    variants = {**PLOT_VARIANTS, **(variants or {})}
    frame = metrics[metrics["source"] == source]
    if frame.empty:
        raise ValueError(
            f"no metric rows for source {source!r}; the frame has "
            f"{sorted(set(metrics['source']))}"
        )
    shown = _models_in(frame, models, f"metrics of {source}")
    names = _ordered(frame["metric"].unique())

    n_cols = min(4, len(names))
    n_rows = math.ceil(len(names) / n_cols)
    figure = _figure(3.1 * n_cols, 2.7 * n_rows + 0.4)
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, metric in zip(axes, names):
        rows = frame[frame["metric"] == metric]
        variant = _variant(rows, metric, variants)
        rows = rows[rows["variant"] == variant]
        for model in shown:
            curve = rows[rows["model"] == model].sort_values("layer")
            ax.plot(
                curve["depth"],
                curve["value"],
                color=colors[model],
                marker="o",
                label=model,
            )
        ax.set_title(_metric_title(metric))
        ax.set_ylabel(_unit(metric, variant))
        ax.set_xlabel("relative depth (layer / last)")
        ax.set_xlim(-0.03, 1.03)

    handles = _model_handles(shown, colors)
    spare = axes[len(names) :]
    for ax in spare:
        ax.set_axis_off()
    if len(spare):
        spare[0].legend(handles=handles, loc="center", title="model", fontsize=9)
    else:
        figure.legend(
            handles=handles, loc="outside lower center", ncols=min(len(shown), 6)
        )
    figure.suptitle(f"Representation metrics by depth on {source}", fontsize=11)
    return _save(figure, out, "metrics vs depth")


@_styled
def plot_prompt_entropy_hist(
    metrics: pd.DataFrame,
    out: str | os.PathLike,
    model: str,
    source: str,
    metric: str = "prompt_entropy",
    variant: str | None = None,
    bins: int = 40,
) -> FigureFiles:
    """The distribution of per-prompt values at each layer, as a heatmap.

    Each column is one layer's histogram of the per-prompt values (the
    fraction of prompts in each bin, so a column sums to 1); a bimodal layer
    shows two bright patches in its column. The white line is the mean over
    prompts, the metric's ``value``.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Metric rows with ``per_prompt`` values.
    out : path
        Path stem of the PNG and PDF.
    model, source : str
        Whose prompts.
    metric : str, default "prompt_entropy"
        Any metric with per-prompt values (``curvature`` too).
    variant : str, optional
        Default :data:`PLOT_VARIANTS` (``max_entropy`` for prompt entropy).
    bins : int, default 40
        Bins over the range of the values.

    Returns
    -------
    FigureFiles
    """
    variant = variant or PLOT_VARIANTS.get(metric, "raw")
    rows = metrics[
        (metrics["model"] == model)
        & (metrics["source"] == source)
        & (metrics["metric"] == metric)
        & (metrics["variant"] == variant)
    ]
    values = tables.per_prompt_table(rows).dropna(subset=["value"])
    if values.empty:
        raise ValueError(
            f"no per-prompt values of {metric} ({variant}) for {model} on {source}"
        )

    layers = np.arange(values["layer"].min(), values["layer"].max() + 1)
    low, high = values["value"].min(), values["value"].max()
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    density = np.full((bins, len(layers)), np.nan)  # (bin, layer)
    for column, layer in enumerate(layers):
        at = values.loc[values["layer"] == layer, "value"].to_numpy()
        if len(at):
            density[:, column] = np.histogram(at, bins=edges)[0] / len(at)
    means = values.groupby("layer")["value"].mean()
    n_prompts = values.groupby("layer")["prompt"].nunique().max()

    figure = _figure(min(12.0, max(6.0, 3.0 + 0.22 * len(layers))), 4.2)
    ax = figure.add_subplot()
    ax.grid(False)
    image = ax.imshow(
        density,
        origin="lower",
        aspect="auto",
        cmap="magma",
        interpolation="nearest",
        extent=(layers[0] - 0.5, layers[-1] + 0.5, low, high),
    )
    ax.plot(
        means.index,
        means.to_numpy(),
        color="white",
        marker="o",
        markersize=3,
        linewidth=1.2,
        label="mean over prompts",
    )
    ax.legend(loc="upper right", labelcolor="white", fontsize=8)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel(_unit(metric, variant))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    colorbar = figure.colorbar(image, ax=ax, pad=0.01)
    colorbar.set_label("fraction of prompts in bin")
    ax.set_title(
        f"{METRIC_NAMES.get(metric, metric)} per prompt: {model} on {source} "
        f"({n_prompts} prompts)"
    )
    return _save(figure, out, f"{metric} distribution of {model}")


# --------------------------------------------------------------------------
# Scores


def _spread(
    positions: Sequence[float], gap: float, low: float = -np.inf, high: float = np.inf
) -> np.ndarray:
    """Move label positions apart so that neighbours are at least ``gap`` apart.

    The group keeps its mean, then shifts as a whole to stay within
    [low, high] where it fits.
    """
    positions = np.asarray(positions, dtype=np.float64)
    order = np.argsort(positions)
    placed = positions[order].copy()
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + gap)
    placed -= (placed - positions[order]).mean()
    placed += max(0.0, low - placed[0]) - max(0.0, placed[-1] - high)
    result = np.empty_like(placed)
    result[order] = placed
    return result


@_styled
def plot_score_vs_depth(
    probing: pd.DataFrame, out: str | os.PathLike, models: Sequence[str]
) -> FigureFiles:
    """The main score averaged over tasks against relative depth, a line a model.

    The paper's first figure. A filled dot marks each model's best layer; its
    label (layer and score) sits in a band above the curves, joined to the
    dot by a thin line. A hollow square marks the last layer, labelled at the
    right edge.

    Parameters
    ----------
    probing : pandas.DataFrame
        Probing rows (``model, task, layer, depth, main_score``).
    out : path
        Path stem of the PNG and PDF.
    models : sequence of str
        Models to draw, in order; fixes their colours.

    Returns
    -------
    FigureFiles
    """
    colors = model_colors(models)
    average = tables.average_scores(probing)
    shown = _models_in(average, models, "score vs depth")
    summary = tables.best_layers(probing)
    summary = summary[summary["task"] == tables.AVERAGE].set_index("model")

    figure = _figure(7.0, 4.8)
    ax = figure.add_subplot()
    for model in shown:
        curve = average[average["model"] == model].sort_values("layer")
        color = colors[model]
        ax.plot(curve["depth"], curve["main_score"], color=color, marker="o")
        row = summary.loc[model]
        ax.plot(
            row["best_depth"],
            row["best_score"],
            "o",
            ms=8,
            mfc=color,
            mec="black",
            zorder=4,
        )
        ax.plot(
            row["last_depth"],
            row["last_score"],
            "s",
            ms=7,
            mfc="white",
            mec=color,
            mew=1.6,
            zorder=4,
        )
    low, high = ax.get_ylim()
    span = high - low

    # best-layer labels in a band above the curves, six to a tier
    best = summary.loc[shown].dropna(subset=["best_score"]).sort_values("best_depth")
    tiers = max(1, math.ceil(len(best) / 6))
    for tier in range(tiers):
        rows = best.iloc[tier::tiers]
        xs = _spread(rows["best_depth"], gap=0.15, low=0.05, high=0.95)
        y = high + span * (0.06 + 0.08 * tier)
        for (model, row), x in zip(rows.iterrows(), xs):
            ax.annotate(
                f"L{row['best_layer']}: {row['best_score']:.3f}",
                (row["best_depth"], row["best_score"]),
                xytext=(x, y),
                ha="center",
                va="bottom",
                color=colors[model],
                fontsize=8,
                fontweight="bold",
                arrowprops={
                    "arrowstyle": "-",
                    "color": colors[model],
                    "lw": 0.7,
                    "shrinkA": 1,
                    "shrinkB": 5,
                },
            )
    ax.set_ylim(low, high + span * (0.12 + 0.08 * tiers))

    # last-layer labels at the right edge
    last = summary.loc[shown].dropna(subset=["last_score"])
    heights = _spread(last["last_score"], gap=0.045 * span)
    for (model, row), y in zip(last.iterrows(), heights):
        ax.annotate(
            f"L{row['last_layer']}: {row['last_score']:.3f}",
            (1.0, row["last_score"]),
            xytext=(1.01, y),
            textcoords=ax.get_yaxis_transform(),
            va="center",
            color=colors[model],
            fontsize=8,
        )

    handles = _model_handles(shown, colors) + [
        Line2D(
            [], [], ls="", marker="o", ms=8, mfc="0.6", mec="black", label="best layer"
        ),
        Line2D(
            [], [], ls="", marker="s", ms=7, mfc="white", mec="0.3", label="last layer"
        ),
    ]
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 6)
    )
    n_tasks = average.loc[average["model"].isin(shown), "n_tasks"].unique()
    tasks = f"{n_tasks[0]} tasks" if len(n_tasks) == 1 else "each model's tasks"
    ax.set_title(f"MTEB main score by depth, averaged over {tasks}")
    ax.set_xlabel("relative depth (layer / last)")
    ax.set_ylabel("average main score (0-1)")
    ax.set_xlim(-0.03, 1.03)
    return _save(figure, out, "score vs depth")


def _cell_text_color(value: float, norm: Normalize, cmap) -> str:
    red, green, blue, _ = cmap(norm(value))
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"


@_styled
def plot_task_heatmap(
    probing: pd.DataFrame, out: str | os.PathLike, model: str
) -> FigureFiles:
    """Task x layer heatmap of one model's main score, with a colour bar.

    Rows are tasks (in input order) and, below a white rule, their average;
    a white dot marks each row's best layer. Values are written in the cells
    when there are at most 16 layers.

    Parameters
    ----------
    probing : pandas.DataFrame
        Probing rows (``model, task, layer, depth, main_score``).
    out : path
        Path stem of the PNG and PDF.
    model : str
        The model drawn.

    Returns
    -------
    FigureFiles
    """
    rows = probing[probing["model"] == model]
    if rows.empty:
        raise ValueError(f"no probing rows for model {model!r}")
    average = tables.average_scores(rows).set_index("layer")["main_score"]
    wide = rows.pivot(index="task", columns="layer", values="main_score")
    wide = wide.loc[list(dict.fromkeys(rows["task"]))]
    wide.loc[tables.AVERAGE] = average.reindex(wide.columns)
    scores = wide.to_numpy(dtype=np.float64)  # (task + average, layer)
    n_rows, n_layers = scores.shape

    figure = _figure(min(14.0, max(6.0, 3.2 + 0.32 * n_layers)), 1.6 + 0.34 * n_rows)
    ax = figure.add_subplot()
    ax.grid(False)
    cmap = matplotlib.colormaps["viridis"]
    norm = Normalize(np.nanmin(scores), np.nanmax(scores))
    image = ax.imshow(
        scores, aspect="auto", cmap=cmap, norm=norm, interpolation="nearest"
    )
    ax.axhline(n_rows - 1.5, color="white", linewidth=3)

    for row in range(n_rows):
        if np.isnan(scores[row]).all():
            continue
        ax.plot(np.nanargmax(scores[row]), row, "o", ms=5, mfc="white", mec="black")
    if n_layers <= 16:
        for row, column in zip(*np.nonzero(np.isfinite(scores))):
            value = scores[row, column]
            ax.text(
                column,
                row + 0.28,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=6.5,
                color=_cell_text_color(value, norm, cmap),
            )

    ax.set_yticks(range(n_rows), wide.index)
    step = max(1, math.ceil(n_layers / 16))
    ax.set_xticks(range(0, n_layers, step), wide.columns[::step])
    ax.set_xlabel("layer (0 = embeddings)")
    colorbar = figure.colorbar(image, ax=ax, pad=0.01)
    colorbar.set_label("main score")
    ax.set_title(f"MTEB main score per task and layer: {model} (dot = best layer)")
    return _save(figure, out, f"task heatmap of {model}")


@_styled
def plot_best_vs_last(
    probing: pd.DataFrame, out: str | os.PathLike, models: Sequence[str]
) -> FigureFiles:
    """Per task, the best layer's score against the last layer's.

    Left: a scatter of best against last score, a dot per (model, task) and
    a star per model for the task average, with the diagonal (a point on it:
    the last layer is the best). Right: the gain (best - last) per task, a
    dot per model, tasks sorted by their mean gain.

    Parameters
    ----------
    probing : pandas.DataFrame
        Probing rows (``model, task, layer, depth, main_score``).
    out : path
        Path stem of the PNG and PDF.
    models : sequence of str
        Models to draw, in order; fixes their colours.

    Returns
    -------
    FigureFiles
    """
    colors = model_colors(models)
    table = tables.best_layers(probing)
    shown = _models_in(table, models, "best vs last")
    table = table[table["model"].isin(shown)]
    per_task = table[table["task"] != tables.AVERAGE]
    average = table[table["task"] == tables.AVERAGE]
    task_order = per_task.groupby("task")["gain"].mean().sort_values().index.tolist()
    labels = [tables.AVERAGE, *task_order]  # bottom to top

    row_height = 0.3 * max(1.0, len(shown) / 3)  # a task row holds a dot a model
    figure = _figure(11.0, max(4.2, 1.6 + row_height * len(labels)))
    scatter, gains = figure.subplots(1, 2, width_ratios=(1, 1.25))
    for model in shown:
        color = colors[model]
        mine = per_task[per_task["model"] == model]
        scatter.scatter(
            mine["last_score"], mine["best_score"], color=color, s=22, alpha=0.85
        )
        theirs = average[average["model"] == model]
        scatter.scatter(
            theirs["last_score"],
            theirs["best_score"],
            color=color,
            marker="*",
            s=180,
            edgecolor="black",
            linewidth=0.7,
            zorder=3,
        )

    scores = table[["last_score", "best_score"]].to_numpy(dtype=np.float64)
    low, high = np.nanmin(scores), np.nanmax(scores)
    pad = 0.05 * (high - low or 1.0)
    limits = (low - pad, high + pad)
    scatter.plot(limits, limits, ls="--", color="0.5", lw=1, label="best = last")
    scatter.set_xlim(limits)
    scatter.set_ylim(limits)
    scatter.set_aspect("equal")
    scatter.set_xlabel("last layer's main score")
    scatter.set_ylabel("best layer's main score")
    scatter.set_title("Best layer against last layer")

    # the first model on top within each task, as in the legend
    offsets = np.linspace(0.25, -0.25, len(shown)) if len(shown) > 1 else [0.0]
    position = {label: i for i, label in enumerate(labels)}
    for model, offset in zip(shown, offsets):
        mine = table[table["model"] == model]
        y = mine["task"].map(position).to_numpy() + offset
        gains.hlines(y, 0, mine["gain"], color=colors[model], lw=1, alpha=0.6)
        gains.scatter(mine["gain"], y, color=colors[model], s=22, zorder=3)
    gains.axhline(0.5, color="0.3", lw=0.8)
    gains.axvline(0, color="0.3", lw=0.8)
    gains.set_yticks(range(len(labels)), labels)
    gains.set_ylim(-0.6, len(labels) - 0.4)
    gains.grid(axis="y", visible=False)
    gains.set_xlabel("gain of the best layer over the last (main score)")
    gains.set_title("Gain per task (average at the bottom)")

    handles = _model_handles(shown, colors) + [
        Line2D(
            [],
            [],
            ls="",
            marker="*",
            ms=12,
            mfc="0.6",
            mec="black",
            label="average over tasks",
        ),
        Line2D([], [], ls="--", color="0.5", label="best = last"),
    ]
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 7)
    )
    return _save(figure, out, "best vs last")


# --------------------------------------------------------------------------
# Metrics against scores


@_styled
def plot_correlations(
    correlations: pd.DataFrame,
    out: str | os.PathLike,
    models: Sequence[str],
    variants: dict[str, str] | None = None,
) -> FigureFiles:
    """Metric x model heatmap of the average distance correlation with the score.

    One panel per source. Each cell is the mean over tasks of the distance
    correlation between the metric and the main score across layers (the
    ``"average"`` rows of :func:`layerscope.tables.correlations`), written
    in the cell with the mean Spearman rho below it for the sign.

    Parameters
    ----------
    correlations : pandas.DataFrame
        The frame :func:`layerscope.tables.correlations` returns.
    out : path
        Path stem of the PNG and PDF.
    models : sequence of str
        Models (columns), in order; the column labels take their colours.
    variants : dict of str -> str, optional
        Variant per metric, over :data:`PLOT_VARIANTS`.

    Returns
    -------
    FigureFiles
    """
    colors = model_colors(models)
    variants = {**PLOT_VARIANTS, **(variants or {})}
    frame = correlations[correlations["task"] == tables.AVERAGE]
    shown = _models_in(frame, models, "correlations")
    frame = frame[frame["model"].isin(shown)]
    sources = list(dict.fromkeys(frame["source"]))
    names = _ordered(frame["metric"].unique())
    cmap = matplotlib.colormaps["Blues"]
    norm = Normalize(0, 1)

    figure = _figure(
        len(sources) * (2.0 + 1.0 * len(shown)) + 1.0, 1.6 + 0.5 * len(names)
    )
    axes = figure.subplots(1, len(sources), squeeze=False, sharey=True)[0]
    for ax, source in zip(axes, sources):
        here = frame[frame["source"] == source]
        dcor = np.full((len(names), len(shown)), np.nan)  # (metric, model)
        rho = np.full_like(dcor, np.nan)
        for i, metric in enumerate(names):
            rows = here[here["metric"] == metric]
            if rows.empty:
                continue
            rows = rows[rows["variant"] == _variant(rows, metric, variants)]
            rows = rows.set_index("model").reindex(shown)
            dcor[i] = rows["distance_correlation"].to_numpy(dtype=np.float64)
            rho[i] = rows["spearman"].to_numpy(dtype=np.float64)

        ax.grid(False)
        image = ax.imshow(dcor, cmap=cmap, norm=norm, aspect="auto")
        for i, j in zip(*np.nonzero(np.isfinite(dcor))):
            sign = "" if np.isnan(rho[i, j]) else f"\nρ {rho[i, j]:+.2f}"
            ax.text(
                j,
                i,
                f"{dcor[i, j]:.2f}{sign}",
                ha="center",
                va="center",
                fontsize=8,
                color=_cell_text_color(dcor[i, j], norm, cmap),
            )
        ax.set_xticks(
            range(len(shown)), shown, rotation=30, ha="right", rotation_mode="anchor"
        )
        for label, model in zip(ax.get_xticklabels(), shown):
            label.set_color(colors[model])
            label.set_fontweight("bold")
        ax.set_yticks(range(len(names)), [METRIC_NAMES.get(m, m) for m in names])
        ax.set_xticks(np.arange(len(shown) + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(len(names) + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=2, alpha=1)
        ax.tick_params(which="both", length=0)
        ax.spines[:].set_visible(False)
        ax.set_title(source)

    colorbar = figure.colorbar(image, ax=list(axes), pad=0.02, shrink=0.9)
    colorbar.set_label("distance correlation with main score")
    figure.suptitle(
        "Metric vs MTEB score across layers (mean over tasks; ρ = Spearman)",
        fontsize=10,
    )
    return _save(figure, out, "correlations")
