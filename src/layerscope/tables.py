"""Tables of the per-layer results: what the figures and the report read.

Every function is pure over long-form frames. Two kinds come in:

- metric frames (``results/metrics/{model}/{source}/{metric}.parquet``):
  ``model, source, metric, variant, layer, depth, value, n, per_prompt``;
- probing frames (``results/probing/{model}/{task}.parquet``):
  ``model, task, layer, depth, main_score`` and further score columns.

Scores stay mteb's main scores in [0, 1] throughout; the paper prints them
as 0-100 (its Pythia-410M best layer averages 52.0 against 45.5 for the last
layer, i.e. 0.520 and 0.455 here). The columns of every table and the metric
directions are described in docs/figures.md.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from layerscope.files import atomic_path

log = logging.getLogger(__name__)

__all__ = [
    "AVERAGE",
    "DIRECTIONS",
    "average_scores",
    "best_layers",
    "correlations",
    "layer_choice",
    "metrics_table",
    "per_prompt_table",
    "read_metrics",
    "read_probing",
    "write_csv",
]

METRIC_KEYS = ["model", "source", "metric", "variant"]
METRIC_COLUMNS = [*METRIC_KEYS, "layer", "depth", "value", "n", "per_prompt"]
PROBING_COLUMNS = ["model", "task", "layer", "depth", "main_score"]

# The task name of the rows that summarise all of a model's tasks.
AVERAGE = "average"

# Which end of each metric layer_choice picks, without labels. "min": lower is
# taken as the better representation, "max": higher is.
DIRECTIONS = {
    "prompt_entropy": "min",  # more compressed tokens within a prompt
    "curvature": "min",  # a straighter token trajectory
    "infonce": "min",  # a loss: views of one text closer = more invariant
    "dataset_entropy": "max",  # texts spread over more directions
    "effective_rank": "max",  # more directions in use
    "lidar": "max",  # prompts told apart better than their views
    "dime": "max",  # views share more information
}

# Fewer aligned layers than this give no correlation (NaN): with two points
# every Spearman correlation is +-1.
MIN_LAYERS = 3


# --------------------------------------------------------------------------
# Reading


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    return [Path(path) for path in paths]


def _read(paths, required: list[str], what: str) -> pd.DataFrame:
    paths = _as_paths(paths)
    if not paths:
        raise ValueError(f"no {what} files given")

    frames = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{what} file {path} does not exist")
        if path.stat().st_size == 0:
            raise ValueError(f"{what} file {path} is empty (0 bytes)")
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{what} file {path} is not readable parquet: {error}"
            ) from error
        if frame.empty:
            raise ValueError(f"{what} file {path} has no rows")
        missing = [column for column in required if column not in frame.columns]
        if missing:
            raise ValueError(f"{what} file {path} lacks the columns {missing}")
        frames.append(frame)

    frame = pd.concat(frames, ignore_index=True)
    log.info("read %d %s rows from %d files", len(frame), what, len(paths))
    return frame


def read_metrics(paths) -> pd.DataFrame:
    """Concatenate metric parquet files.

    Parameters
    ----------
    paths : path or iterable of paths
        ``results/metrics/{model}/{source}/{metric}.parquet`` files.

    Returns
    -------
    pandas.DataFrame
        Their rows, in the order given: ``model, source, metric, variant,
        layer, depth, value, n, per_prompt``.

    Raises
    ------
    FileNotFoundError
        A path does not exist (the message names it).
    ValueError
        A file is empty, not parquet, has no rows or lacks a column, or two
        rows share (model, source, metric, variant, layer).
    """
    frame = _read(paths, METRIC_COLUMNS, "metrics")
    _check_unique(frame, [*METRIC_KEYS, "layer"], "metrics")
    return frame


def read_probing(paths) -> pd.DataFrame:
    """Concatenate probing parquet files.

    Parameters
    ----------
    paths : path or iterable of paths
        ``results/probing/{model}/{task}.parquet`` files.

    Returns
    -------
    pandas.DataFrame
        Their rows: ``model, task, layer, depth, main_score`` and every other
        column the files hold (``score.*`` columns a task does not report are
        NaN in the other tasks' rows).

    Raises
    ------
    FileNotFoundError
        A path does not exist (the message names it).
    ValueError
        As :func:`read_metrics`, for (model, task, layer).
    """
    frame = _read(paths, PROBING_COLUMNS, "probing")
    _check_unique(frame, ["model", "task", "layer"], "probing")
    return frame


def _check_unique(frame: pd.DataFrame, keys: list[str], what: str) -> None:
    repeated = frame.duplicated(keys, keep=False)
    if repeated.any():
        first = frame.loc[repeated, keys].iloc[0].to_dict()
        raise ValueError(
            f"{what}: {int(repeated.sum())} rows share their {keys}, e.g. {first}; "
            "was a file read twice?"
        )


# --------------------------------------------------------------------------
# Metric tables


def metrics_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The metric rows without their per-prompt values, sorted.

    Returns
    -------
    pandas.DataFrame
        ``model, source, metric, variant, layer, depth, value, n``, one row per
        (model, source, metric, variant, layer).
    """
    table = frame.drop(columns="per_prompt", errors="ignore")
    return table.sort_values([*METRIC_KEYS, "layer"], kind="stable").reset_index(
        drop=True
    )


def _has_values(cell) -> bool:
    return isinstance(cell, list | tuple | np.ndarray)


def per_prompt_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-prompt values in long form, one row per (layer, prompt).

    Parameters
    ----------
    frame : pandas.DataFrame
        Metric rows; those whose ``per_prompt`` is null are left out.

    Returns
    -------
    pandas.DataFrame
        ``model, source, metric, variant, layer, depth, prompt, value``, where
        ``prompt`` is the index of the prompt in its source (0, 1, ...). A
        prompt the metric skipped (curvature of a prompt under three tokens)
        keeps its row with a NaN value, so prompts line up across layers.
    """
    columns = [*METRIC_KEYS, "layer", "depth", "prompt", "value"]
    rows = frame[frame["per_prompt"].map(_has_values)]
    if rows.empty:
        return pd.DataFrame({column: [] for column in columns})

    lengths = rows["per_prompt"].map(len).to_numpy()
    repeat = np.repeat(np.arange(len(rows)), lengths)
    table = rows[[*METRIC_KEYS, "layer", "depth"]].iloc[repeat]
    table["prompt"] = np.concatenate([np.arange(length) for length in lengths])
    table["value"] = np.concatenate(
        [np.asarray(values, dtype=np.float64) for values in rows["per_prompt"]]
    )
    return table.reset_index(drop=True)[columns]


# --------------------------------------------------------------------------
# Probing tables


def _pick(curve: pd.Series, direction: str) -> tuple[int | None, float]:
    """(layer, value) at the max or min of ``curve`` (indexed by layer).

    NaN is skipped; ties go to the lowest layer; an all-NaN curve gives
    (None, NaN).
    """
    curve = curve.dropna().sort_index()
    if curve.empty:
        return None, math.nan
    layer = curve.idxmax() if direction == "max" else curve.idxmin()
    return int(layer), float(curve.loc[layer])


def _check_tasks(probing: pd.DataFrame) -> None:
    if (probing["task"] == AVERAGE).any():
        raise ValueError(f"a task is named {AVERAGE!r}, which the tables reserve")


def average_scores(probing: pd.DataFrame) -> pd.DataFrame:
    """Each model's main score averaged over its tasks, per layer.

    Parameters
    ----------
    probing : pandas.DataFrame
        Probing rows (``model, task, layer, depth, main_score``).

    Returns
    -------
    pandas.DataFrame
        ``model, layer, depth, main_score, n_tasks``, one row per (model,
        layer), models in the order they first appear.

    Notes
    -----
    A layer that lacks a score for one of the model's tasks (not probed, or
    a NaN score) gets a NaN average, with a warning in the log, rather than
    a mean over fewer tasks, which would not be comparable with the other
    layers.
    """
    _check_unique(probing, ["model", "task", "layer"], "probing")
    frames = []
    for model, group in probing.groupby("model", sort=False):
        wide = group.pivot(index="layer", columns="task", values="main_score")
        wide = wide.sort_index()
        complete = wide.notna().all(axis=1)
        if not complete.all():
            log.warning(
                "%s: layers %s lack a score for some task; their average is NaN",
                model,
                wide.index[~complete].tolist(),
            )
        frames.append(
            pd.DataFrame(
                {
                    "model": model,
                    "layer": wide.index.astype(int),
                    "depth": group.groupby("layer")["depth"].first().loc[wide.index],
                    "main_score": wide.mean(axis=1).where(complete),
                    "n_tasks": wide.shape[1],
                }
            ).reset_index(drop=True)
        )
    columns = ["model", "layer", "depth", "main_score", "n_tasks"]
    if not frames:
        return pd.DataFrame({column: [] for column in columns})
    return pd.concat(frames, ignore_index=True)[columns]


def _best_row(curve: pd.DataFrame, model: str, task: str, n_tasks: int) -> dict:
    """curve: ``layer, depth, main_score`` of one model and task (or average)."""
    scores = curve.set_index("layer")["main_score"]
    depths = curve.set_index("layer")["depth"]
    best_layer, best_score = _pick(scores, "max")
    last_layer = int(scores.index.max())
    last_score = float(scores.loc[last_layer])
    return {
        "model": model,
        "task": task,
        "n_tasks": n_tasks,
        "n_layers": len(scores),
        "best_layer": best_layer,
        "best_depth": math.nan if best_layer is None else float(depths[best_layer]),
        "best_score": best_score,
        "last_layer": last_layer,
        "last_depth": float(depths[last_layer]),
        "last_score": last_score,
        "gain": best_score - last_score,
    }


def best_layers(probing: pd.DataFrame) -> pd.DataFrame:
    """The best layer of each (model, task) against the last layer.

    Parameters
    ----------
    probing : pandas.DataFrame
        Probing rows (``model, task, layer, depth, main_score``).

    Returns
    -------
    pandas.DataFrame
        One row per (model, task), then one per model with task
        ``"average"`` (the main score averaged over the model's tasks at each
        layer, see :func:`average_scores`):

        - ``n_tasks``: 1, or the number of tasks averaged;
        - ``n_layers``: layers probed;
        - ``best_layer``, ``best_depth``, ``best_score``: the argmax of the
          main score (NaN skipped; ties go to the lowest layer);
        - ``last_layer``, ``last_depth``, ``last_score``: the highest layer
          probed;
        - ``gain``: ``best_score - last_score`` (>= 0).

        Scores are in [0, 1] (the paper's 0-100 divided by 100).
    """
    _check_tasks(probing)
    _check_unique(probing, ["model", "task", "layer"], "probing")
    averages = dict(iter(average_scores(probing).groupby("model", sort=False)))

    rows = []
    for model, group in probing.groupby("model", sort=False):
        for task, curve in group.groupby("task", sort=False):
            rows.append(_best_row(curve, model, task, n_tasks=1))
        average = averages[model]
        rows.append(_best_row(average, model, AVERAGE, int(average["n_tasks"].iloc[0])))

    table = pd.DataFrame(rows)
    table["best_layer"] = table["best_layer"].astype("Int64")
    log.info("best layers of %d models, %d rows", len(averages), len(table))
    return table


# --------------------------------------------------------------------------
# Metrics against scores


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(x) < MIN_LAYERS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def _distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    import dcor

    if len(x) < MIN_LAYERS:
        return math.nan
    with warnings.catch_warnings():
        # dcor warns when it falls back from its fast 1-D method; same number.
        warnings.simplefilter("ignore")
        return float(dcor.distance_correlation(x, y))


def correlations(metrics: pd.DataFrame, probing: pd.DataFrame) -> pd.DataFrame:
    """How well each metric curve tracks each task's score curve, over layers.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Metric rows (``model, source, metric, variant, layer, value``).
    probing : pandas.DataFrame
        Probing rows (``model, task, layer, main_score``).

    Returns
    -------
    pandas.DataFrame
        ``model, source, metric, variant, task, n_tasks, n_layers,
        distance_correlation, spearman``: one row per (model, source, metric,
        variant, task), on the layers that both curves have with finite
        values (``n_layers`` of them); then one row per (model, source,
        metric, variant) with task ``"average"``, the mean of the per-task
        correlations that are not NaN (``n_tasks`` of them, ``n_layers`` the
        fewest layers of any task).

    Notes
    -----
    - Distance correlation (``dcor.distance_correlation``) is in [0, 1] and
      blind to the sign; Spearman's rho in [-1, 1] gives it.
    - A constant curve has no rank order: its Spearman is NaN, while its
      distance correlation is 0 by definition (Szekely et al. 2007). Fewer
      than three shared layers give NaN for both.
    - The average row is the mean of per-task correlations, not the
      correlation with the average score curve.
    """
    _check_tasks(probing)
    _check_unique(metrics, [*METRIC_KEYS, "layer"], "metrics")
    _check_unique(probing, ["model", "task", "layer"], "probing")
    scores = {
        model: {
            task: curve.set_index("layer")["main_score"]
            for task, curve in group.groupby("task", sort=False)
        }
        for model, group in probing.groupby("model", sort=False)
    }

    rows = []
    for keys, curve in metrics.groupby(METRIC_KEYS, sort=False):
        key = dict(zip(METRIC_KEYS, keys))
        if key["model"] not in scores:
            log.warning("no probing results for model %s", key["model"])
            continue
        values = curve.set_index("layer")["value"]
        task_rows = []
        for task, score in scores[key["model"]].items():
            pairs = pd.concat([values, score], axis=1, join="inner").dropna()
            x, y = pairs.to_numpy(dtype=np.float64).T
            task_rows.append(
                {
                    **key,
                    "task": task,
                    "n_tasks": 1,
                    "n_layers": len(pairs),
                    "distance_correlation": _distance_correlation(x, y),
                    "spearman": _spearman(x, y),
                }
            )
        per_task = pd.DataFrame(task_rows)
        rows += task_rows
        rows.append(
            {
                **key,
                "task": AVERAGE,
                "n_tasks": int(per_task["distance_correlation"].notna().sum()),
                "n_layers": int(per_task["n_layers"].min()),
                "distance_correlation": per_task["distance_correlation"].mean(),
                "spearman": per_task["spearman"].mean(),
            }
        )

    columns = [
        *METRIC_KEYS,
        "task",
        "n_tasks",
        "n_layers",
        "distance_correlation",
        "spearman",
    ]
    log.info("correlations: %d rows", len(rows))
    return pd.DataFrame(rows, columns=columns)


def layer_choice(
    metrics: pd.DataFrame,
    probing: pd.DataFrame,
    directions: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The layer each metric would pick without labels, and what it scores.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Metric rows (``model, source, metric, variant, layer, depth, value``).
    probing : pandas.DataFrame
        Probing rows (``model, task, layer, depth, main_score``).
    directions : dict of str -> {"min", "max"}, optional
        Overrides or additions to :data:`DIRECTIONS`.

    Returns
    -------
    pandas.DataFrame
        One row per (model, source, metric, variant):

        - ``direction``: ``"min"`` or ``"max"``;
        - ``chosen_layer``, ``chosen_depth``, ``chosen_value``: the layer at
          the metric's min or max over all its layers (NaN skipped, ties to
          the lowest layer) and the metric there;
        - ``chosen_score``: the main score averaged over the model's tasks
          at that layer (NaN if it was not probed);
        - ``best_layer``, ``best_score``: the argmax of that average;
        - ``last_layer``, ``last_score``: the highest layer probed;
        - ``regret``: ``best_score - chosen_score`` (>= 0; 0 = the metric
          found the best layer);
        - ``gain_over_last``: ``chosen_score - last_score`` (> 0 = the
          metric's layer beats the last one).

    Raises
    ------
    ValueError
        A metric has no direction, or a direction is neither "min" nor "max".
    """
    directions = {**DIRECTIONS, **(directions or {})}
    bad = {
        key: value for key, value in directions.items() if value not in {"min", "max"}
    }
    if bad:
        raise ValueError(f"directions must be 'min' or 'max', got {bad}")
    unknown = sorted(set(metrics["metric"]) - set(directions))
    if unknown:
        raise ValueError(
            f"no direction for metrics {unknown}: pass directions={{name: 'min' or "
            f"'max'}} (known: {sorted(directions)})"
        )
    _check_tasks(probing)
    _check_unique(metrics, [*METRIC_KEYS, "layer"], "metrics")
    averages = {
        model: curve.set_index("layer")["main_score"]
        for model, curve in average_scores(probing).groupby("model", sort=False)
    }

    rows = []
    for keys, curve in metrics.groupby(METRIC_KEYS, sort=False):
        key = dict(zip(METRIC_KEYS, keys))
        average = averages.get(key["model"])
        if average is None:
            log.warning("no probing results for model %s", key["model"])
            continue
        direction = directions[key["metric"]]
        curve = curve.set_index("layer")
        chosen_layer, chosen_value = _pick(curve["value"], direction)
        chosen_score = float(average.get(chosen_layer, math.nan))
        if chosen_layer is not None and chosen_layer not in average.index:
            log.warning("%s: chosen layer %d was not probed", keys, chosen_layer)
        best_layer, best_score = _pick(average, "max")
        last_layer = int(average.index.max())
        last_score = float(average.loc[last_layer])
        rows.append(
            {
                **key,
                "direction": direction,
                "chosen_layer": chosen_layer,
                "chosen_depth": (
                    math.nan
                    if chosen_layer is None
                    else float(curve.loc[chosen_layer, "depth"])
                ),
                "chosen_value": chosen_value,
                "chosen_score": chosen_score,
                "best_layer": best_layer,
                "best_score": best_score,
                "last_layer": last_layer,
                "last_score": last_score,
                "regret": best_score - chosen_score,
                "gain_over_last": chosen_score - last_score,
            }
        )

    table = pd.DataFrame(rows)
    if not table.empty:
        for column in ("chosen_layer", "best_layer"):
            table[column] = table[column].astype("Int64")
    log.info("layer choice: %d metric curves", len(table))
    return table


# --------------------------------------------------------------------------
# Writing


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV atomically (a temporary file, then a rename).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    path = Path(path)
    log.info("wrote %d rows to %s", len(frame), path)
    return path
