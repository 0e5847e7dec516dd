"""Running the workflow on tiny models in a scratch folder, for the tests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def write_config(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(
    folder: Path, *args: str, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile with ``folder`` as the working directory."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(folder),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env
    )


def planned_jobs(folder: Path) -> dict[str, int]:
    """Rule -> job count of what a dry run would do."""
    run = snakemake(folder, "-n", "--quiet", "rules")
    assert run.returncode == 0, run.stderr
    counts = {}
    for line in (run.stdout + run.stderr).splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) not in ("total", "job"):
            counts[match.group(1)] = int(match.group(2))
    return counts
