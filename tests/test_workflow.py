"""The workflow end to end on tiny models: a store per (model, source), then nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from layerscope import open_store
from layerscope.texts import read_texts
from snakerun import planned_jobs, snakemake, write_config


@pytest.mark.slow
def test_a_finished_run_has_nothing_left_to_do(tiny_models, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(f"sentence number {i} of the corpus" for i in range(12))
    )
    write_config(
        tmp_path,
        {
            "models": {
                "gpt2": {"source": str(tiny_models["gpt2"]), "batch_size": 4},
                "llama": {"source": str(tiny_models["llama"]), "final_norm": False},
            },
            "sources": {
                "lines": {"path": str(corpus), "tokens": True},
                "few": {"path": str(corpus), "n": 5, "seed": 1},
            },
            "metrics": {
                "run": ["prompt_entropy", "dataset_entropy", "lidar"],
                "sources": ["lines"],
                "lidar": {"views": 4},
            },
            "augment": {"n": 6},
        },
    )

    assert planned_jobs(tmp_path) == {
        "all": 1,
        "texts": 2,
        "dump": 4,
        "augment": 1,
        "dump_views": 2,
        "metric": 6,
    }
    run = snakemake(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    for model in ("gpt2", "llama"):
        lines = open_store(tmp_path / f"results/activations/{model}/lines.zarr")
        few = open_store(tmp_path / f"results/activations/{model}/few.zarr")
        assert (lines.n_texts, few.n_texts) == (12, 5)
        assert lines.has_tokens and not few.has_tokens
        _, digest = read_texts(tmp_path / "results/texts/few.parquet")
        assert few.attrs["text_hash"] == digest
        log = (tmp_path / f"results/logs/dump/{model}/lines.log").read_text()
        assert f"dumped {model}/lines: 12 texts" in log

        lidar = pd.read_parquet(
            tmp_path / f"results/metrics/{model}/lines/lidar.parquet"
        )
        assert lidar["layer"].tolist() == list(range(lines.n_layers))
        assert (lidar["n"] == 6).all()

    assert planned_jobs(tmp_path) == {}
    again = snakemake(tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
