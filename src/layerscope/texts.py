"""Text sources: where the texts come from, and the one file each becomes.

A source is written once to ``results/texts/{source}.parquet`` with columns
``id`` (the row's index in the original source) and ``text``, and a content
hash in the file's metadata that every store made from it records.

Policy, the same for every kind of source: texts are stripped of surrounding
whitespace; empty texts are dropped; exact duplicates are dropped (first one
kept) unless ``dedupe: false``; then, if ``n`` is set and smaller than what is
left, ``n`` texts are drawn with ``seed`` without replacement and kept in
source order. A source left with no text is an error.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from layerscope.files import atomic_path

log = logging.getLogger(__name__)

HASH_KEY = b"layerscope.text_hash"
SPEC_KEY = b"layerscope.source"


class EmptySourceError(ValueError):
    """A text source that yields no text."""


def builtin_names() -> list[str]:
    """Corpora that ship inside the package (``src/layerscope/data``)."""
    folder = resources.files("layerscope") / "data" / "corpora"
    if not folder.is_dir():
        return []
    return sorted(
        entry.name.split(".")[0]
        for entry in folder.iterdir()
        if entry.name.endswith((".parquet", ".jsonl.gz", ".txt"))
    )


def _read_builtin(name: str) -> list[str]:
    folder = resources.files("layerscope") / "data" / "corpora"
    for suffix in (".parquet", ".jsonl.gz", ".txt"):
        entry = folder / f"{name}{suffix}"
        if entry.is_file():
            with resources.as_file(entry) as path:
                return _read_file(path)
    raise ValueError(
        f"builtin corpus {name!r} does not exist; available: {builtin_names()}"
    )


def _read_file(path: Path, column: str = "text") -> list[str]:
    name = path.name
    if name.endswith(".parquet"):
        table = pq.read_table(path)
        if column not in table.column_names:
            raise ValueError(f"{path}: no column {column!r} ({table.column_names})")
        return [str(t) for t in table.column(column).to_pylist()]
    if name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as lines:
            rows = [json.loads(line) for line in lines if line.strip()]
        missing = [i for i, row in enumerate(rows) if column not in row]
        if missing:
            raise ValueError(f"{path}: line {missing[0] + 1} has no key {column!r}")
        return [str(row[column]) for row in rows]
    if name.endswith(".txt"):
        return path.read_text(encoding="utf-8").splitlines()
    raise ValueError(f"{path}: unsupported file type (use .txt, .jsonl or .parquet)")


def _read_hub(spec: dict) -> list[str]:
    import datasets

    data = datasets.load_dataset(
        spec["dataset"], spec.get("subset"), split=spec.get("split", "train")
    )
    column = spec.get("column", "text")
    texts = [str(t) for t in data[column]]
    if spec.get("drop_headings", False):
        # wikitext marks headings as " = Title = "
        texts = [t for t in texts if not t.strip().startswith("=")]
    return texts


def read_raw(spec: dict) -> list[str]:
    """The texts of a source entry before cleaning and sampling."""
    if "builtin" in spec:
        return _read_builtin(spec["builtin"])
    if "path" in spec:
        path = Path(spec["path"]).expanduser()
        if not path.exists():
            raise ValueError(f"text file {str(path)!r} does not exist")
        return _read_file(path, spec.get("column", "text"))
    if "dataset" in spec:
        return _read_hub(spec)
    raise ValueError("a text source needs one of builtin, path or dataset")


def select(texts: list[str], spec: dict) -> tuple[np.ndarray, list[str]]:
    """Clean, dedupe and sample; returns (ids in the raw source, texts)."""
    ids, kept, seen = [], [], set()
    min_words = int(spec.get("min_words", 0))
    for i, text in enumerate(texts):
        text = text.strip()
        if not text or len(text.split()) < min_words:
            continue
        if spec.get("dedupe", True):
            if text in seen:
                continue
            seen.add(text)
        ids.append(i)
        kept.append(text)

    n = spec.get("n")
    if n is not None and n < len(kept):
        rng = np.random.default_rng(int(spec.get("seed", 0)))
        chosen = np.sort(rng.choice(len(kept), size=int(n), replace=False))
        ids = [ids[i] for i in chosen]
        kept = [kept[i] for i in chosen]
    return np.asarray(ids, dtype=np.int64), kept


def text_hash(texts: list[str]) -> str:
    """sha256 of the texts in order, each followed by a NUL byte."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def write_texts(
    ids: np.ndarray, texts: list[str], path: str | Path, spec: dict | None = None
) -> str:
    """Write a texts file (atomically) and return its content hash."""
    digest = text_hash(texts)
    table = pa.table({"id": pa.array(ids, pa.int64()), "text": pa.array(texts)})
    table = table.replace_schema_metadata(
        {HASH_KEY: digest.encode(), SPEC_KEY: json.dumps(spec or {}).encode()}
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return digest


def build_source(name: str, spec: dict, path: str | Path) -> str:
    """Read, clean, sample and write one source; returns the content hash."""
    raw = read_raw(spec)
    ids, texts = select(raw, spec)
    if not texts:
        raise EmptySourceError(
            f"text source {name!r} has no text left "
            f"({len(raw)} raw texts, after dropping empty, short and duplicate ones)"
        )
    digest = write_texts(ids, texts, path, spec)
    log.info(
        "texts %s: %d of %d raw texts kept, hash %s, written to %s",
        name,
        len(texts),
        len(raw),
        digest[:12],
        path,
    )
    return digest


def read_texts(path: str | Path) -> tuple[pd.DataFrame, str]:
    """A texts file as a frame (id, text) and its content hash."""
    table = pq.read_table(path)
    digest = (table.schema.metadata or {}).get(HASH_KEY, b"").decode()
    return table.to_pandas(), digest


def build_views(
    texts_path: str | Path,
    out_path: str | Path,
    *,
    n_prompts: int | None,
    n_views: int,
    seed: int,
    recipe: dict,
) -> str:
    """Write the augmented views of (a seeded sample of) a texts file.

    The output is a texts file like any other, one row per (prompt, view),
    with two more columns: ``prompt`` (the row in ``texts_path``) and ``view``.
    The dump stage reads its ``text`` column; the view metrics its layout.
    """
    from layerscope.augment import AugmentConfig, make_views

    frame, _ = read_texts(texts_path)
    rows = np.arange(len(frame))
    if n_prompts is not None and n_prompts < len(frame):
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(frame), size=n_prompts, replace=False))
    prompts = frame["text"].to_numpy()[rows].tolist()
    views = make_views(
        prompts, n_views, seed=seed, config=AugmentConfig.from_dict(recipe)
    )

    flat = [view for per_prompt in views for view in per_prompt]
    digest = text_hash(flat)
    table = pa.table(
        {
            "id": pa.array(
                np.repeat(frame["id"].to_numpy()[rows], n_views), pa.int64()
            ),
            "text": pa.array(flat),
            "prompt": pa.array(np.repeat(rows, n_views), pa.int64()),
            "view": pa.array(np.tile(np.arange(n_views), len(rows)), pa.int64()),
        }
    )
    table = table.replace_schema_metadata({HASH_KEY: digest.encode()})
    with atomic_path(out_path) as tmp:
        pq.write_table(table, tmp)
    log.info(
        "views: %d prompts x %d views = %d texts, hash %s, written to %s",
        len(rows),
        n_views,
        len(flat),
        digest[:12],
        out_path,
    )
    return digest
