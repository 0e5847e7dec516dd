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


def command(folder: Path, *args: str, cores: int = 2) -> list[str]:
    """The command line that runs the repository's Snakefile in ``folder``."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(folder),
        "--cores",
        str(cores),
        *args,
    ]


def snakemake(
    folder: Path, *args: str, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile with ``folder`` as the working directory."""
    return subprocess.run(
        command(folder, *args), capture_output=True, text=True, timeout=timeout, env=env
    )


def planned(folder: Path, *args: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run would run, the target rule aside."""
    run = snakemake(folder, "-n", *args)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs, rule = [], None
    for line in (run.stdout + run.stderr).splitlines():
        match = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if match:
            rule = match.group(1)
            jobs.append((rule, {}))
        elif line.strip().startswith("wildcards:") and jobs:
            pairs = line.strip()[len("wildcards:") :].split(",")
            jobs[-1][1].update(p.strip().split("=", 1) for p in pairs if "=" in p)
    return [(rule, wildcards) for rule, wildcards in jobs if rule != "all"]
