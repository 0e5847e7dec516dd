"""Text sources: one policy for empty texts, duplicates and sampling."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from layerscope.texts import (
    EmptySourceError,
    build_source,
    builtin_names,
    read_texts,
    select,
    text_hash,
)


def test_empty_and_duplicate_texts_are_dropped_first_kept():
    ids, texts = select(["  a b ", "", "c", "a b", "   ", "d"], {})
    assert texts == ["a b", "c", "d"]
    assert ids.tolist() == [0, 2, 5]


def test_duplicates_can_be_kept():
    assert select(["x", "x"], {"dedupe": False})[1] == ["x", "x"]


def test_short_texts_are_dropped_by_min_words():
    assert select(["one two three", "one"], {"min_words": 2})[1] == ["one two three"]


def test_sampling_is_seeded_and_keeps_source_order():
    texts = [f"text {i}" for i in range(100)]
    ids_a, sample_a = select(texts, {"n": 10, "seed": 3})
    ids_b, sample_b = select(texts, {"n": 10, "seed": 3})
    ids_c, _ = select(texts, {"n": 10, "seed": 4})

    assert sample_a == sample_b and len(sample_a) == 10
    assert ids_a.tolist() == sorted(ids_a.tolist())
    assert ids_a.tolist() != ids_c.tolist()


def test_hash_depends_on_content_and_order():
    assert text_hash(["a", "b"]) == text_hash(["a", "b"])
    assert text_hash(["a", "b"]) != text_hash(["b", "a"])
    assert text_hash(["ab"]) != text_hash(["a", "b"])


@pytest.mark.parametrize("kind", ["txt", "jsonl", "jsonl.gz", "parquet"])
def test_every_file_kind_becomes_the_same_texts_file(tmp_path, kind):
    texts = ["first text", "second text", "", "first text"]
    path = tmp_path / f"in.{kind}"
    if kind == "txt":
        path.write_text("\n".join(texts))
    elif kind.startswith("jsonl"):
        lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
        opener = gzip.open if kind.endswith("gz") else open
        with opener(path, "wt") as out:
            out.write(lines)
    else:
        pd.DataFrame({"text": texts}).to_parquet(path)

    digest = build_source("s", {"path": str(path)}, tmp_path / "out.parquet")
    frame, stored = read_texts(tmp_path / "out.parquet")

    assert frame["text"].tolist() == ["first text", "second text"]
    assert frame["id"].tolist() == [0, 1]
    assert stored == digest == text_hash(["first text", "second text"])


def test_an_empty_source_fails_naming_it(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("\n\n")
    with pytest.raises(EmptySourceError, match="'blank'"):
        build_source("blank", {"path": str(path)}, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_shipped_corpora_have_real_text(tmp_path):
    names = builtin_names()
    assert {"wordnet_glosses", "kjv"} <= set(names)
    for name in names:
        build_source(name, {"builtin": name, "n": 50}, tmp_path / f"{name}.parquet")
        frame, _ = read_texts(tmp_path / f"{name}.parquet")
        assert len(frame) == 50
        assert frame["text"].str.split().str.len().mean() > 4
