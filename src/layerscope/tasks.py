"""Offline MTEB tasks built from WordNet 3.0, shipped inside layerscope.

Five small tasks, one of each kind the probing stage scores, that load from
the package's data folder (``layerscope/data/tasks``) without any network:

=====================================  ==================  ==================
task                                   type                main score
=====================================  ==================  ==================
WordNetNounCategoryClassification      Classification      accuracy
WordNetNounCategoryClustering          Clustering          v_measure
WordNetNounGlossSTS                    STS                 cosine_spearman
WordNetSameSensePairClassification     PairClassification  max_ap
WordNetGlossReranking                  Reranking           map_at_1000
=====================================  ==================  ==================

They are real ``mteb`` tasks: ``task.evaluate(model, encode_kwargs={})`` or
``mteb.evaluate(model, [task])`` scores them with mteb's own evaluators.
``scripts/build_data.py`` rebuilds their files from Debian's ``wordnet-base``.

Every task keeps the texts whose relation is the label free of shared content
words, because a randomly initialised transformer can match shared words; on
these tasks a random-weight control stays near chance while a trained
sentence encoder does not.

Notes
-----
The tasks are evaluated once per layer, so a few behaviours of mteb 2.x are
changed here, none of them a change of score:

- the clustering task restarts its random generator at every evaluation
  (mteb's advances it, so a reused task object drew other bootstrap samples
  and gave another score for the same embeddings); it embeds every text
  (mteb embeds 4% by default);
- the classification task reads its labels in one go: with datasets >= 4,
  ``dataset["label"]`` is a lazy column that mteb's undersampling and
  scikit-learn's metrics read one row at a time, which took most of an
  evaluation; its labels are integers, since scikit-learn's metrics are
  several times slower on strings.

The matrices are small: on a machine whose cores are busy, BLAS and OpenMP
threads that compete for them made an evaluation 5 to 20 times slower than
one thread (``threadpoolctl.threadpool_limits(1)``).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import random
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.clustering import AbsTaskClustering
from mteb.abstasks.pair_classification import AbsTaskPairClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata

logger = logging.getLogger(__name__)

__all__ = [
    "OFFLINE_TASKS",
    "WordNetGlossReranking",
    "WordNetNounCategoryClassification",
    "WordNetNounCategoryClustering",
    "WordNetNounGlossSTS",
    "WordNetSameSensePairClassification",
    "get_task",
    "task_texts",
]

WORDNET_LICENSE_URL = "https://wordnet.princeton.edu/license-and-commercial-use"
WORDNET_BIBTEX = r"""
@article{miller1995wordnet,
  author = {Miller, George A.},
  journal = {Communications of the ACM},
  number = {11},
  pages = {39--41},
  title = {WordNet: A Lexical Database for English},
  volume = {38},
  year = {1995},
}
"""
WU_PALMER_BIBTEX = r"""
@inproceedings{wu1994verb,
  author = {Wu, Zhibiao and Palmer, Martha},
  booktitle = {Proceedings of the 32nd Annual Meeting of the Association for
    Computational Linguistics},
  pages = {133--138},
  title = {Verb Semantics and Lexical Selection},
  year = {1994},
}
"""


def _data_file(name: str):
    return resources.files("layerscope") / "data" / "tasks" / f"{name}.parquet"


@cache
def _manifest() -> dict[str, Any]:
    path = resources.files("layerscope") / "data" / "MANIFEST.json"
    return json.loads(path.read_text())


def _revision(*names: str) -> str:
    """A short hash of the shipped files a task reads (from MANIFEST.json)."""
    files = _manifest()["files"]
    digest = hashlib.sha256()
    for name in names:
        digest.update(files[f"tasks/{name}.parquet"]["sha256"].encode())
    return digest.hexdigest()[:12]


def _read(name: str) -> pd.DataFrame:
    with resources.as_file(_data_file(name)) as path:
        frame = pd.read_parquet(path)
    logger.debug("read %d rows from %s", len(frame), path)
    return frame


def _metadata(files: tuple[str, ...], **fields: Any) -> TaskMetadata:
    """TaskMetadata with the fields every WordNet task shares."""
    common = dict(
        dataset={"path": f"layerscope/{files[0]}", "revision": _revision(*files)},
        reference="https://wordnet.princeton.edu/",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        date=("1985-01-01", "2006-12-31"),
        domains=["Encyclopaedic", "Written"],
        license=WORDNET_LICENSE_URL,
        dialect=[],
        sample_creation="found",
        bibtex_citation=WORDNET_BIBTEX,
    )
    return TaskMetadata(**(common | fields))


class WordNetNounCategoryClassification(AbsTaskClassification):
    """Noun definitions → their WordNet lexicographer file (24 classes)."""

    _file = "wordnet_noun_category_classification"
    metadata = _metadata(
        (_file,),
        name="WordNetNounCategoryClassification",
        description=(
            "Classify a WordNet 3.0 noun definition into the lexicographer file "
            "of its synset (noun.animal, noun.artifact, ...: 24 classes, 24 "
            "training and 16 test definitions each, chance 1/24). The synset's "
            "own lemmas are removed from its definition, and no test definition "
            "shares a content word with a training definition of its class."
        ),
        type="Classification",
        main_score="accuracy",
        task_subtypes=["Topic classification"],
        annotations_creators="expert-annotated",
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read the shipped definitions into a train and a test split."""
        if self.data_loaded:
            return
        frame = _read(self._file)
        # Integer labels: scikit-learn's metrics are several times slower on
        # strings.
        names = sorted(frame["label"].unique())
        features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
        frame["label"] = frame["label"].map(names.index)
        splits = {
            split: Dataset.from_pandas(
                rows[["text", "label"]].reset_index(drop=True),
                features=features,
                preserve_index=False,
            )
            for split, rows in frame.groupby("split")
        }
        self.dataset = {"default": DatasetDict(splits)}
        self.data_loaded = True

    def _undersample_data(self, dataset, experiment_num, idxs=None):
        # mteb's draw (its running order reshuffled by RandomState(seed), then
        # the first samples_per_label rows of each label), with the labels
        # read once: indexing datasets' lazy Column costs a read per row.
        idxs = list(range(len(dataset))) if idxs is None else idxs
        np.random.RandomState(self.seed).shuffle(idxs)
        labels = dataset[self.label_column_name][:]
        counts: collections.Counter = collections.Counter()
        chosen = []
        for i in idxs:
            if counts[labels[i]] < self.samples_per_label:
                counts[labels[i]] += 1
                chosen.append(i)
        return dataset.select(chosen), idxs, chosen

    def _calculate_scores(self, y_test, y_pred):
        # Slicing reads datasets' lazy Column in one go (a list stays a list);
        # scikit-learn would otherwise read it row by row.
        return super()._calculate_scores(y_test[:], y_pred)


class WordNetNounCategoryClustering(AbsTaskClustering):
    """Noun definitions clustered by WordNet lexicographer file."""

    _file = "wordnet_noun_category_clustering"
    metadata = _metadata(
        (_file,),
        name="WordNetNounCategoryClustering",
        description=(
            "Cluster WordNet 3.0 noun definitions by the lexicographer file of "
            "their synset (the 20 largest noun files, 40 definitions each). No "
            "two definitions of the same class share a content word, and each "
            "synset's own lemmas are removed from its definition."
        ),
        type="Clustering",
        main_score="v_measure",
        task_subtypes=["Thematic clustering"],
        annotations_creators="expert-annotated",
    )
    # Embed every definition (mteb 2 embeds 4% by default) and draw bootstrap
    # samples no larger than the task.
    max_fraction_of_documents_to_embed = None
    max_documents_per_cluster = 800

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read the shipped definitions into one test split."""
        if self.data_loaded:
            return
        frame = _read(self._file).rename(columns={"text": "sentences"})
        frame = frame[["sentences", "labels"]]
        self.dataset = {
            "default": DatasetDict(
                {"test": Dataset.from_pandas(frame, preserve_index=False)}
            )
        }
        self.data_loaded = True

    def _evaluate_subset(self, *args: Any, **kwargs: Any):
        # mteb advances self.rng_state on every call; restart it so that the
        # same embeddings always get the same score.
        self.rng_state = random.Random(self.seed)
        return super()._evaluate_subset(*args, **kwargs)


class WordNetNounGlossSTS(AbsTaskSTS):
    """Pairs of noun definitions scored by the Wu-Palmer similarity of their synsets."""

    _file = "wordnet_noun_gloss_sts"
    metadata = _metadata(
        (_file,),
        name="WordNetNounGlossSTS",
        description=(
            "Semantic similarity of two WordNet 3.0 noun definitions, scored "
            "0-5 as 5 times the Wu-Palmer similarity of their synsets in the "
            "noun hypernym taxonomy: 2 depth(c) / (d(a, c) + d(b, c) + "
            "2 depth(c)) for their deepest common hypernym c. 1,000 pairs, 200 "
            "in each fifth of the score range; the two definitions of a pair "
            "share no content word, and no definition is used twice."
        ),
        type="STS",
        main_score="cosine_spearman",
        annotations_creators="derived",
        bibtex_citation=WORDNET_BIBTEX + WU_PALMER_BIBTEX,
    )
    min_score = 0
    max_score = 5

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read the shipped pairs into one test split."""
        if self.data_loaded:
            return
        frame = _read(self._file)[["sentence1", "sentence2", "score"]]
        self.dataset = {
            "default": DatasetDict(
                {"test": Dataset.from_pandas(frame, preserve_index=False)}
            )
        }
        self.data_loaded = True


class WordNetSameSensePairClassification(AbsTaskPairClassification):
    """Two example sentences of one word: is it used in the same sense?"""

    _file = "wordnet_same_sense_pair_classification"
    metadata = _metadata(
        (_file,),
        name="WordNetSameSensePairClassification",
        description=(
            "Two WordNet 3.0 example sentences that use the same word: label 1 "
            "when both illustrate the same synset, 0 when they illustrate two "
            "senses of the word with the same part of speech (in the manner of "
            "WiC). Each of 500 words gives one positive and one negative pair "
            "around the same anchor sentence. All three sentences use the same "
            "form of the word; the positive and the negative partner have the "
            "same number of words and share as many words with the anchor; the "
            "sentences of a pair share no content word but the target word."
        ),
        type="PairClassification",
        main_score="max_ap",
        annotations_creators="expert-annotated",
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read the shipped pairs into one test split."""
        if self.data_loaded:
            return
        frame = _read(self._file)[["sentence1", "sentence2", "labels"]]
        self.dataset = {
            "default": DatasetDict(
                {"test": Dataset.from_pandas(frame, preserve_index=False)}
            )
        }
        self.data_loaded = True


class WordNetGlossReranking(AbsTaskRetrieval):
    """An example sentence ranks the definitions of its word's senses."""

    _files = ("wordnet_gloss_reranking_queries", "wordnet_gloss_reranking_corpus")
    metadata = _metadata(
        _files,
        name="WordNetGlossReranking",
        description=(
            "Rerank the definitions of every sense of a word (same part of "
            "speech, 3 to 8 candidates, the word itself removed) for a WordNet "
            "3.0 example sentence that uses the word; the relevant definition "
            "is the one of the synset the sentence illustrates. 500 queries; "
            "a query shares no content word with any of its candidates but "
            "the target word."
        ),
        type="Reranking",
        main_score="map_at_1000",
        annotations_creators="expert-annotated",
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read the shipped queries, definitions and candidate lists."""
        if self.data_loaded:
            return
        queries = _read(self._files[0])
        corpus = _read(self._files[1])
        split = RetrievalSplitData(
            queries=Dataset.from_pandas(queries[["id", "text"]], preserve_index=False),
            corpus=Dataset.from_pandas(corpus[["id", "text"]], preserve_index=False),
            relevant_docs={q: {gold: 1} for q, gold in zip(queries.id, queries.gold)},
            top_ranked={
                q: list(candidates)
                for q, candidates in zip(queries.id, queries.candidates)
            },
        )
        self.dataset = {"default": {"test": split}}
        self.data_loaded = True


OFFLINE_TASKS: dict[str, type] = {
    task.metadata.name: task
    for task in (
        WordNetNounCategoryClassification,
        WordNetNounCategoryClustering,
        WordNetNounGlossSTS,
        WordNetSameSensePairClassification,
        WordNetGlossReranking,
    )
}


def get_task(name: str, seed: int = 42):
    """A fresh instance of a shipped task.

    Parameters
    ----------
    name : str
        A key of ``OFFLINE_TASKS``, e.g. ``"WordNetGlossReranking"``.
    seed : int, default 42
        mteb's task seed (42 is mteb's own default).

    Returns
    -------
    mteb.abstasks.AbsTask
        The task, its data not loaded yet.

    Notes
    -----
    Creating an mteb task reseeds Python's, NumPy's and (if imported) torch's
    global generators with ``seed``.
    """
    if name not in OFFLINE_TASKS:
        raise ValueError(
            f"unknown offline task {name!r}; available: {sorted(OFFLINE_TASKS)}"
        )
    return OFFLINE_TASKS[name](seed=seed)


def task_texts(task) -> list[str]:
    """Every string mteb may ask an encoder to embed for ``task``.

    Covers the eval splits of classification (and its train split),
    clustering, STS, pair classification, retrieval and reranking tasks;
    retrieval documents are joined as mteb joins them, ``title + " " + text``.

    Parameters
    ----------
    task : mteb.abstasks.AbsTask
        A task; its data is loaded if it is not yet.

    Returns
    -------
    list of str
        The distinct strings, sorted.
    """
    if not task.data_loaded:
        task.load_data()
    if isinstance(task, AbsTaskRetrieval):
        task.convert_v1_dataset_format_to_v2(num_proc=None)
    texts: set[str] = set()
    for subset in task.hf_subsets:
        data = task.dataset.get(subset, task.dataset)
        splits = list(task.metadata.eval_splits)
        if isinstance(task, AbsTaskClassification):
            splits.append(task.train_split)
        for split in splits:
            texts |= _split_texts(task, data[split])
    return sorted(texts)


def _split_texts(task, split) -> set[str]:
    if isinstance(task, AbsTaskRetrieval):
        documents = {
            (f"{title} {text}" if title else text).strip()
            for title, text in zip(
                split["corpus"]["title"]
                if "title" in split["corpus"].column_names
                else [""] * len(split["corpus"]),
                split["corpus"]["text"],
            )
        }
        return documents | set(split["queries"]["text"])
    if isinstance(task, AbsTaskSTS):
        return set(split[task.column_names[0]]) | set(split[task.column_names[1]])
    if isinstance(task, AbsTaskPairClassification):
        return set(split[task.input1_column_name]) | set(split[task.input2_column_name])
    if isinstance(task, AbsTaskClassification | AbsTaskClustering):
        return set(split[task.input_column_name])
    raise TypeError(f"task_texts does not know {type(task).__name__}")
