"""Logging for workflow jobs: everything a job says goes to its log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def log_to(path: str | Path, level: int = logging.INFO) -> None:
    """Send logging, warnings and stderr (progress bars, tracebacks) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = open(path, "w", buffering=1, encoding="utf-8")
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
