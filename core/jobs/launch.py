"""``train`` mode's launcher: give each process what PyTorch / Lightning DDP needs, then run the command.

``python -m core.jobs.launch --nprocs N -- CMD ...`` starts N local ranks of CMD (like ``torchrun`` on one node)
and exits with the first non-zero exit code. ``python -m core.jobs.launch -- CMD ...`` is one rank started by
``srun`` or ``mpirun``: it derives ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``NODE_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` from the scheduler's and the MPI library's variables and replaces itself with CMD.

Only the standard library is imported here: this runs on compute nodes at every rank's start.

Example:
    >>> env = ddp_environment({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1",
    ...                        "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "42"})
    >>> env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["NODE_RANK"], env["MASTER_ADDR"]
    ('3', '4', '1', '1', 'gpu07')
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Mapping, Sequence

from core.jobs.ranks import get_local_rank, get_rank, get_world_size

_JOB_ID_VARS = ("SLURM_JOB_ID", "JOB_ID", "PBS_JOBID", "KAKEHASHI_JOB_ID")


def first_host(nodelist: str) -> str:
    """The first host of a Slurm host list: ``gpu[07-08,10],cpu1`` → ``gpu07``."""
    head = nodelist.split(",")[0] if "[" not in nodelist.split(",")[0] else nodelist
    if "[" not in head:
        return head.strip()
    prefix, _, rest = head.partition("[")
    first = rest.split(",")[0].split("-")[0].rstrip("]")
    return prefix + first


def master_address(environ: Mapping[str, str]) -> str:
    """The host of rank 0: Slurm's node list, SGE's ``PE_HOSTFILE``, PBS's ``PBS_NODEFILE``, else this host."""
    if environ.get("MASTER_ADDR"):
        return environ["MASTER_ADDR"]
    if environ.get("SLURM_JOB_NODELIST"):
        return first_host(environ["SLURM_JOB_NODELIST"])
    for variable in ("PE_HOSTFILE", "PBS_NODEFILE"):
        path = environ.get(variable)
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as file:
                line = file.readline().split()
            if line:
                return line[0]
    return "127.0.0.1" if get_world_size(environ) == 1 else socket.gethostname()


def master_port(environ: Mapping[str, str]) -> int:
    """A port every rank of one job agrees on without talking: derived from the job id."""
    if environ.get("MASTER_PORT", "").isdigit():
        return int(environ["MASTER_PORT"])
    job_id = next((environ[v] for v in _JOB_ID_VARS if environ.get(v)), "")
    return 20000 + zlib.crc32(job_id.encode()) % 20000


def ddp_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``NODE_RANK`` (and ``GROUP_RANK``),
    ``MASTER_ADDR`` and ``MASTER_PORT`` of this process, from the launcher's variables."""
    rank, world, local = get_rank(environ), get_world_size(environ), get_local_rank(environ)
    local_size = next(
        (
            int(environ[v])
            for v in ("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE", "MPI_LOCALNRANKS")
            if environ.get(v, "").isdigit()
        ),
        0,
    )
    if environ.get("SLURM_NODEID", "").isdigit() and "RANK" not in environ:
        node = int(environ["SLURM_NODEID"])
    else:  # OpenMPI's OMPI_COMM_WORLD_NODE_RANK is a rank on the node, not the node's index: derive it
        node = rank // local_size if local_size else 0
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(local),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(local_size or world),
        "NODE_RANK": str(node),
        "GROUP_RANK": str(node),
        "MASTER_ADDR": master_address(environ),
        "MASTER_PORT": str(master_port(environ)),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_local_ranks(command: Sequence[str], nprocs: int) -> int:
    """Run ``nprocs`` ranks of ``command`` on this host; if one fails, stop the others. First non-zero code wins."""
    base = dict(os.environ)
    base.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(nprocs))
    base.update(LOCAL_WORLD_SIZE=str(nprocs), NODE_RANK="0", GROUP_RANK="0")
    children = [
        subprocess.Popen(list(command), env={**base, "RANK": str(i), "LOCAL_RANK": str(i)}) for i in range(nprocs)
    ]

    def forward(signum: int, _: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    first_failure = 0
    while any(c.poll() is None for c in children):
        for child in children:
            code = child.poll()
            if code is not None and code != 0 and first_failure == 0:
                first_failure = code if code > 0 else 128 - code
                forward(signal.SIGTERM, None)
        time.sleep(0.05)
    for child in children:
        if child.returncode != 0 and first_failure == 0:
            first_failure = child.returncode if child.returncode > 0 else 128 - child.returncode
    return first_failure


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.jobs.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nprocs", type=int, default=0, help="start this many local ranks (default: be one rank)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")
    if args.nprocs > 0:
        return run_local_ranks(command, args.nprocs)
    os.environ.update(ddp_environment(os.environ))
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
