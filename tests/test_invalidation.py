"""Only invalidated jobs rerun: what each kind of change to a finished run plans.

One tiny workflow (two tiny models, two sources, three metrics, one task)
runs once;
each test changes one thing, asks Snakemake for its plan (a dry run), and puts
the thing back.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from layerscope import open_store
from layerscope.texts import read_texts
from snakerun import command, planned, snakemake, write_config

pytestmark = pytest.mark.slow


def _base_config(tiny_models, folder: Path) -> dict:
    lines = folder / "lines.txt"
    lines.write_text("\n".join(f"sentence number {i} of the corpus" for i in range(10)))
    more = folder / "more.txt"
    more.write_text("\n".join(f"another text, the {i}th, longer" for i in range(6)))
    return {
        "models": {
            "gpt2": {"source": str(tiny_models["gpt2"]), "batch_size": 4},
            "bert": {"source": str(tiny_models["bert"])},
        },
        "sources": {
            "lines": {"path": str(lines), "tokens": True},
            "more": {"path": str(more)},
        },
        "metrics": {
            "run": ["prompt_entropy", "dataset_entropy", "infonce"],
            "sources": ["lines"],
        },
        "augment": {"n": 4},
        "tasks": {"WordNetNounCategoryClustering": {}},
    }


@pytest.fixture(scope="module")
def finished(tiny_models, tmp_path_factory):
    """A workflow folder after one complete run, and its config."""
    folder = tmp_path_factory.mktemp("finished")
    config = _base_config(tiny_models, folder)
    write_config(folder, config)
    run = snakemake(folder)
    assert run.returncode == 0, run.stderr[-3000:]
    return folder, config


@pytest.fixture
def change(finished):
    """Write a changed config for one test, then restore the original."""
    folder, config = finished

    def write(edit):
        changed = copy.deepcopy(config)
        edit(changed)
        write_config(folder, changed)
        return planned(folder)

    yield write
    write_config(folder, config)
    assert planned(finished[0]) == []


def _count(jobs) -> Counter:
    return Counter(rule for rule, _ in jobs)


def test_the_first_run_wrote_a_store_per_model_and_source(finished):
    folder, _ = finished
    for model in ("gpt2", "bert"):
        lines = open_store(folder / f"results/activations/{model}/lines.zarr")
        more = open_store(folder / f"results/activations/{model}/more.zarr")
        assert (lines.n_texts, more.n_texts) == (10, 6)
        assert lines.has_tokens and not more.has_tokens
        assert (
            lines.attrs["text_hash"]
            == read_texts(folder / "results/texts/lines.parquet")[1]
        )
        log = (folder / f"results/logs/dump/{model}/lines.log").read_text()
        assert f"dumped {model}/lines: 10 texts" in log
        infonce = pd.read_parquet(
            folder / f"results/metrics/{model}/lines/infonce.parquet"
        )
        assert set(infonce["variant"]) == {"raw", "log_n"}
        raw = infonce[infonce["variant"] == "raw"]
        assert raw["layer"].tolist() == list(range(lines.n_layers))
        assert (infonce["n"] == 4).all()


def test_a_second_run_does_nothing(finished):
    folder, _ = finished
    assert planned(folder) == []
    again = snakemake(folder)
    assert "Nothing to be done" in again.stdout + again.stderr


METRIC_AGGREGATES = {"metrics_table": 1, "figure_metrics": 1}
PROBE_AGGREGATES = {"probing_tables": 1, "figure_scores": 1}
BOTH = {"metric_probing_tables": 1, "figure_correlations": 1}


def _jobs_of(jobs, key, value):
    """Jobs whose wildcard ``key`` is ``value``, as rule counts."""
    return Counter(rule for rule, wildcards in jobs if wildcards.get(key) == value)


def test_adding_a_model_runs_only_its_jobs(change, tiny_models):
    def add_llama(config):
        config["models"]["llama"] = {"source": str(tiny_models["llama"])}

    jobs = change(add_llama)
    per_model = {"figure_prompt_entropy": 1, "figure_task_heatmap": 1}
    # lines, more, views/lines and tasks/WordNetNounCategoryClustering
    assert _count(jobs) == {
        "dump": 4,
        "metric": 3,
        "probe": 1,
        **per_model,
        **METRIC_AGGREGATES,
        **PROBE_AGGREGATES,
        **BOTH,
    }
    assert _jobs_of(jobs, "model", "llama") == {
        "dump": 4,
        "metric": 3,
        "probe": 1,
        **per_model,
    }


def test_adding_a_source_runs_only_its_jobs(change, finished):
    folder, _ = finished

    def add_source(config):
        (folder / "third.txt").write_text("a third source\nwith two texts\n")
        config["sources"]["third"] = {"path": str(folder / "third.txt")}

    jobs = change(add_source)
    assert _count(jobs) == {"texts": 1, "dump": 2}
    assert _jobs_of(jobs, "textset", "third")["dump"] == 2


def test_measuring_one_more_source_runs_only_its_jobs(change):
    jobs = change(lambda config: config["metrics"]["sources"].append("more"))
    # prompt entropy needs tokens, which "more" does not store
    assert _count(jobs) == {
        "augment": 1,
        "dump": 2,
        "metric": 4,
        **METRIC_AGGREGATES,
        **BOTH,
    }
    assert _jobs_of(jobs, "textset", "views/more")["dump"] == 2
    assert _jobs_of(jobs, "source", "more") == {
        "augment": 1,
        "metric": 4,
        "figure_metrics": 1,
    }


def test_adding_a_task_runs_only_its_jobs(change):
    def add_task(config):
        config["tasks"]["WordNetSameSensePairClassification"] = {}

    jobs = change(add_task)
    assert _count(jobs) == {
        "task_texts": 1,
        "dump": 2,
        "probe": 2,
        "figure_task_heatmap": 2,
        **PROBE_AGGREGATES,
        **BOTH,
    }
    assert _jobs_of(jobs, "task", "WordNetSameSensePairClassification") == {
        "task_texts": 1,
        "probe": 2,
    }


def test_adding_a_metric_runs_only_that_metric(change):
    jobs = change(lambda config: config["metrics"]["run"].append("curvature"))
    assert _count(jobs) == {"metric": 2, **METRIC_AGGREGATES, **BOTH}
    assert _jobs_of(jobs, "metric", "curvature") == {"metric": 2}


def test_changing_one_model_setting_reruns_only_that_model(change):
    def smaller_batches(config):
        config["models"]["gpt2"]["batch_size"] = 2

    jobs = change(smaller_batches)
    per_model = {"figure_prompt_entropy": 1, "figure_task_heatmap": 1}
    assert _count(jobs) == {
        "dump": 4,
        "metric": 3,
        "probe": 1,
        **per_model,
        **METRIC_AGGREGATES,
        **PROBE_AGGREGATES,
        **BOTH,
    }
    assert _jobs_of(jobs, "model", "gpt2") == {
        "dump": 4,
        "metric": 3,
        "probe": 1,
        **per_model,
    }


def test_changing_a_metric_setting_reruns_only_that_metric(change):
    def other_alpha(config):
        config["metrics"]["prompt_entropy"] = {"alpha": 2.0}

    jobs = change(other_alpha)
    assert _count(jobs) == {
        "metric": 2,
        "figure_prompt_entropy": 2,
        **METRIC_AGGREGATES,
        **BOTH,
    }
    assert _jobs_of(jobs, "metric", "prompt_entropy") == {"metric": 2}


def test_changing_a_key_no_rule_uses_reruns_nothing(change):
    def more_memory(config):
        config["models"]["gpt2"]["mem_mb"] = 12000
        config["models"]["bert"]["runtime"] = 240

    assert change(more_memory) == []


ALL_METRIC_JOBS = {"metric": 6, "figure_prompt_entropy": 2, **METRIC_AGGREGATES, **BOTH}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("measure.py", ALL_METRIC_JOBS),
        (
            "augment.py",
            {"augment": 1, "dump": 2, "metric": 2, **METRIC_AGGREGATES, **BOTH},
        ),
        (
            "probing.py",
            {"probe": 2, "figure_task_heatmap": 2, **PROBE_AGGREGATES, **BOTH},
        ),
        (
            "figures.py",
            {
                "figure_metrics": 1,
                "figure_prompt_entropy": 2,
                "figure_scores": 1,
                "figure_task_heatmap": 2,
                "figure_correlations": 1,
            },
        ),
        (
            "extract.py",
            {
                "dump": 8,
                "probe": 2,
                "figure_task_heatmap": 2,
                **ALL_METRIC_JOBS,
                **PROBE_AGGREGATES,
            },
        ),
    ],
)
def test_editing_a_stage_module_reruns_that_stage_and_below(finished, module, expected):
    folder, _ = finished
    path = REPO / "src" / "layerscope" / module
    before, text = path.stat(), path.read_text()
    # an edit: Snakemake reruns on a changed checksum, not on a mere touch
    path.write_text(text + "# an edit\n")
    try:
        jobs = planned(folder)
    finally:
        path.write_text(text)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert _count(jobs) == expected


def test_a_killed_run_leaves_nothing_taken_as_finished(finished, tiny_models, tmp_path):

    reference, config = finished
    write_config(tmp_path, config)
    run_command = command(tmp_path, cores=1)

    for stage in ("dump", "metric", "probe"):
        process = subprocess.Popen(
            run_command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        logs = tmp_path / "results" / "logs" / stage
        deadline = time.monotonic() + 300
        while not list(logs.rglob("*.log")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        # a SIGKILLed Snakemake cannot release its lock; --unlock clears it
        assert snakemake(tmp_path, "--unlock").returncode == 0

    run = snakemake(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    for model in ("gpt2", "bert"):
        for source in ("lines", "more"):
            name = f"results/activations/{model}/{source}.zarr"
            resumed, uninterrupted = (
                open_store(tmp_path / name),
                open_store(reference / name),
            )
            for layer in range(uninterrupted.n_layers):
                np.testing.assert_array_equal(
                    resumed.pooled(layer), uninterrupted.pooled(layer)
                )
        for metric in ("prompt_entropy", "dataset_entropy", "infonce"):
            name = f"results/metrics/{model}/lines/{metric}.parquet"
            pd.testing.assert_frame_equal(
                pd.read_parquet(tmp_path / name), pd.read_parquet(reference / name)
            )
        name = f"results/probing/{model}/WordNetNounCategoryClustering.parquet"
        columns = ["model", "task", "layer", "depth", "main_score"]
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / name)[columns],
            pd.read_parquet(reference / name)[columns],
        )


def test_a_second_snakemake_on_the_same_folder_stops_at_the_lock(
    finished, tiny_models, tmp_path
):

    _, config = finished
    write_config(tmp_path, config)
    run_command = command(tmp_path, cores=1)
    first = subprocess.Popen(
        run_command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while (
            not list((tmp_path / ".snakemake" / "locks").glob("*"))
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        second = snakemake(tmp_path)
        still_running = first.poll() is None
        # the refused run must leave the first run's lock where it was
        lock_kept = bool(list((tmp_path / ".snakemake" / "locks").glob("*")))
    finally:
        # the first run has made its point by holding the lock: stop it rather
        # than wait minutes for a workflow this test does not look at
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=120)
    assert still_running, "the first Snakemake ended before the second one started"
    assert lock_kept, "the second Snakemake removed the first one's lock"
    assert second.returncode != 0
    assert "cannot be locked" in second.stderr
