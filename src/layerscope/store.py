"""The activation store: one zarr group per (model, source).

Layout (see docs/store.md)::

    {model}/{source}.zarr/
        pooled/mean    (n_layers, n_texts, dim)   one layer per chunk row
        pooled/last    (n_layers, n_texts, dim)
        tokens         (n_layers, n_tokens, dim)  only where the source asks for it
        offsets        (n_texts + 1,) int64       text i: offsets[i]:offsets[i+1]
        n_tokens       (n_texts,) int64           real tokens seen per text

``n_layers`` is L + 1: index 0 is the embedding output, index L the last block
(docs/layers.md). A store is written under a temporary name and renamed only
when every array is complete, and its attrs carry ``complete: true``; a store
without it is never opened.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BytesCodec, ZstdCodec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
POOLINGS = ("mean", "last")
STORAGE_DTYPES = ("float32", "float16", "bfloat16")
_CHUNK_BYTES = 32 * 2**20  # upper bound on one chunk, before compression


class IncompleteStoreError(RuntimeError):
    """A store that was not finished (a killed dump) or is not a layerscope store."""


def _to_storage(array: np.ndarray, storage_dtype: str) -> np.ndarray:
    """float32 array -> the array as stored; bfloat16 is kept as its raw 16 bits."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if storage_dtype == "bfloat16":
        bits = array.view(np.uint32)
        rounding = ((bits >> 16) & 1) + 0x7FFF  # round to nearest even
        return ((bits + rounding) >> 16).astype(np.uint16)
    return array.astype(storage_dtype, copy=False)


def _from_storage(array: np.ndarray, storage_dtype: str) -> np.ndarray:
    """Stored array -> float32."""
    if storage_dtype == "bfloat16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32, copy=False)


def _numpy_dtype(storage_dtype: str) -> str:
    return "uint16" if storage_dtype == "bfloat16" else storage_dtype


def _row_chunk(n_rows: int, dim: int, itemsize: int) -> int:
    """Rows per chunk so that one chunk stays under _CHUNK_BYTES."""
    return int(max(1, min(n_rows, _CHUNK_BYTES // max(1, dim * itemsize))))


class StoreWriter:
    """Writes a store in a temporary folder; :meth:`finish` renames it into place.

    The activations of each batch arrive in length-sorted order, so they are
    scattered into disk-backed buffers (numpy memmaps inside the temporary
    folder) and copied into zarr one layer at a time at the end. Memory use is
    one layer of one array, whatever the corpus size.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_layers: int,
        dim: int,
        n_tokens: np.ndarray,
        store_tokens: bool,
        storage_dtype: str = "float32",
        attrs: dict | None = None,
    ):
        if storage_dtype not in STORAGE_DTYPES:
            raise ValueError(
                f"storage_dtype must be one of {STORAGE_DTYPES}, got {storage_dtype!r}"
            )
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.n_layers, self.dim = n_layers, dim
        self.n_tokens = np.asarray(n_tokens, dtype=np.int64)
        self.n_texts = len(self.n_tokens)
        self.offsets = np.concatenate([[0], np.cumsum(self.n_tokens)]).astype(np.int64)
        self.store_tokens = store_tokens
        self.storage_dtype = storage_dtype
        self.attrs = dict(attrs or {})

        for stale in self.path.parent.glob(f".{self.path.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed dump
        self.tmp.mkdir(parents=True)
        self._buffers = {
            f"pooled/{kind}": self._memmap(f"{kind}.buf", self.n_texts)
            for kind in POOLINGS
        }
        if store_tokens:
            self._buffers["tokens"] = self._memmap("tokens.buf", int(self.offsets[-1]))

    def _memmap(self, name: str, n_rows: int) -> np.memmap:
        shape = (self.n_layers, max(n_rows, 1), self.dim)
        return np.memmap(self.tmp / name, dtype=np.float32, mode="w+", shape=shape)

    def write_batch(
        self,
        text_index: np.ndarray,
        mean: np.ndarray,
        last: np.ndarray,
        tokens: list[np.ndarray] | None = None,
    ) -> None:
        """Store one batch.

        Parameters
        ----------
        text_index : (batch,) int
            Rows of the texts in the source.
        mean, last : (n_layers, batch, dim) float32
        tokens : list of (n_layers, n_tokens_i, dim), one per text, or None
        """
        self._buffers["pooled/mean"][:, text_index] = mean
        self._buffers["pooled/last"][:, text_index] = last
        if self.store_tokens:
            for i, vectors in zip(text_index, tokens):
                start, stop = self.offsets[i], self.offsets[i + 1]
                self._buffers["tokens"][:, start:stop] = vectors

    def finish(self) -> Path:
        """Copy the buffers into zarr, mark complete, rename into place."""
        root = zarr.open_group(self.tmp / "store.zarr", mode="w", zarr_format=3)
        itemsize = 2 if self.storage_dtype != "float32" else 4
        for name, buffer in self._buffers.items():
            n_rows = (
                self.n_texts if name.startswith("pooled") else int(self.offsets[-1])
            )
            array = root.create_array(
                name,
                shape=(self.n_layers, n_rows, self.dim),
                chunks=(1, _row_chunk(n_rows, self.dim, itemsize), self.dim),
                dtype=_numpy_dtype(self.storage_dtype),
                serializer=BytesCodec(),
                compressors=ZstdCodec(level=3),
            )
            for layer in range(self.n_layers):
                array[layer] = _to_storage(buffer[layer, :n_rows], self.storage_dtype)
        for name, values in (("offsets", self.offsets), ("n_tokens", self.n_tokens)):
            root.create_array(name, data=values, compressors=ZstdCodec(level=3))

        root.attrs.update(
            {
                **self.attrs,
                "format_version": FORMAT_VERSION,
                "n_layers": self.n_layers,
                "dim": self.dim,
                "n_texts": self.n_texts,
                "storage_dtype": self.storage_dtype,
                "has_tokens": self.store_tokens,
                "complete": True,
            }
        )
        self._buffers.clear()
        for buffer in self.tmp.glob("*.buf"):
            buffer.unlink()

        staged = self.tmp / "store.zarr"
        if self.path.exists():
            shutil.rmtree(self.path)
        staged.rename(self.path)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        self._buffers.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class ActivationStore:
    """Read access to a finished store, one layer at a time.

    Use :func:`open_store`. Nothing is read until asked for: ``pooled(layer)``
    reads one layer, ``tokens(layer, text)`` one text's rows of one layer.
    """

    path: Path
    root: zarr.Group

    @property
    def attrs(self) -> dict:
        return dict(self.root.attrs)

    @property
    def n_layers(self) -> int:
        """L + 1 hidden states: 0 = embedding output, L = last block."""
        return int(self.root.attrs["n_layers"])

    @property
    def last_layer(self) -> int:
        return self.n_layers - 1

    @property
    def dim(self) -> int:
        return int(self.root.attrs["dim"])

    @property
    def n_texts(self) -> int:
        return int(self.root.attrs["n_texts"])

    @property
    def has_tokens(self) -> bool:
        return bool(self.root.attrs["has_tokens"])

    @property
    def storage_dtype(self) -> str:
        return str(self.root.attrs["storage_dtype"])

    @property
    def offsets(self) -> np.ndarray:
        """(n_texts + 1,) int64: text i has token rows offsets[i]:offsets[i+1]."""
        return self.root["offsets"][:]

    @property
    def n_tokens(self) -> np.ndarray:
        """(n_texts,) int64: real (non-padding) tokens per text."""
        return self.root["n_tokens"][:]

    def depth(self, layer: int) -> float:
        """Relative depth layer / L in [0, 1]."""
        return layer / self.last_layer

    def _layer_index(self, layer: int) -> int:
        if not -self.n_layers <= layer < self.n_layers:
            raise IndexError(
                f"layer {layer} out of range for {self.path} ({self.n_layers} layers)"
            )
        return layer % self.n_layers

    def pooled(self, layer: int, kind: str = "mean") -> np.ndarray:
        """(n_texts, dim) float32 pooled vectors of one layer."""
        if kind not in POOLINGS:
            raise ValueError(f"kind must be one of {POOLINGS}, got {kind!r}")
        array = self.root[f"pooled/{kind}"]
        return _from_storage(array[self._layer_index(layer)], self.storage_dtype)

    def layer_tokens(self, layer: int) -> np.ndarray:
        """(n_tokens, dim) float32: every token of one layer, texts back to back."""
        self._require_tokens()
        return _from_storage(
            self.root["tokens"][self._layer_index(layer)], self.storage_dtype
        )

    def tokens(self, layer: int, text: int) -> np.ndarray:
        """(n_tokens_of_text, dim) float32: one text's token vectors at one layer."""
        self._require_tokens()
        if not 0 <= text < self.n_texts:
            raise IndexError(f"text {text} out of range ({self.n_texts} texts)")
        start, stop = self.root["offsets"][text : text + 2]
        block = self.root["tokens"][self._layer_index(layer), int(start) : int(stop)]
        return _from_storage(block, self.storage_dtype)

    def _require_tokens(self) -> None:
        if not self.has_tokens:
            raise ValueError(
                f"{self.path} holds pooled vectors only; "
                "set tokens: true on its source to store token vectors"
            )

    def __repr__(self) -> str:
        return (
            f"ActivationStore({str(self.path)!r}, model={self.attrs.get('model')!r}, "
            f"layers={self.n_layers}, texts={self.n_texts}, dim={self.dim})"
        )


def open_store(path: str | os.PathLike) -> ActivationStore:
    """Open a finished activation store for reading.

    Raises
    ------
    IncompleteStoreError
        If the path holds no finished layerscope store.
    """
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise IncompleteStoreError(f"no activation store at {path}")
    root = zarr.open_group(path, mode="r")
    if not root.attrs.get("complete"):
        raise IncompleteStoreError(f"{path} is incomplete (an interrupted dump?)")
    return ActivationStore(path=path, root=root)


def describe(path: str | os.PathLike) -> str:
    """The store's attrs as indented JSON, for logs and notebooks."""
    return json.dumps(open_store(path).attrs, indent=2, sort_keys=True)
