"""Task texts: which mteb task an entry means, and the exact strings it embeds.

The texts stage of a task (rule ``task_texts``) runs here, apart from the
probing itself, so that editing the probing code reruns the probes and not
the dumps:

1. :func:`resolve_task` turns a config entry into an mteb task object (a hub
   task, a shipped offline task, or a user's ``module:Class``).
2. :func:`record_task_texts` runs that task once through mteb's evaluator with
   an encoder that records every string it is asked to embed;
   :func:`build_task_texts` writes them to ``results/texts/tasks/{task}.parquet``
   and the dump stage embeds them like any other text set.

Also here: what both the recording pass and :mod:`layerscope.probing` use to
run an mteb evaluation (:func:`evaluate_task`, :func:`layer_model_meta`).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import difflib
import hashlib
import importlib
import logging
import os
import sys
import time
from collections.abc import Iterable

import numpy as np
from datasets import Dataset
from mteb.models import ModelMeta
from mteb.models.abs_encoder import AbsEncoder

log = logging.getLogger(__name__)

# mteb.evaluate's defaults with show_progress_bar=False
ENCODE_KWARGS = {"batch_size": 32, "show_progress_bar": False}
RECORDING_DIM = 32
_NOT_SCORES = {"main_score", "hf_subset", "languages", "mteb_version"}


class TaskUnavailableError(RuntimeError):
    """A hub task whose data cannot be had offline."""


def layer_model_meta(
    model: str, layer: int | None, *, dim: int | None = None, revision=None
) -> ModelMeta:
    """The mteb ``ModelMeta`` of one layer of a model.

    Parameters
    ----------
    model : str
        The config key of the model; mteb's name is ``layerscope/{model}``.
    layer : int or None
        Written as ``experiment_kwargs={"layer": layer}``, which gives each
        layer its own folder in mteb's result layout
        (``experiments/layer_{k}``).
    dim : int, optional
        The width of the vectors.
    revision : str, optional
        The model revision (default ``no_revision_available``, mteb's).

    Returns
    -------
    mteb.models.ModelMeta
        With cosine similarity, sentence-transformers' default.
    """
    return ModelMeta(
        loader=None,
        name=f"layerscope/{model}",
        revision=revision or "no_revision_available",
        release_date=None,
        languages=None,
        n_parameters=None,
        memory_usage_mb=None,
        max_tokens=None,
        embed_dim=dim,
        license=None,
        open_weights=None,
        public_training_code=None,
        public_training_data=None,
        framework=["PyTorch"],
        similarity_fn_name="cosine",
        use_instructions=False,
        training_datasets=None,
        experiment_kwargs=None if layer is None else {"layer": int(layer)},
    )


def batch_texts(inputs: Iterable[dict]) -> list[str]:
    """The strings of an mteb DataLoader, in order."""
    texts: list[str] = []
    for batch in inputs:
        texts.extend(batch["text"])
    return texts


class RecordingEncoder(AbsEncoder):
    """An mteb encoder that records every text it is asked to embed.

    It answers with a pseudo-random vector per text (seeded by the text, so
    a repeated text gets the same vector) so that the evaluation runs to the
    end; which texts mteb asks for depends on the task's data and seed, not
    on the vectors.
    """

    def __init__(self, dim: int = RECORDING_DIM):
        self.dim = dim
        self.texts: dict[str, None] = {}  # insertion-ordered set
        self.mteb_model_meta = layer_model_meta("recording", None, dim=dim)

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())
        return np.random.default_rng(seed).standard_normal(self.dim, np.float32)

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
        """(n_inputs, dim) float32 stand-in vectors; the texts are recorded."""
        texts = batch_texts(inputs)
        self.texts.update(dict.fromkeys(texts))
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._vector(text) for text in texts])


def shorten(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


class _ListColumnDataset(Dataset):
    """A datasets ``Dataset`` whose ``ds[column]`` is a list, as in datasets < 4.

    datasets >= 4 returns a lazy ``Column`` that scikit-learn reads one row at
    a time (a formatted arrow read per label): in mteb's classification that
    was most of the evaluation time (20 s of a layer, 3 s with lists). A list
    holds the same values, so scores do not change; mteb supports
    datasets >= 2.19, where columns were lists.
    """

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._getitem(key)
        return super().__getitem__(key)

    def select(self, *args, **kwargs):
        return list_columns(super().select(*args, **kwargs))


def list_columns(data):
    """``data`` with every ``Dataset`` inside it read as lists (nested dicts too)."""
    if isinstance(data, Dataset):
        if isinstance(data, _ListColumnDataset):
            return data
        data = copy.copy(data)
        data.__class__ = _ListColumnDataset
        return data
    if isinstance(data, dict):  # DatasetDict and RetrievalSplitData are dicts
        for key, value in data.items():
            data[key] = list_columns(value)
    return data


@contextlib.contextmanager
def quiet_datasets():
    """No datasets progress bars (mteb maps a corpus at every evaluation)."""
    import datasets.utils as datasets_utils

    was_disabled = datasets_utils.are_progress_bars_disabled()
    datasets_utils.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets_utils.enable_progress_bars()


def evaluate_task(task, encoder: AbsEncoder, *, threads: int | None = 1):
    """Evaluate ``task`` with ``encoder`` as ``mteb.evaluate`` does, without cache.

    Every eval split, subset by subset (bitext mining: all subsets at once),
    through ``task.evaluate``; returns mteb's ``TaskResult``.
    """
    from mteb.abstasks import AbsTaskBitextMining
    from mteb.results import TaskResult
    from mteb.timing import TimingStack
    from threadpoolctl import threadpool_limits

    if not task.data_loaded:
        task.load_data()
    timer = TimingStack()
    scores: dict[str, dict[str, dict]] = {}
    started = time.monotonic()
    with threadpool_limits(limits=threads), quiet_datasets():
        for split in task.eval_splits:
            subsets = list(task.hf_subsets)
            if isinstance(task, AbsTaskBitextMining):
                batches = [subsets]
            else:
                batches = [[subset] for subset in subsets]
            scores[split] = {}
            for batch in batches:
                scores[split].update(
                    task.evaluate(
                        encoder,
                        split,
                        subsets_to_run=batch,
                        encode_kwargs=dict(ENCODE_KWARGS),
                        timer=timer,
                    )
                )
    return TaskResult.from_task_results(
        task,
        scores,
        evaluation_time=time.monotonic() - started,
        date=datetime.datetime.now(tz=datetime.UTC),
        evaluation_phases=timer.phases or None,
    )


def record_task_texts(task) -> list[str]:
    """The exact strings mteb asks an encoder to embed for ``task``.

    The task is run once through mteb's own evaluator (as :func:`probe` runs
    it: every eval split and subset, and the training rows classification
    draws) with a :class:`RecordingEncoder`.

    Parameters
    ----------
    task : mteb.abstasks.AbsTask
        A fresh task object (with mteb's default seed, as probing uses).

    Returns
    -------
    list of str
        Unique texts, in the order mteb first asks for them (deterministic).

    Notes
    -----
    Classification encodes only the training rows its undersampling draws
    (``samples_per_label`` per label in each of ``n_experiments`` draws, seeded
    by the task seed), so the recorded set covers evaluations with the same
    seed and mteb version; another seed may draw other rows, and
    :class:`StoredEncoder` then names the first missing text. Recording all
    training rows instead would embed, e.g., 3.6 M texts for
    AmazonPolarityClassification.
    """
    encoder = RecordingEncoder()
    started = time.perf_counter()
    if not task.data_loaded:
        task.load_data()
    if task.dataset is not None:
        task.dataset = list_columns(task.dataset)
    evaluate_task(task, encoder)
    texts = list(encoder.texts)
    log.info(
        "recorded %d texts of %s in %.1f s",
        len(texts),
        task.metadata.name,
        time.perf_counter() - started,
    )
    return texts


def task_entry_name(entry: dict | str) -> str:
    """The name of a task entry (``"name"``, or the string itself)."""
    return entry if isinstance(entry, str) else str(entry["name"])


def _offline_tasks() -> dict[str, type]:
    try:
        from layerscope.tasks import OFFLINE_TASKS
    except ImportError as error:
        log.warning("no offline tasks (layerscope.tasks: %s)", error)
        return {}
    return OFFLINE_TASKS


def _mteb_task_names() -> list[str]:
    """Every task name in mteb's metadata registry (nothing is downloaded)."""
    from mteb.get_tasks import _TASKS_REGISTRY

    return list(_TASKS_REGISTRY)


def _import_task_class(path: str):
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"task {path!r}: cannot import {module_name!r}: {error}"
        ) from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ValueError(
            f"task {path!r}: {module_name} has no {class_name!r}"
        ) from None


def _unknown_task(name: str) -> ValueError:
    candidates = [*_offline_tasks(), *_mteb_task_names()]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = (
        f"did you mean {', '.join(map(repr, close))}?"
        if close
        else ("see mteb.get_tasks() or layerscope.tasks.OFFLINE_TASKS")
    )
    return ValueError(f"unknown task {name!r}: {hint}")


def resolve_task(entry: dict | str, *, offline: bool = False):
    """The mteb task object of a task entry of the config.

    Parameters
    ----------
    entry : dict or str
        ``{"name": ..., "splits": [...], "subsets": [...]}`` or just the name.
        The name is one of

        - a key of ``layerscope.tasks.OFFLINE_TASKS`` (shipped, no network);
        - ``"package.module:ClassName"``, a user's own mteb task class;
        - an mteb task name (``"Banking77Classification"``), whose data comes
          from the HuggingFace hub or its local cache.

        ``splits`` and ``subsets`` (optional) restrict the task's eval splits
        and HF subsets.
    offline : bool, default False
        Switch the hub clients to offline mode (:func:`offline_mode`) and check
        that a hub task's data is in the local cache
        (:func:`check_task_available_offline`), so that a missing dataset
        fails at once instead of after the clients' retries.

    Returns
    -------
    mteb.abstasks.AbsTask
        A fresh task, its data not loaded.

    Raises
    ------
    ValueError
        An unknown name (with the closest known names), or a split or subset
        the task does not have.
    TaskUnavailableError
        With ``offline=True``, a hub task whose data is not cached.
    """
    if isinstance(entry, str):
        entry = {"name": entry}
    name = str(entry["name"])
    splits, subsets = entry.get("splits"), entry.get("subsets")

    if ":" in name:
        task = _import_task_class(name)()
    elif name in _offline_tasks():
        from layerscope.tasks import get_task

        task = get_task(name)
    else:
        import mteb

        try:
            task = mteb.get_task(name)  # metadata only: nothing is downloaded
        except KeyError:
            raise _unknown_task(name) from None

    if task.is_aggregate:
        raise ValueError(
            f"task {name!r} aggregates other tasks; list them instead: "
            f"{[t.metadata.name for t in task.metadata.tasks]}"
        )
    if splits:
        unknown = sorted(set(splits) - set(task.metadata.eval_splits))
        if unknown:
            raise ValueError(
                f"task {name!r} has no eval split {unknown[0]!r} "
                f"(eval splits: {list(task.metadata.eval_splits)})"
            )
        task.filter_eval_splits(list(splits))
    if subsets:
        unknown = sorted(set(subsets) - set(task.metadata.hf_subsets))
        if unknown:
            raise ValueError(
                f"task {name!r} has no subset {unknown[0]!r} "
                f"(subsets: {list(task.metadata.hf_subsets)})"
            )
        task.filter_languages(None, hf_subsets=list(subsets))
    if offline:
        offline_mode()
        check_task_available_offline(task)
    return task


def offline_mode() -> None:
    """Switch the HuggingFace hub and datasets clients to offline mode.

    Sets ``HF_HUB_OFFLINE=1`` and ``HF_DATASETS_OFFLINE=1`` for this process
    and its children, and the same switches of the already imported
    ``huggingface_hub`` and ``datasets`` (they read the variables once, at
    import). A download then fails at once instead of retrying for 24-40 s.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.constants

        huggingface_hub.constants.HF_HUB_OFFLINE = True
    if "datasets" in sys.modules:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = True
        datasets.config.HF_DATASETS_OFFLINE = True


def reads_hub(task) -> bool:
    """Whether ``task`` loads its data with mteb's hub loaders.

    Shipped offline tasks and user tasks that override ``load_data`` do not.
    """
    return type(task).load_data.__module__.startswith("mteb.")


def check_task_available_offline(task) -> None:
    """Fail at once if a hub task's dataset is not in the local HuggingFace cache.

    Looks for the dataset repository at the task's pinned revision with
    ``huggingface_hub.snapshot_download(..., local_files_only=True)``: no
    network. Tasks that do not read the hub always pass.

    Raises
    ------
    TaskUnavailableError
        Naming the task, the dataset and revision, and the cache folder.
    """
    if not reads_hub(task):
        return
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    dataset = task.metadata.dataset
    repo, revision = dataset["path"], dataset.get("revision")
    try:
        snapshot_download(
            repo, repo_type="dataset", revision=revision, local_files_only=True
        )
    except Exception as error:  # LocalEntryNotFoundError, or a bad repo id
        raise TaskUnavailableError(
            f"task {task.metadata.name!r}: its dataset {repo}@{revision} is not "
            f"in the local HuggingFace cache ({HF_HUB_CACHE}) and the hub is "
            f"not used offline ({type(error).__name__}); run it once with "
            f"network access, or use an offline task: {sorted(_offline_tasks())}"
        ) from None


def build_task_texts(entry: dict | str, path: str | os.PathLike) -> str:
    """Resolve a task entry, record its texts, write them as a texts file.

    The texts stage for a task: ``path`` gets columns ``id`` (0..n-1) and
    ``text`` with the exact strings, neither stripped nor deduplicated beyond
    what mteb asks (stripping would break the lookup). Returns the hash.
    """
    from layerscope.texts import write_texts

    task = resolve_task(entry)
    texts = record_task_texts(task)
    if not texts:
        raise ValueError(f"task {task_entry_name(entry)!r} asks for no text")
    return write_texts(
        np.arange(len(texts)),
        texts,
        path,
        {"task": entry if isinstance(entry, dict) else {"name": entry}},
    )
