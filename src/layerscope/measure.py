"""The metrics stage: one metric over every layer of one store, in long form.

Each job reads only what its metric needs (token vectors, pooled vectors, or
the pooled vectors of augmented views), one layer at a time, and returns a
frame with one row per (variant, layer):

    model, source, metric, variant, layer, depth, value, n, per_prompt

``value`` is the layer's number (the mean over prompts for per-prompt
metrics), ``n`` how many samples it rests on, and ``per_prompt`` the
per-prompt values of prompt entropy and curvature (their distribution is
bimodal in some layers), else null.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from layerscope import metrics as m
from layerscope.files import atomic_path
from layerscope.store import ActivationStore

log = logging.getLogger(__name__)

TOKEN_METRICS = ("prompt_entropy", "curvature")
POOLED_METRICS = ("dataset_entropy", "effective_rank")
VIEW_METRICS = ("infonce", "lidar", "dime")
METRICS = TOKEN_METRICS + POOLED_METRICS + VIEW_METRICS
COLUMNS = [
    "model",
    "source",
    "metric",
    "variant",
    "layer",
    "depth",
    "value",
    "n",
    "per_prompt",
]


def _rows(layer: int, depth: float, variants: dict, n, per_prompt: bool) -> list[dict]:
    rows = []
    for variant, value in variants.items():
        values = np.atleast_1d(np.asarray(value, dtype=np.float64))
        rows.append(
            {
                "variant": variant,
                "layer": layer,
                "depth": depth,
                "value": float(np.nanmean(values)) if per_prompt else float(value),
                "n": int(n),
                "per_prompt": values.tolist() if per_prompt else None,
            }
        )
    return rows


def _token_metric(metric: str, store: ActivationStore, spec: dict, layer: int):
    offsets = store.offsets
    tokens = m.preprocess(
        store.layer_tokens(layer),
        center=spec["center"],
        normalize=spec["normalize"],
        offsets=offsets,
    )
    if metric == "prompt_entropy":
        values = m.prompt_entropy(tokens, offsets, alpha=spec["alpha"])
        return m.entropy_variants(values, np.diff(offsets), store.dim), len(values)
    result = m.curvature(tokens, offsets)
    return {"radians": result.values}, len(result.values) - result.n_skipped


def _pooled_metric(metric: str, store: ActivationStore, spec: dict, layer: int):
    pooled = m.preprocess(
        store.pooled(layer, spec["pooling"]),
        center=spec["center"],
        normalize=spec["normalize"],
    )
    if metric == "dataset_entropy":
        value = m.dataset_entropy(pooled, alpha=spec["alpha"])
        return m.entropy_variants(value, pooled.shape[0], store.dim), pooled.shape[0]
    return {"raw": m.effective_rank(pooled)}, pooled.shape[0]


def _view_metric(metric: str, store: ActivationStore, spec: dict, layer: int, layout):
    """layout: (prompt, view) of each store row, from the views texts file."""
    prompts, views_of = layout["prompt"].to_numpy(), layout["view"].to_numpy()
    n_prompts, n_views = len(np.unique(prompts)), len(np.unique(views_of))
    if n_prompts * n_views != len(layout):
        raise ValueError(
            f"the views layout is not a full grid: {len(layout)} rows for "
            f"{n_prompts} prompts x {n_views} views"
        )
    order = np.lexsort((views_of, prompts))
    views = store.pooled(layer, spec["pooling"])[order].reshape(n_prompts, n_views, -1)
    views = m.preprocess(views, center=spec["center"], normalize=spec["normalize"])

    if metric == "infonce":
        value = m.infonce(views[:, 0], views[:, 1], temperature=spec["temperature"])
    elif metric == "dime":
        value = m.dime(
            views[:, 0],
            views[:, 1],
            alpha=spec["alpha"],
            n_permutations=spec["permutations"],
            seed=spec["seed"],
        )
    else:
        if spec["views"] > n_views:
            raise ValueError(
                f"lidar asks for {spec['views']} views, the store has {n_views}"
            )
        value = m.lidar(
            views[:, : spec["views"]], alpha=spec["alpha"], delta=spec["delta"]
        )
    return {"raw": value}, n_prompts


def measure(
    metric: str,
    store: ActivationStore,
    spec: dict,
    *,
    model: str,
    source: str,
    layout: pd.DataFrame | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Compute ``metric`` at every layer of ``store``.

    Parameters
    ----------
    metric : one of METRICS
    store : the (model, source) store; for view metrics, the store of the views
    spec : the metric's settings from the config (alpha, pooling, ...)
    layout : for view metrics, the ``prompt`` and ``view`` of each store row
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric in TOKEN_METRICS and not store.has_tokens:
        raise ValueError(
            f"{metric} needs token vectors: set tokens: true on source {source!r}"
        )
    if metric in VIEW_METRICS and layout is None:
        raise ValueError(f"{metric} needs the layout of the augmented views")

    started = time.perf_counter()
    rows = []
    for layer in tqdm(range(store.n_layers), desc=metric, disable=not progress):
        if metric in TOKEN_METRICS:
            variants, n = _token_metric(metric, store, spec, layer)
        elif metric in POOLED_METRICS:
            variants, n = _pooled_metric(metric, store, spec, layer)
        else:
            variants, n = _view_metric(metric, store, spec, layer, layout)
        per_prompt = metric in TOKEN_METRICS
        rows += _rows(layer, store.depth(layer), variants, n, per_prompt)

    frame = pd.DataFrame(rows).assign(model=model, source=source, metric=metric)
    log.info(
        "%s of %s/%s: %d layers in %.1f s",
        metric,
        model,
        source,
        store.n_layers,
        time.perf_counter() - started,
    )
    return frame[COLUMNS]


def write_metric(frame: pd.DataFrame, path) -> None:
    """Write a metric frame atomically (a temporary file, then a rename)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
