"""A real single-node SLURM on this machine, from Debian's packages, for the tests.

munged, slurmctld and slurmd run as root with their state, spool, logs and
pid files in a scratch folder; client commands find the cluster through
``SLURM_CONF``, and through /etc/slurm/slurm.conf too: Snakemake's jobstep
plugin drops every ``SLURM_*`` variable, ``SLURM_CONF`` included, before its
nested ``srun``, which then only finds the default path (a host with a real
cluster config there is left alone and the test skipped). Without slurmdbd
there is no accounting, so the SLURM executor is told to ask ``squeue`` for
job states (``MinJobAge`` keeps finished jobs visible to it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARK = "# written by layerscope's tests/slurm_cluster.py\n"


class SlurmUnavailable(RuntimeError):
    """This host cannot run a SLURM node; the message says why."""


def _machine() -> tuple[int, int]:
    cpus = os.cpu_count() or 1
    memory = 1024
    for line in subprocess.run(
        ["slurmd", "-C"], capture_output=True, text=True
    ).stdout.split():
        if line.startswith("RealMemory="):
            memory = int(line.split("=")[1])
    return cpus, max(1024, memory - 1024)


def _config(folder: Path, cpus: int, memory: int, auth_info: str) -> str:
    return f"""\
ClusterName=layerscope
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo={auth_info}
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
SchedulerType=sched/backfill
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; ``env`` finds it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.munge_socket = self.folder / "munge" / "munge.socket.2"
        self.auth_info = f"socket={self.munge_socket}"

    def start(self, timeout: float = 60) -> SlurmCluster:
        missing = [
            d for d in (*DAEMONS, "sbatch", "squeue", "sinfo") if not shutil.which(d)
        ]
        if missing:
            raise SlurmUnavailable(f"not installed: {', '.join(missing)}")
        if os.geteuid() != 0:
            raise SlurmUnavailable("the daemons need root")
        for sub in ("state", "spool", "munge"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text().startswith(MARK):
            raise SlurmUnavailable(f"{SYSTEM_CONF} belongs to a real cluster")
        text = MARK + _config(self.folder, *_machine(), self.auth_info)
        self.conf.write_text(text)
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.write_text(text)

        self._start_munge()
        subprocess.run(["slurmctld"], env=self.env, check=True)
        subprocess.run(["slurmd", "-N", "localhost"], env=self.env, check=True)
        self._wait_idle(timeout)
        return self

    def _start_munge(self) -> None:
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create"], check=True)
        subprocess.run(
            [
                "munged",
                "--force",
                f"--socket={self.munge_socket}",
                f"--pid-file={self.folder / 'munge' / 'munged.pid'}",
                f"--log-file={self.folder / 'munge' / 'munged.log'}",
                f"--seed-file={self.folder / 'munge' / 'munged.seed'}",
            ],
            check=True,
        )

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            run = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"],
                env=self.env,
                capture_output=True,
                text=True,
            )
            state = run.stdout.strip()
            if state.startswith("idle"):
                return
            time.sleep(0.5)
        self.stop()
        raise SlurmUnavailable(
            f"the node did not come up (state {state!r}); {self.log_tail()}"
        )

    def log_tail(self) -> str:
        lines = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.folder / name
            if path.exists():
                lines += [
                    f"{name}: {line}" for line in path.read_text().splitlines()[-5:]
                ]
        return " | ".join(lines)

    def stop(self) -> None:
        pids = [
            self.folder / "slurmd.pid",
            self.folder / "slurmctld.pid",
            self.folder / "munge" / "munged.pid",
        ]
        for pid_file in pids:
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        if SYSTEM_CONF.exists() and SYSTEM_CONF.read_text().startswith(MARK):
            SYSTEM_CONF.unlink()
        time.sleep(1)
