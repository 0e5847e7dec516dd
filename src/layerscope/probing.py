"""Probing: every layer of a store scored as an embedding model by mteb.

A layer is probed without the model: an encoder that looks each text up in
the store's matrix for that layer is handed to mteb's own evaluator, task by
task, exactly as mteb would hand it a model. The task entry and the texts a
task embeds come from :mod:`layerscope.tasktexts` (the texts stage);
:func:`probe` evaluates one fresh task object per layer with a
:class:`StoredEncoder` over that layer's vectors and returns one row per
layer; :func:`write_probe` writes the frame, and mteb's native result JSON
goes to ``output_folder``.

The layer convention is docs/layers.md's: 0 is the embedding output, L the
last block. See docs/probing.md for the output columns and the JSON layout.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mteb.models import ModelMeta
from mteb.models.abs_encoder import AbsEncoder
from tqdm.auto import tqdm

from layerscope.files import atomic_path
from layerscope.tasktexts import (
    batch_texts,
    evaluate_task,
    layer_model_meta,
    list_columns,
    resolve_task,
    shorten,
    task_entry_name,
)

log = logging.getLogger(__name__)

# mteb.evaluate's defaults with show_progress_bar=False
ENCODE_KWARGS = {"batch_size": 32, "show_progress_bar": False}
RECORDING_DIM = 32
_NOT_SCORES = {"main_score", "hf_subset", "languages", "mteb_version"}


class MissingTextError(LookupError):
    """mteb asked for a text that the store does not hold."""


class StoredEncoder(AbsEncoder):
    """An mteb encoder that returns stored vectors instead of running a model.

    Parameters
    ----------
    vectors : (n_texts, dim) float32
        One layer of a store: row i is the vector of ``texts[i]``.
    row_of : dict
        text -> row of ``vectors``.
    meta : mteb.models.ModelMeta
        See :func:`layer_model_meta`.
    task_name : str
        Named in the error when a text is missing.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        row_of: dict[str, int],
        *,
        meta: ModelMeta,
        task_name: str,
    ):
        self.vectors = vectors
        self.row_of = row_of
        self.mteb_model_meta = meta
        self.task_name = task_name
        self.n_encoded = 0

    def encode(
        self,
        inputs,
        *,
        task_metadata,
        hf_split: str,
        hf_subset: str,
        prompt_type=None,
        **kwargs,
    ) -> np.ndarray:
        """(n_inputs, dim) float32: the stored vector of each input text.

        Raises
        ------
        MissingTextError
            If a text is not in the store; never a zero vector.
        """
        texts = batch_texts(inputs)
        rows = [self.row_of.get(text, -1) for text in texts]
        missing = [text for text, row in zip(texts, rows) if row < 0]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise MissingTextError(
                f"task {self.task_name!r} ({hf_split}/{hf_subset}) asks for a text "
                f"that is not in the store: {shorten(missing[0])!r}{more}; "
                "write the task's texts with record_task_texts (the texts stage) "
                "and dump them again"
            )
        self.n_encoded += len(rows)
        return self.vectors[np.asarray(rows, dtype=np.int64)]


class _TaskSource:
    """Fresh task objects per layer that share one loaded copy of the data.

    mteb's task objects carry state between evaluations (clustering advances
    its random generator), and creating one reseeds Python's and NumPy's
    global generators with the task seed: each layer gets a fresh object. The
    data is loaded once: what ``load_data`` adds to the first object is copied
    onto every later one, its datasets read as lists (see
    :class:`_ListColumnDataset`).
    """

    def __init__(self, task_factory: Callable[[], Any], list_columns: bool = True):
        self.task_factory = task_factory
        self.list_columns = list_columns
        self._loaded: dict[str, Any] | None = None

    def __call__(self):
        task = self.task_factory()
        if self._loaded is None:
            if task.data_loaded:
                raise ValueError(
                    "task_factory must return a task whose data is not loaded yet"
                )
            before = dict(vars(task))
            task.load_data()
            self._loaded = {
                key: value
                for key, value in vars(task).items()
                if key not in before or before[key] is not value
            }
            if self.list_columns:
                for key, value in self._loaded.items():
                    self._loaded[key] = list_columns(value)
        vars(task).update(self._loaded)
        return task


def _flatten(result) -> dict[str, float]:
    """``score.{name}``: each scalar score, averaged over splits and subsets."""
    values: dict[str, list[float]] = {}
    for entries in result.scores.values():
        for entry in entries:
            for name, value in entry.items():
                if name in _NOT_SCORES or isinstance(value, bool):
                    continue
                if isinstance(value, int | float | np.number) or value is None:
                    value = np.nan if value is None else float(value)
                    values.setdefault(name, []).append(value)
    return {f"score.{name}": float(np.mean(v)) for name, v in values.items()}


def probe(
    task_factory: Callable[[], Any],
    texts: Sequence[str],
    layer_vectors: Callable[[int], np.ndarray],
    layers: Iterable[int],
    *,
    model: str,
    task_name: str,
    last_layer: int | None = None,
    output_folder: str | os.PathLike | None = None,
    revision: str | None = None,
    threads: int | None = 1,
    list_columns: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Score every layer as an embedding model with mteb's own evaluator.

    Parameters
    ----------
    task_factory : callable
        Returns a fresh task object, data not loaded (e.g.
        ``lambda: resolve_task(entry)``); called once per layer.
    texts : sequence of str, (n_texts,)
        The store's texts: row i of every layer is ``texts[i]``.
    layer_vectors : callable
        ``layer -> (n_texts, dim)`` float32 vectors of one layer (e.g.
        ``lambda k: store.pooled(k, "mean")``): one layer in memory at a time.
    layers : iterable of int
        The layers to probe (0 = embedding output).
    model : str
        The config key of the model; mteb's name is ``layerscope/{model}``.
    task_name : str
        Written in the ``task`` column and named in errors.
    last_layer : int, optional
        L, for ``depth = layer / L``; default the largest of ``layers``.
    output_folder : path, optional
        Where mteb's native result JSON goes, one folder per layer (mteb's
        ``ResultCache`` layout, see docs/probing.md).
    revision : str, optional
        The model revision mteb's layout names (default
        ``no_revision_available``).
    threads : int or None, default 1
        BLAS threads during evaluation (None leaves them as they are). The
        evaluators fit small matrices; with more threads than free cores
        OpenBLAS spins, which made one logistic regression 40 times slower on
        a busy 2-core machine. A classification score can depend on it: mteb's
        logistic regression often stops at ``max_iter=100`` unconverged, at a
        point that depends on BLAS's order of summation. One thread makes the
        score independent of the machine's core count.
    list_columns : bool, default True
        Read the task's columns as lists (see :class:`_ListColumnDataset`);
        scores are identical either way.
    progress : bool, default True
        A tqdm bar over layers.

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``model``, ``task``, ``task_type``, ``layer``,
        ``depth``, ``main_score`` (mteb's: the mean over eval splits and
        subsets), ``main_score_name``, ``splits``, ``subsets``, ``seconds``
        (evaluation time of the layer), ``n_encoded`` (texts looked up), and
        ``score.{name}`` for every scalar score mteb reports, averaged over
        splits and subsets in the same way.
    """
    from mteb.cache import ResultCache

    layers = [int(layer) for layer in layers]
    if not layers:
        raise ValueError("layers is empty")
    last_layer = max(layers) if last_layer is None else int(last_layer)
    row_of: dict[str, int] = {}
    for row, text in enumerate(texts):
        row_of.setdefault(text, row)
    cache = ResultCache(output_folder) if output_folder is not None else None
    tasks = _TaskSource(task_factory, list_columns=list_columns)

    rows = []
    started = time.perf_counter()
    for layer in tqdm(layers, desc=f"probe {task_name}", disable=not progress):
        vectors = np.asarray(layer_vectors(layer), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(
                f"layer {layer}: expected ({len(texts)}, dim) vectors, "
                f"got shape {vectors.shape}"
            )
        meta = layer_model_meta(model, layer, dim=vectors.shape[1], revision=revision)
        encoder = StoredEncoder(vectors, row_of, meta=meta, task_name=task_name)
        task = tasks()
        result = evaluate_task(task, encoder, threads=threads)
        if cache is not None:
            cache.save_to_cache(result, meta, encode_kwargs=ENCODE_KWARGS)
        rows.append(
            {
                "model": model,
                "task": task_name,
                "task_type": task.metadata.type,
                "layer": layer,
                "depth": layer / last_layer if last_layer else 0.0,
                "main_score": float(result.get_score()),
                "main_score_name": task.metadata.main_score,
                "splits": ",".join(result.scores),
                "subsets": ",".join(sorted(set(result.hf_subsets))),
                "seconds": float(result.evaluation_time),
                "n_encoded": encoder.n_encoded,
                **_flatten(result),
            }
        )

    frame = pd.DataFrame(rows)
    best = frame.loc[frame["main_score"].idxmax()]
    log.info(
        "probed %s on %s: %d layers in %.1f s; best layer %d (%s %.4f), "
        "layer %d %.4f%s",
        task_name,
        model,
        len(frame),
        time.perf_counter() - started,
        best["layer"],
        best["main_score_name"],
        best["main_score"],
        frame["layer"].iloc[-1],
        frame["main_score"].iloc[-1],
        f"; mteb JSON in {output_folder}" if output_folder else "",
    )
    return frame


def probe_store(
    store,
    texts: Sequence[str],
    entry: dict | str,
    *,
    model: str,
    pooling: str = "mean",
    layers: Iterable[int] | None = None,
    **kwargs,
) -> pd.DataFrame:
    """:func:`probe` every layer of an open store on one task entry.

    Parameters
    ----------
    store : layerscope.store.ActivationStore
    texts : sequence of str, (n_texts,)
        The rows of the store's texts file, in order.
    entry : dict or str
        A task entry (see :func:`resolve_task`).
    model : str
        The config key of the model.
    pooling : {"mean", "last"}
    layers : iterable of int, optional
        Default every layer of the store.
    **kwargs
        Passed to :func:`probe` (``output_folder``, ``threads``, ...).

    Raises
    ------
    ValueError
        If ``texts`` are not the texts the store was dumped from (their hash
        differs from the store's ``text_hash``).
    """
    from layerscope.texts import text_hash

    digest = text_hash(list(texts))
    if store.attrs.get("text_hash") != digest:
        raise ValueError(
            f"{store.path} was dumped from other texts (text_hash "
            f"{str(store.attrs.get('text_hash'))[:12]}, these texts {digest[:12]})"
        )
    layers = range(store.n_layers) if layers is None else layers
    return probe(
        lambda: resolve_task(entry),
        texts,
        lambda layer: store.pooled(layer, pooling),
        layers,
        model=model,
        task_name=task_entry_name(entry),
        last_layer=store.last_layer,
        revision=store.attrs.get("revision"),
        **kwargs,
    )


def write_probe(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a probe frame to parquet atomically (a temporary file, then rename)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    path = Path(path)
    log.info("wrote %d probe rows to %s", len(frame), path)
    return path
