"""Lightning ``ClusterEnvironment``s for what Lightning lacks: SGE and PBS host files, and OpenMPI without mpi4py.

Lightning detects Slurm, torchrun (TorchElastic), Kubeflow, LSF and MPI through mpi4py by itself. This module
adds:

- :class:`SGEEnvironment`, :class:`PBSEnvironment`: one process per node (started by ``qrsh -inherit``,
  ``pbsdsh`` or a job script), Lightning starts the local ranks. The node rank is this host's place in the
  scheduler's host file (``PE_HOSTFILE`` / ``PBS_NODEFILE``), the main address its first host, the port is
  derived from the job id, so no rank needs to talk to another first.
- :class:`OpenMPIEnvironment`: every rank started by ``mpirun``; ranks from ``OMPI_COMM_WORLD_*``.

``MASTER_ADDR``, ``MASTER_PORT`` and ``NODE_RANK``, when set (the ``train`` mode of ``core.jobs`` sets them), win.
:func:`detect_cluster_environment` picks one of these only when Lightning would not detect its own;
``kakehashi train fit`` adds it to the trainer's plugins.

Example:
    >>> import os, tempfile
    >>> hostfile = os.path.join(tempfile.mkdtemp(), "pe_hostfile")
    >>> _ = open(hostfile, "w").write("node07 4 all.q@node07 UNDEFINED\\nnode08 4 all.q@node08 UNDEFINED\\n")
    >>> env = SGEEnvironment(environ={"JOB_ID": "42", "PE_HOSTFILE": hostfile}, hostname="node08.cluster")
    >>> env.main_address, env.node_rank(), env.hosts()
    ('node07', 1, ['node07', 'node08'])
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from lightning.fabric.plugins.environments.cluster_environment import ClusterEnvironment
from lightning.fabric.plugins.environments.lightning import LightningEnvironment

from core.jobs.launch import master_address, master_port


class _HostfileEnvironment(LightningEnvironment):
    """A scheduler that lists the job's hosts in a file named by an environment variable."""

    job_id_variable: ClassVar[str]
    hostfile_variable: ClassVar[str]

    def __init__(self, environ: Mapping[str, str] | None = None, hostname: str | None = None) -> None:
        super().__init__()
        self._environ = environ
        self._hostname = hostname

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @classmethod
    def detect(cls) -> bool:
        path = os.environ.get(cls.hostfile_variable)
        return bool(os.environ.get(cls.job_id_variable)) and bool(path) and Path(str(path)).is_file()

    def hosts(self) -> list[str]:
        """The job's hosts, in the host file's order, each once."""
        path = self.environ.get(self.hostfile_variable)
        if not path:
            raise RuntimeError(f"{self.hostfile_variable} is not set: not inside a {type(self).__name__} job")
        hosts: list[str] = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if fields and fields[0] not in hosts:
                hosts.append(fields[0])
        return hosts

    @property
    def main_address(self) -> str:
        return master_address(self.environ)

    @property
    def main_port(self) -> int:
        return master_port(self.environ)

    @property
    def creates_processes_externally(self) -> bool:
        return "LOCAL_RANK" in self.environ

    def local_rank(self) -> int:
        return int(self.environ.get("LOCAL_RANK", 0))

    def node_rank(self) -> int:
        if self.environ.get("NODE_RANK", "").isdigit():
            return int(self.environ["NODE_RANK"])
        hosts = [_short(host) for host in self.hosts()]
        me = _short(self._hostname or socket.gethostname())
        if me not in hosts:
            raise RuntimeError(f"this host ({me}) is not in {self.hostfile_variable} ({', '.join(hosts)})")
        return hosts.index(me)

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        n_hosts = len(self.hosts())
        if num_nodes != n_hosts:
            raise ValueError(
                f"the trainer has num_nodes={num_nodes} but the job's {self.hostfile_variable} lists {n_hosts} "
                f"host(s): set trainer.num_nodes={n_hosts}"
            )


class SGEEnvironment(_HostfileEnvironment):
    """Son of Grid Engine / Univa parallel environment jobs (``JOB_ID``, ``PE_HOSTFILE``)."""

    job_id_variable = "JOB_ID"
    hostfile_variable = "PE_HOSTFILE"


class PBSEnvironment(_HostfileEnvironment):
    """PBS Pro / OpenPBS / Torque jobs (``PBS_JOBID``, ``PBS_NODEFILE``: one line per slot)."""

    job_id_variable = "PBS_JOBID"
    hostfile_variable = "PBS_NODEFILE"


class OpenMPIEnvironment(ClusterEnvironment):
    """Ranks started by OpenMPI's ``mpirun``, read from ``OMPI_COMM_WORLD_*``; mpi4py is not needed.

    Node ranks assume the same number of ranks on every node (``mpirun``'s default mapping). The main address is
    ``MASTER_ADDR``, else localhost when all ranks share one node, else the first host of a Slurm, SGE or PBS
    allocation, else the host ``mpirun`` runs on.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._environ = environ

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @staticmethod
    def detect() -> bool:
        return "OMPI_COMM_WORLD_RANK" in os.environ and "OMPI_COMM_WORLD_SIZE" in os.environ

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        env = self.environ
        if env.get("MASTER_ADDR"):
            return env["MASTER_ADDR"]
        if self._local_size() == self.world_size():
            return "127.0.0.1"
        if any(env.get(v) for v in ("SLURM_JOB_NODELIST", "PE_HOSTFILE", "PBS_NODEFILE")):
            return master_address(env)
        # "jobid.vpid;tcp://10.0.0.1,172.16.0.1:port;..." of the mpirun process
        uri = env.get("OMPI_MCA_orte_hnp_uri", "")
        for part in uri.split(";")[1:]:
            if part.startswith("tcp://"):
                return part[len("tcp://") :].split(",")[0].rsplit(":", 1)[0]
        raise RuntimeError("cannot tell the main address of this mpirun job: set MASTER_ADDR")

    @property
    def main_port(self) -> int:
        env = dict(self.environ)
        env.setdefault("KAKEHASHI_JOB_ID", env.get("OMPI_MCA_ess_base_jobid", ""))
        return master_port(env)

    def world_size(self) -> int:
        return int(self.environ["OMPI_COMM_WORLD_SIZE"])

    def set_world_size(self, size: int) -> None:
        pass  # fixed by mpirun

    def global_rank(self) -> int:
        return int(self.environ["OMPI_COMM_WORLD_RANK"])

    def set_global_rank(self, rank: int) -> None:
        pass  # fixed by mpirun

    def local_rank(self) -> int:
        return int(self.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", 0))

    def node_rank(self) -> int:
        if self.environ.get("NODE_RANK", "").isdigit():
            return int(self.environ["NODE_RANK"])
        # OMPI_COMM_WORLD_NODE_RANK is not the node's index (it counts ranks on the node), so derive it
        return (self.global_rank() - self.local_rank()) // max(1, self._local_size())

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        if num_devices != self._local_size() or num_devices * num_nodes != self.world_size():
            raise ValueError(
                f"mpirun started {self.world_size()} rank(s), {self._local_size()} per node, but the trainer has "
                f"devices={num_devices} and num_nodes={num_nodes}: set trainer.devices={self._local_size()} "
                f"trainer.num_nodes={self.world_size() // max(1, self._local_size())}"
            )

    def _local_size(self) -> int:
        return int(self.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", self.world_size()))


def detect_cluster_environment() -> ClusterEnvironment | None:
    """The environment of this module that fits this process, or ``None`` where Lightning's own apply.

    Launchers that set ``RANK`` (torchrun, ``core.jobs``' train mode) are Lightning's; ``mpirun`` ranks are ours
    (even inside a Slurm allocation); then Slurm, LSF and MPI via mpi4py are Lightning's; then SGE, PBS.
    """
    from lightning.fabric.plugins.environments.lsf import LSFEnvironment
    from lightning.fabric.plugins.environments.mpi import MPIEnvironment
    from lightning.fabric.plugins.environments.torchelastic import TorchElasticEnvironment

    if "RANK" in os.environ:
        return None
    if OpenMPIEnvironment.detect():
        return OpenMPIEnvironment()
    # SLURMEnvironment.detect() itself, without its warning about an unused srun
    slurm = "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    if slurm or any(environment.detect() for environment in (TorchElasticEnvironment, LSFEnvironment, MPIEnvironment)):
        return None
    for ours in (SGEEnvironment, PBSEnvironment):
        if ours.detect():
            return ours()
    return None


def _short(host: str) -> str:
    return host.split(".")[0]


__all__ = ["OpenMPIEnvironment", "PBSEnvironment", "SGEEnvironment", "detect_cluster_environment"]
