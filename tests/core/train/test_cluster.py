"""Cluster environments read from the variables a scheduler or mpirun sets (set here by the tests)."""

from __future__ import annotations

from pathlib import Path

import lightning
import pytest

from core.jobs.launch import master_port
from core.train.cluster import OpenMPIEnvironment, PBSEnvironment, SGEEnvironment, detect_cluster_environment

_LAUNCHER_VARIABLES = (
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "SLURM_NTASKS", "SLURM_JOB_NAME", "SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_PROCID", "LSB_JOBID",
    "JOB_ID", "PE_HOSTFILE", "PBS_JOBID", "PBS_NODEFILE",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
)  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def pe_hostfile(tmp_path: Path) -> Path:
    path = tmp_path / "pe_hostfile"
    path.write_text("gpu07.cluster 4 gpu.q@gpu07 UNDEFINED\ngpu03.cluster 4 gpu.q@gpu03 UNDEFINED\n")
    return path


def test_sge_environment_from_the_pe_hostfile(pe_hostfile: Path) -> None:
    env = {"JOB_ID": "4711", "PE_HOSTFILE": str(pe_hostfile), "NSLOTS": "8"}
    first, second = SGEEnvironment(env, hostname="gpu07"), SGEEnvironment(env, hostname="gpu03.cluster")
    assert first.hosts() == ["gpu07.cluster", "gpu03.cluster"]
    assert (first.node_rank(), second.node_rank()) == (0, 1)
    assert first.main_address == second.main_address == "gpu07.cluster"
    assert first.main_port == second.main_port == master_port({"JOB_ID": "4711"})  # agreed without talking
    assert SGEEnvironment({**env, "JOB_ID": "4712"}).main_port != first.main_port
    assert not first.creates_processes_externally  # Lightning starts the local ranks
    assert SGEEnvironment({**env, "LOCAL_RANK": "2"}, hostname="gpu03").local_rank() == 2
    first.validate_settings(num_devices=4, num_nodes=2)
    with pytest.raises(ValueError, match="num_nodes=2"):
        first.validate_settings(num_devices=4, num_nodes=1)
    with pytest.raises(RuntimeError, match="not in PE_HOSTFILE"):
        SGEEnvironment(env, hostname="login1").node_rank()


def test_exported_variables_win(pe_hostfile: Path) -> None:
    env = {"JOB_ID": "1", "PE_HOSTFILE": str(pe_hostfile), "MASTER_ADDR": "10.0.0.9", "MASTER_PORT": "29400"}
    environment = SGEEnvironment({**env, "NODE_RANK": "1"}, hostname="elsewhere")
    assert (environment.main_address, environment.main_port, environment.node_rank()) == ("10.0.0.9", 29400, 1)


def test_pbs_environment_from_the_node_file(tmp_path: Path) -> None:
    nodefile = tmp_path / "nodes"
    nodefile.write_text("n1\nn1\nn2\nn2\nn3\nn3\n")  # one line per slot
    env = {"PBS_JOBID": "77.pbs-server", "PBS_NODEFILE": str(nodefile)}
    environment = PBSEnvironment(env, hostname="n3")
    assert environment.hosts() == ["n1", "n2", "n3"]
    assert (environment.node_rank(), environment.main_address) == (2, "n1")
    environment.validate_settings(num_devices=2, num_nodes=3)


def test_openmpi_environment_two_nodes_of_two() -> None:
    base = {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "OMPI_MCA_ess_base_jobid": "12345"}
    base["OMPI_MCA_orte_hnp_uri"] = "12344.0;tcp://10.1.2.3,172.17.0.1:41233;tcp6://[fd00::2]:33209"
    ranks = [
        OpenMPIEnvironment({**base, "OMPI_COMM_WORLD_RANK": str(r), "OMPI_COMM_WORLD_LOCAL_RANK": str(r % 2)})
        for r in range(4)
    ]
    assert [(e.global_rank(), e.local_rank(), e.node_rank()) for e in ranks] == [
        (0, 0, 0),
        (1, 1, 0),
        (2, 0, 1),
        (3, 1, 1),
    ]
    assert {e.main_address for e in ranks} == {"10.1.2.3"}  # the host mpirun runs on
    assert len({e.main_port for e in ranks}) == 1 and 20000 <= ranks[0].main_port < 40000
    assert all(e.world_size() == 4 and e.creates_processes_externally for e in ranks)
    ranks[0].set_global_rank(3)  # fixed by mpirun: Lightning's request is ignored
    assert ranks[0].global_rank() == 0
    ranks[0].validate_settings(num_devices=2, num_nodes=2)
    with pytest.raises(ValueError, match=r"trainer\.devices=2"):
        ranks[0].validate_settings(num_devices=1, num_nodes=4)


def test_openmpi_on_one_node_uses_localhost_and_master_addr_wins() -> None:
    env = {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}
    assert OpenMPIEnvironment(env).main_address == "127.0.0.1"
    assert OpenMPIEnvironment({**env, "OMPI_COMM_WORLD_LOCAL_SIZE": "1", "MASTER_ADDR": "n5"}).main_address == "n5"
    with pytest.raises(RuntimeError, match="MASTER_ADDR"):
        _ = OpenMPIEnvironment({**env, "OMPI_COMM_WORLD_LOCAL_SIZE": "1"}).main_address


def test_detection_order(clean_env: pytest.MonkeyPatch, pe_hostfile: Path) -> None:
    assert detect_cluster_environment() is None
    clean_env.setenv("JOB_ID", "5")
    clean_env.setenv("PE_HOSTFILE", str(pe_hostfile))
    assert isinstance(detect_cluster_environment(), SGEEnvironment)
    clean_env.setenv("OMPI_COMM_WORLD_RANK", "0")
    clean_env.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert isinstance(detect_cluster_environment(), OpenMPIEnvironment)  # mpirun inside the SGE job
    clean_env.setenv("RANK", "0")  # torchrun / core.jobs' launcher: Lightning's TorchElasticEnvironment
    assert detect_cluster_environment() is None


def test_slurm_is_left_to_lightning(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    nodefile = tmp_path / "nodes"
    nodefile.write_text("n1\n")
    clean_env.setenv("PBS_JOBID", "1")
    clean_env.setenv("PBS_NODEFILE", str(nodefile))
    assert isinstance(detect_cluster_environment(), PBSEnvironment)
    clean_env.setenv("SLURM_NTASKS", "2")
    assert detect_cluster_environment() is None


def test_a_trainer_uses_the_environment(clean_env: pytest.MonkeyPatch, pe_hostfile: Path) -> None:
    clean_env.setenv("JOB_ID", "5")
    clean_env.setenv("PE_HOSTFILE", str(pe_hostfile))
    environment = SGEEnvironment(hostname="gpu07")
    trainer = lightning.Trainer(
        accelerator="cpu", devices=1, num_nodes=2, strategy="ddp", plugins=[environment], logger=False
    )
    assert trainer.strategy.cluster_environment is environment  # type: ignore[attr-defined]
    assert trainer.num_nodes == 2
