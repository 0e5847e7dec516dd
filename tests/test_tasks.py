"""The shipped WordNet tasks load offline and score through mteb's evaluators."""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from importlib import resources

import numpy as np
import pytest
from mteb.abstasks.classification import AbsTaskClassification
from mteb.models import ModelMeta
from mteb.models.abs_encoder import AbsEncoder
from threadpoolctl import threadpool_limits

from layerscope.tasks import OFFLINE_TASKS, get_task, task_texts

DATA = resources.files("layerscope") / "data"


def trigrams(text: str) -> list[str]:
    padded = f"  {text.lower()} "
    return [padded[i : i + 3] for i in range(len(padded) - 2)]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class HashedCountsEncoder(AbsEncoder):
    """Counts of hashed features (character trigrams or words): no model.

    Records every text it is asked to embed.
    """

    def __init__(self, featurize, dim: int = 512):
        self.featurize = featurize
        self.dim = dim
        self.seen: set[str] = set()
        self.mteb_model_meta = ModelMeta(
            loader=None,
            name=f"layerscope-tests/hashed-{featurize.__name__}",
            revision="1",
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
            framework=[],
            similarity_fn_name="cosine",
            use_instructions=False,
            training_datasets=None,
        )

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, **kwargs):
        texts = [text for batch in inputs for text in batch["text"]]
        self.seen.update(texts)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self.featurize(text):
                vectors[row, zlib.crc32(feature.encode()) % self.dim] += 1.0
        vectors += 1e-3  # no all-zero rows
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def evaluate(task, encoder) -> float:
    # One BLAS/OpenMP thread: these matrices are small, and threads that
    # compete for a busy machine's cores slow scikit-learn down many times.
    with threadpool_limits(limits=1):
        scores = task.evaluate(encoder, encode_kwargs={})
    return scores["default"][task.metadata.main_score]


@pytest.fixture(scope="module")
def trigram_runs() -> dict[str, tuple[float, set[str], list[str]]]:
    """Each task scored once with the trigram encoder: score, seen, texts."""
    runs = {}
    for name in OFFLINE_TASKS:
        task, encoder = get_task(name), HashedCountsEncoder(trigrams)
        score = evaluate(task, encoder)
        runs[name] = (score, encoder.seen, task_texts(task))
    return runs


def test_every_task_is_registered_under_its_metadata_name():
    for name, task_type in OFFLINE_TASKS.items():
        task = get_task(name)

        assert isinstance(task, task_type)
        assert task.metadata.name == name
    with pytest.raises(ValueError, match="WordNetGlossReranking"):
        get_task("NoSuchTask")


@pytest.mark.parametrize("name", list(OFFLINE_TASKS))
def test_task_gives_a_finite_main_score_in_range(trigram_runs, name):
    score, _, _ = trigram_runs[name]

    assert math.isfinite(score)
    assert -1.0 <= score <= 1.0


@pytest.mark.parametrize("name", list(OFFLINE_TASKS))
def test_task_texts_hold_every_string_mteb_encodes(trigram_runs, name):
    _, seen, texts = trigram_runs[name]

    assert seen
    assert seen <= set(texts)


def test_sizes_match_the_descriptions():
    sizes = {name: len(task_texts(get_task(name))) for name in OFFLINE_TASKS}

    assert sizes["WordNetNounCategoryClassification"] >= 24 * (24 + 16) - 5
    assert sizes["WordNetNounCategoryClustering"] >= 20 * 40 - 5
    assert sizes["WordNetGlossReranking"] > 500


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_bag_of_words_encoder_stays_near_chance():
    # Texts whose relation is the label share no content word, so a model
    # that only matches words has (almost) nothing to go on.
    chance_plus = {
        "WordNetNounCategoryClassification": 1 / 24 + 0.04,
        "WordNetNounCategoryClustering": 0.25,
        "WordNetNounGlossSTS": 0.15,
        "WordNetSameSensePairClassification": 0.56,
        "WordNetGlossReranking": 0.56,
    }
    for name, ceiling in chance_plus.items():
        score = evaluate(get_task(name), HashedCountsEncoder(words, dim=1024))

        assert score < ceiling, name


def test_clustering_scores_the_same_embeddings_the_same_twice():
    task = get_task("WordNetNounCategoryClustering")
    encoder = HashedCountsEncoder(trigrams)

    assert evaluate(task, encoder) == evaluate(task, encoder)


def test_undersampling_draws_the_rows_mteb_draws():
    task = get_task("WordNetNounCategoryClassification")
    task.load_data()
    train = task.dataset["default"]["train"]

    ours, theirs = None, None
    for experiment in range(3):
        _, ours, picked = task._undersample_data(train, experiment, ours)
        _, theirs, expected = AbsTaskClassification._undersample_data(
            task, train, experiment, theirs
        )

        assert picked == expected


def test_shipped_files_match_the_manifest_and_carry_licences():
    manifest = json.loads((DATA / "MANIFEST.json").read_text())

    for name, entry in manifest["files"].items():
        digest = hashlib.sha256((DATA / name).read_bytes()).hexdigest()

        assert digest == entry["sha256"], name
    licences = (DATA / "LICENSES.md").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in licences
    assert "King James" in licences
