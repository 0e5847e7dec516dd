"""The metrics stage: one metric over every layer of one store, in long form.

Each job reads only what its metric needs (token vectors, pooled vectors, or
the pooled vectors of augmented views), one layer at a time, and returns a
frame with one row per (variant, layer):

    model, source, metric, variant, layer, depth, value, n, per_prompt

``value`` is the layer's number (for per-prompt metrics, the mean over the
prompts where every variant is defined), ``n`` how many samples (texts or
prompts) it rests on, and ``per_prompt`` the
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


def _rows(layer: int, depth: float, variants: dict, n: int) -> list[dict]:
    return [
        {
            "variant": variant,
            "layer": layer,
            "depth": depth,
            "value": float(value),
            "n": int(n),
            "per_prompt": None,
        }
        for variant, value in variants.items()
    ]


def _per_prompt_rows(layer: int, depth: float, variants: dict) -> list[dict]:
    """Every variant's layer value is its mean over the same prompts.

    Those are the prompts where every variant is defined: a one-token prompt
    has a raw entropy of 0 but no ``log_n`` (log 1 = 0), and averaging each
    variant over its own prompts would make them incomparable.
    """
    per_prompt = {k: np.asarray(v, dtype=np.float64) for k, v in variants.items()}
    kept = np.logical_and.reduce([np.isfinite(v) for v in per_prompt.values()])
    return [
        {
            "variant": variant,
            "layer": layer,
            "depth": depth,
            "value": float(values[kept].mean()) if kept.any() else np.nan,
            "n": int(kept.sum()),
            "per_prompt": values.tolist(),
        }
        for variant, values in per_prompt.items()
    ]


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
        return m.entropy_variants(values, np.diff(offsets), store.dim)
    return {"radians": m.curvature(tokens, offsets).values}


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
    wanted = spec["views"] if metric == "lidar" else 2
    if wanted > n_views:
        raise ValueError(f"{metric} asks for {wanted} views, the store has {n_views}")
    order = np.lexsort((views_of, prompts))
    views = store.pooled(layer, spec["pooling"])[order].reshape(n_prompts, n_views, -1)
    # The metric's own views only: the centring mean must not depend on how
    # many views another metric asked the store for.
    views = m.preprocess(
        views[:, :wanted], center=spec["center"], normalize=spec["normalize"]
    )

    if metric == "infonce":
        loss = m.infonce(views[:, 0], views[:, 1], temperature=spec["temperature"])
        # log N is the loss of views that say nothing about each other.
        return {"raw": loss, "log_n": loss / np.log(n_prompts)}, n_prompts
    if metric == "dime":
        value = m.dime(
            views[:, 0],
            views[:, 1],
            alpha=spec["alpha"],
            n_permutations=spec["permutations"],
            seed=spec["seed"],
        )
        return m.entropy_variants(value, n_prompts, store.dim), n_prompts
    value = m.lidar(views, alpha=spec["alpha"], delta=spec["delta"])
    # "raw" is the effective-rank form; the normalisations apply to its log,
    # the entropy form ("entropy").
    entropy = m.entropy_variants(np.log(value), n_prompts, store.dim)
    entropy["entropy"] = entropy.pop("raw")
    return {"raw": value, **entropy}, n_prompts


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
        depth = store.depth(layer)
        if metric in TOKEN_METRICS:
            variants = _token_metric(metric, store, spec, layer)
            rows += _per_prompt_rows(layer, depth, variants)
            continue
        if metric in POOLED_METRICS:
            variants, n = _pooled_metric(metric, store, spec, layer)
        else:
            variants, n = _view_metric(metric, store, spec, layer, layout)
        rows += _rows(layer, depth, variants, n)

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
