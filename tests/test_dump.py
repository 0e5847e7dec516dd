"""The dump: one forward pass, every layer, one convention, read back lazily."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from conftest import model_spec
from layerscope import open_store
from layerscope.extract import NonFiniteActivationError, dump, pool, run_batches
from layerscope.store import IncompleteStoreError, StoreWriter
from layerscope.tiny import ARCHITECTURES

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a short one",
    "language models build their features one block at a time, layer by layer",
    "entropy",
    "numbers like 3 14 and 2026 appear in text too",
]


def _dump(source, path, texts=TEXTS, tokens=True, **overrides):
    return dump(
        model_spec(source, **overrides),
        texts,
        path,
        model_name="m",
        source_name="s",
        text_hash="h",
        store_tokens=tokens,
        progress=False,
    )


def _reference_states(folder, text):
    """transformers' own hidden states of one text, run alone (no padding)."""
    model = AutoModel.from_pretrained(folder).eval()
    batch = AutoTokenizer.from_pretrained(folder)([text], return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    return model, [h[0].numpy() for h in out.hidden_states], out.last_hidden_state[0]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_dumps_l_plus_one_layers(tiny_models, tmp_path, arch):
    _dump(tiny_models[arch], tmp_path / "s.zarr")

    store = open_store(tmp_path / "s.zarr")
    assert store.n_layers == 5  # 4 blocks + the embedding output
    assert store.n_texts == len(TEXTS)
    assert store.pooled(0).shape == (len(TEXTS), 64)
    assert store.layer_tokens(2).shape == (int(store.n_tokens.sum()), 64)
    assert np.array_equal(
        store.offsets, np.concatenate([[0], np.cumsum(store.n_tokens)])
    )


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_layers_follow_one_convention(tiny_models, tmp_path, arch):
    _dump(tiny_models[arch], tmp_path / "s.zarr")
    store = open_store(tmp_path / "s.zarr")
    model, states, last_hidden = _reference_states(tiny_models[arch], TEXTS[0])

    # transformers' Mamba states are (block 1, ..., block L, normed block L)
    blocks = states[:-2] if arch == "mamba" else states[1:-1]
    for layer, expected in enumerate(blocks, start=1):
        np.testing.assert_allclose(store.tokens(layer, 0), expected, atol=1e-5)
    np.testing.assert_allclose(store.tokens(4, 0), last_hidden.numpy(), atol=1e-5)
    if arch != "mamba":
        np.testing.assert_allclose(store.tokens(0, 0), states[0], atol=1e-5)
    else:
        embedding = model.get_input_embeddings().weight.detach().numpy()
        tokenizer = AutoTokenizer.from_pretrained(tiny_models[arch])
        ids = tokenizer(TEXTS[0])["input_ids"]
        np.testing.assert_allclose(store.tokens(0, 0), embedding[ids], atol=1e-6)


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "llama", "mamba"])
def test_last_layer_before_the_final_norm_is_an_option(tiny_models, tmp_path, arch):
    _dump(tiny_models[arch], tmp_path / "pre.zarr", final_norm=False)
    _dump(tiny_models[arch], tmp_path / "post.zarr", final_norm=True)
    pre, post = open_store(tmp_path / "pre.zarr"), open_store(tmp_path / "post.zarr")

    from layerscope.models import final_norm_module

    model = AutoModel.from_pretrained(tiny_models[arch]).eval()
    with torch.no_grad():
        normed = final_norm_module(model)(torch.from_numpy(pre.tokens(4, 0))).numpy()
    np.testing.assert_allclose(normed, post.tokens(4, 0), atol=1e-5)
    assert not np.allclose(pre.tokens(4, 0), post.tokens(4, 0))
    np.testing.assert_allclose(pre.pooled(3), post.pooled(3), atol=1e-6)
    assert pre.attrs["final_norm"] is False and post.attrs["final_norm"] is True


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_text_alone_and_in_a_padded_batch_pool_the_same(tiny_models, tmp_path, arch):
    short = "a short one"
    _dump(tiny_models[arch], tmp_path / "alone.zarr", texts=[short], batch_size=1)
    _dump(tiny_models[arch], tmp_path / "batch.zarr", texts=TEXTS, batch_size=8)
    alone, batch = (
        open_store(tmp_path / "alone.zarr"),
        open_store(tmp_path / "batch.zarr"),
    )

    row = TEXTS.index(short)
    for layer in range(alone.n_layers):
        for kind in ("mean", "last"):
            np.testing.assert_allclose(
                batch.pooled(layer, kind)[row], alone.pooled(layer, kind)[0], atol=1e-5
            )


def test_pooling_ignores_padding_on_either_side():
    hidden = torch.randn(1, 3, 4)
    right = torch.cat([hidden, torch.full((1, 2, 4), 99.0)], dim=1)
    left = torch.cat([torch.full((1, 2, 4), 99.0), hidden], dim=1)

    mean_r, last_r = pool(right, torch.tensor([[1, 1, 1, 0, 0]]))
    mean_l, last_l = pool(left, torch.tensor([[0, 0, 1, 1, 1]]))

    torch.testing.assert_close(mean_r, hidden.mean(1))
    torch.testing.assert_close(mean_l, hidden.mean(1))
    torch.testing.assert_close(last_r, hidden[:, -1])
    torch.testing.assert_close(last_l, hidden[:, -1])


class _FakeReader:
    """Layer states that are a function of the token ids, for driving run_batches."""

    n_layers = 3

    def __init__(self, fail_above=None, nan_layer=None):
        self.fail_above, self.nan_layer, self.calls = fail_above, nan_layer, []

    def __call__(self, input_ids, attention_mask):
        self.calls.append(len(input_ids))
        if self.fail_above and len(input_ids) > self.fail_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        base = input_ids.float().unsqueeze(-1).repeat(1, 1, 2)
        states = [base * (layer + 1) for layer in range(self.n_layers)]
        if self.nan_layer is not None:
            states[self.nan_layer][0, 0, 0] = float("nan")
        return states


def _fake_run(tmp_path, reader, batch_size=8):
    encodings = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10], [2, 2]]
    writer = StoreWriter(
        tmp_path / "fake.zarr",
        n_layers=3,
        dim=2,
        n_tokens=[len(e) for e in encodings],
        store_tokens=True,
    )
    used = run_batches(
        reader,
        encodings,
        writer,
        pad_id=0,
        batch_size=batch_size,
        device=torch.device("cpu"),
        progress=False,
    )
    return writer, used


def test_out_of_memory_halves_the_batch_and_goes_on(tmp_path):
    reader = _FakeReader(fail_above=2)
    writer, used = _fake_run(tmp_path, reader)
    writer.finish()

    store = open_store(tmp_path / "fake.zarr")
    assert used == 2
    assert reader.calls[0] == 5 and max(reader.calls[1:]) == 2
    np.testing.assert_allclose(store.pooled(1)[3], [2 * 8.5, 2 * 8.5])  # mean of 7..10
    np.testing.assert_allclose(store.pooled(2, "last")[0], [9.0, 9.0])


def test_a_non_finite_activation_fails_naming_the_layer(tmp_path):
    with pytest.raises(NonFiniteActivationError, match="layer 1"):
        _fake_run(tmp_path, _FakeReader(nan_layer=1))


@pytest.mark.parametrize("storage_dtype", ["float16", "bfloat16"])
def test_half_precision_storage_reads_back_as_float32(
    tiny_models, tmp_path, storage_dtype
):
    _dump(tiny_models["gpt2"], tmp_path / "full.zarr")
    _dump(tiny_models["gpt2"], tmp_path / "half.zarr", storage_dtype=storage_dtype)
    full, half = open_store(tmp_path / "full.zarr"), open_store(tmp_path / "half.zarr")

    assert half.pooled(2).dtype == np.float32
    np.testing.assert_allclose(half.pooled(2), full.pooled(2), rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(
        half.tokens(3, 1), full.tokens(3, 1), rtol=1e-2, atol=1e-2
    )


def test_reading_one_text_of_one_layer_matches_the_whole_layer(tiny_models, tmp_path):
    _dump(tiny_models["llama"], tmp_path / "s.zarr")
    store = open_store(tmp_path / "s.zarr")

    start, stop = store.offsets[2], store.offsets[3]
    np.testing.assert_array_equal(store.tokens(3, 2), store.layer_tokens(3)[start:stop])
    with pytest.raises(IndexError, match="layer 9"):
        store.pooled(9)


def test_pooled_only_store_says_how_to_get_tokens(tiny_models, tmp_path):
    _dump(tiny_models["bert"], tmp_path / "s.zarr", tokens=False)
    with pytest.raises(ValueError, match="tokens: true"):
        open_store(tmp_path / "s.zarr").tokens(0, 0)


def test_a_dump_killed_half_way_leaves_no_finished_store(tiny_models, tmp_path):
    target = tmp_path / "s.zarr"
    script = textwrap.dedent(
        f"""
        import os, signal
        from layerscope import store
        from layerscope.extract import dump
        from conftest import model_spec

        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        store.StoreWriter.finish = die  # every batch computed, nothing renamed yet
        dump(model_spec({str(tiny_models["gpt2"])!r}), {TEXTS!r}, {str(target)!r},
             model_name="m", source_name="s", text_hash="h", store_tokens=True,
             progress=False)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__)}
    killed = subprocess.run([sys.executable, "-c", script], env=env)

    assert killed.returncode == -signal.SIGKILL
    assert not target.exists()
    assert list(tmp_path.glob(".s.zarr.tmp-*"))  # the half-written buffers
    with pytest.raises(IncompleteStoreError):
        open_store(target)

    _dump(tiny_models["gpt2"], target)
    assert open_store(target).n_texts == len(TEXTS)
    assert not list(tmp_path.glob(".s.zarr.tmp-*"))


def test_a_store_without_the_complete_mark_is_refused(tiny_models, tmp_path):
    import zarr

    _dump(tiny_models["gpt2"], tmp_path / "s.zarr")
    zarr.open_group(tmp_path / "s.zarr", mode="r+").attrs["complete"] = False
    with pytest.raises(IncompleteStoreError, match="incomplete"):
        open_store(tmp_path / "s.zarr")
