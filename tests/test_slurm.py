"""The same workflow through a real single-node SLURM, equal to a local run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from slurm_cluster import SlurmCluster, SlurmUnavailable

from conftest import REPO
from layerscope import open_store
from snakerun import snakemake, write_config

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    try:
        running = SlurmCluster(folder).start()
    except SlurmUnavailable as why:
        print(f"SLURM test skipped: {why}")
        pytest.skip(f"slurmd cannot run here: {why}")
    yield running
    running.stop()


def _config(tiny_models, corpus):
    return {
        "models": {"gpt2": {"source": str(tiny_models["gpt2"]), "runtime": 5}},
        "sources": {"lines": {"path": str(corpus), "tokens": True}},
        "metrics": {"run": ["prompt_entropy", "infonce"], "lidar": {"views": 2}},
        "augment": {"n": 4},
    }


def test_the_workflow_runs_on_slurm_and_matches_a_local_run(
    cluster, tiny_models, tmp_path
):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"sentence number {i} of the corpus" for i in range(8)))
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    for folder in (on_slurm, local):
        write_config(folder, _config(tiny_models, corpus))

    run = snakemake(
        on_slurm,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-status-command",
        "squeue",
        "--set-resources",
        "dump:gpu=0",
        env=cluster.env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:] + cluster.log_tail()
    submitted = (run.stdout + run.stderr).count("has been submitted with SLURM jobid")
    assert submitted == 6  # texts, augment, 2 dumps (lines, views/lines), 2 metrics
    assert snakemake(local).returncode == 0

    store = "results/activations/gpt2/lines.zarr"
    slurm_store, local_store = open_store(on_slurm / store), open_store(local / store)
    for layer in range(local_store.n_layers):
        np.testing.assert_allclose(
            slurm_store.pooled(layer), local_store.pooled(layer), atol=1e-6
        )
    for metric in ("prompt_entropy", "infonce"):
        path = f"results/metrics/gpt2/lines/{metric}.parquet"
        pd.testing.assert_series_equal(
            pd.read_parquet(on_slurm / path)["value"],
            pd.read_parquet(local / path)["value"],
        )
