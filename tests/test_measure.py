"""The metrics stage: every metric over every layer of a store, in long form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import model_spec
from layerscope import metrics, open_store
from layerscope.extract import dump
from layerscope.measure import COLUMNS, METRICS, measure

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a layer by layer look at hidden representations",
    "language models build their features one block at a time",
    "entropy, curvature and rank describe how a layer spreads its tokens",
    "in the beginning was the word",
    "numbers like 3 14 and 2026 appear in text too",
    "a",
]
SPECS = {
    "prompt_entropy": {"alpha": 1.0, "center": True, "normalize": True},
    "curvature": {"center": True, "normalize": True},
    "dataset_entropy": {
        "alpha": 2.0,
        "pooling": "mean",
        "center": True,
        "normalize": True,
    },
    "effective_rank": {"pooling": "last", "center": False, "normalize": False},
    "infonce": {
        "temperature": 0.1,
        "pooling": "mean",
        "center": True,
        "normalize": True,
    },
    "lidar": {
        "views": 3,
        "alpha": 1.0,
        "delta": 1e-4,
        "pooling": "mean",
        "center": True,
        "normalize": True,
    },
    "dime": {
        "alpha": 1.0,
        "permutations": 3,
        "seed": 0,
        "pooling": "mean",
        "center": True,
        "normalize": True,
    },
}


@pytest.fixture(scope="module")
def stores(tiny_models, tmp_path_factory):
    """A token store of TEXTS and a pooled store of 3 views of each text."""
    folder = tmp_path_factory.mktemp("stores")
    kwargs = dict(model_name="m", source_name="s", text_hash="h", progress=False)
    dump(
        model_spec(tiny_models["llama"]),
        TEXTS,
        folder / "s.zarr",
        store_tokens=True,
        **kwargs,
    )
    views = [f"{text}{suffix}" for text in TEXTS for suffix in ("", " .", " !")]
    dump(
        model_spec(tiny_models["llama"]),
        views,
        folder / "v.zarr",
        store_tokens=False,
        **kwargs,
    )
    layout = pd.DataFrame(
        {
            "prompt": np.repeat(np.arange(len(TEXTS)), 3),
            "view": np.tile(np.arange(3), len(TEXTS)),
        }
    )
    return open_store(folder / "s.zarr"), open_store(folder / "v.zarr"), layout


def _run(metric, stores, layout=None):
    token_store, view_store, default_layout = stores
    store = view_store if metric in ("infonce", "lidar", "dime") else token_store
    layout = default_layout if layout is None and store is view_store else layout
    return measure(
        metric,
        store,
        SPECS[metric],
        model="m",
        source="s",
        layout=layout,
        progress=False,
    )


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_gives_a_finite_value_per_layer(stores, metric):
    frame = _run(metric, stores)

    assert list(frame.columns) == COLUMNS
    for _, per_variant in frame.groupby("variant"):
        assert per_variant["layer"].tolist() == list(range(5))
        assert per_variant["depth"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    raw = frame[frame["variant"].isin(["raw", "radians"])]
    assert np.isfinite(raw["value"]).all()
    assert (frame["metric"] == metric).all() and (frame["model"] == "m").all()


def test_prompt_entropy_keeps_every_prompt_and_averages_them(stores):
    token_store = stores[0]
    frame = _run("prompt_entropy", stores)
    row = frame[(frame["variant"] == "raw") & (frame["layer"] == 2)].iloc[0]

    tokens = metrics.preprocess(
        token_store.layer_tokens(2),
        center=True,
        normalize=True,
        offsets=token_store.offsets,
    )
    expected = metrics.prompt_entropy(tokens, token_store.offsets)
    np.testing.assert_allclose(row["per_prompt"], expected)
    one_token = token_store.n_tokens == 1
    assert one_token.sum() == 1  # "a", which centring leaves with no entropy
    assert np.isnan(expected[one_token]).all()
    assert row["value"] == pytest.approx(expected[~one_token].mean())
    assert row["n"] == len(TEXTS) - 1


def test_every_variant_of_a_layer_averages_the_same_prompts(stores):
    frame = _run("prompt_entropy", stores)

    for _, layer in frame.groupby("layer"):
        assert layer["n"].nunique() == 1
        per_prompt = np.array(layer["per_prompt"].tolist())  # (variants, prompts)
        kept = np.isfinite(per_prompt).all(0)
        np.testing.assert_allclose(layer["value"], per_prompt[:, kept].mean(1))


def test_infonce_and_dime_use_two_views_whatever_the_store_holds(stores):
    _, view_store, layout = stores
    order = np.lexsort((layout["view"], layout["prompt"]))
    pooled = view_store.pooled(3, "mean")[order].reshape(len(TEXTS), 3, -1)
    two = metrics.preprocess(pooled[:, :2], center=True, normalize=True)

    infonce = _run("infonce", stores).set_index(["variant", "layer"])["value"]
    dime = _run("dime", stores).set_index(["variant", "layer"])["value"]

    assert infonce["raw", 3] == pytest.approx(metrics.infonce(two[:, 0], two[:, 1]))
    assert infonce["log_n", 3] == pytest.approx(infonce["raw", 3] / np.log(len(TEXTS)))
    assert dime["raw", 3] == pytest.approx(
        metrics.dime(two[:, 0], two[:, 1], n_permutations=3)
    )


def test_lidar_reports_its_entropy_form_and_its_normalisations(stores):
    lidar = _run("lidar", stores).set_index(["variant", "layer"])["value"]
    log_n, log_d = np.log(len(TEXTS)), np.log(stores[1].dim)

    entropy = lidar.xs("entropy")
    np.testing.assert_allclose(entropy, np.log(lidar.xs("raw")))
    np.testing.assert_allclose(lidar.xs("log_n"), entropy / log_n)
    np.testing.assert_allclose(lidar.xs("log_d"), entropy / log_d)
    np.testing.assert_allclose(lidar.xs("max_entropy"), entropy / min(log_n, log_d))


def test_curvature_counts_only_prompts_long_enough(stores):
    frame = _run("curvature", stores)
    short = int((stores[0].n_tokens < 3).sum())

    assert short >= 1  # "a" is one token
    assert (frame["n"] == len(TEXTS) - short).all()
    assert frame["per_prompt"].map(len).eq(len(TEXTS)).all()


def test_view_metrics_follow_the_layout_not_the_row_order(
    tiny_models, stores, tmp_path
):
    layout = stores[2]
    order = np.random.default_rng(0).permutation(len(layout))
    views = [f"{text}{suffix}" for text in TEXTS for suffix in ("", " .", " !")]
    dump(
        model_spec(tiny_models["llama"]),
        [views[i] for i in order],
        tmp_path / "shuffled.zarr",
        model_name="m",
        source_name="s",
        text_hash="h",
        store_tokens=False,
        progress=False,
    )
    shuffled = open_store(tmp_path / "shuffled.zarr")

    for metric in ("infonce", "lidar", "dime"):
        ordered = _run(metric, stores)
        spec = SPECS[metric]
        permuted = measure(
            metric,
            shuffled,
            spec,
            model="m",
            source="s",
            layout=layout.iloc[order].reset_index(drop=True),
            progress=False,
        )
        np.testing.assert_allclose(permuted["value"], ordered["value"], rtol=1e-5)


def test_token_metrics_ask_for_tokens(stores):
    with pytest.raises(ValueError, match="tokens: true"):
        measure("curvature", stores[1], SPECS["curvature"], model="m", source="views")


def test_an_unknown_metric_is_named(stores):
    with pytest.raises(ValueError, match="'entropy'"):
        measure("entropy", stores[0], {}, model="m", source="s")
