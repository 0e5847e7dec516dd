"""Bad config gets one line naming the culprit, before any model loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO
from layerscope.config import ConfigError, validate_config

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("one text here\nanother text there\n")
    return path


@pytest.fixture
def config(tiny_models, corpus):
    return {
        "models": {"tiny": {"source": str(tiny_models["gpt2"])}},
        "sources": {"corpus": {"path": str(corpus)}},
    }


def _error(config) -> str:
    with pytest.raises(ConfigError) as raised:
        validate_config(config, SCHEMA)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_defaults_are_filled_in(config):
    checked = validate_config(config, SCHEMA)

    assert checked["results"] == "results"
    assert checked["models"]["tiny"]["batch_size"] == 32
    assert checked["models"]["tiny"]["final_norm"] is True
    assert checked["sources"]["corpus"]["tokens"] is False
    assert "batch_size" not in config["models"]["tiny"]  # the input is left alone


def test_unknown_key_is_named(config):
    config["models"]["tiny"]["batchsize"] = 8
    assert "'batchsize'" in _error(config)


def test_unknown_top_level_key_is_named(config):
    config["modles"] = {}
    assert "'modles'" in _error(config)


def test_negative_batch_size_is_named(config):
    config["models"]["tiny"]["batch_size"] = -4
    message = _error(config)
    assert "models.tiny.batch_size" in message and "-4" in message


def test_missing_model_folder_is_named(config, tmp_path):
    config["models"]["tiny"]["source"] = str(tmp_path / "nowhere")
    message = _error(config)
    assert "models.tiny.source" in message and "no such folder" in message


def test_missing_pip_model_package_is_named(config):
    config["models"]["tiny"]["source"] = "pip:no-such-model-package"
    assert "pip install no-such-model-package" in _error(config)


def test_malformed_hub_id_is_named(config):
    config["models"]["tiny"]["source"] = "not a hub id!"
    assert "models.tiny.source" in _error(config)


def test_empty_text_source_is_named(config, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n\n")
    config["sources"]["corpus"]["path"] = str(empty)
    message = _error(config)
    assert "sources.corpus" in message and "no text left" in message


def test_missing_text_file_is_named(config, tmp_path):
    config["sources"]["corpus"]["path"] = str(tmp_path / "missing.txt")
    assert "sources.corpus" in _error(config)


def test_source_with_two_origins_is_refused(config):
    config["sources"]["corpus"]["builtin"] = "kjv"
    assert "exactly one of builtin, path or dataset" in _error(config)


@pytest.mark.slow
def test_snakemake_stops_on_bad_config_before_any_job(config, tmp_path):
    import yaml

    config["models"]["tiny"]["batch_size"] = -1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(tmp_path),
            "--cores",
            "1",
        ],
        capture_output=True,
        text=True,
    )

    assert run.returncode != 0
    assert (
        "config: models.tiny.batch_size: -1 is less than the minimum of 1" in run.stderr
    )
    assert not (tmp_path / "results").exists()
