"""split_tasks, ranks and the DDP environment, against brute-force references."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from core.jobs import get_rank, get_world_size, split_tasks
from core.jobs.launch import ddp_environment, first_host, master_port
from core.jobs.ranks import get_local_rank, n_array_elements, task_environment


@given(n_items=st.integers(0, 60), n_tasks=st.integers(1, 40), step=st.integers(1, 12))
def test_every_item_is_processed_once_in_order(n_items: int, n_tasks: int, step: int) -> None:
    items = list(range(n_items))
    n_elements = n_array_elements(n_tasks, step)
    assert n_elements == math.ceil(n_tasks / step)
    parts = [split_tasks(items, task_environment(e, n_tasks, step)) for e in range(n_elements)]
    assert [x for part in parts for x in part] == items
    if n_items == n_tasks:  # one item per task: element e gets exactly its tasks
        assert parts == [items[e * step : (e + 1) * step] for e in range(n_elements)]


def test_outside_an_array_every_item() -> None:
    assert split_tasks([1, 2, 3], environ={}) == [1, 2, 3]
    assert split_tasks([1, 2, 3], environ=task_environment(0, 1, 1)) == [1, 2, 3]
    assert split_tasks([1, 2, 3], environ={"TASK_INDEX": "x"}) == [1, 2, 3]


def test_ranks_from_each_launcher() -> None:
    cases = [
        ({}, (0, 1, 0)),
        ({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}, (5, 8, 1)),
        ({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "0"}, (2, 4, 0)),
        ({"MV2_COMM_WORLD_RANK": "3", "MV2_COMM_WORLD_SIZE": "6", "MV2_COMM_WORLD_LOCAL_RANK": "1"}, (3, 6, 1)),
        ({"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1"}, (1, 2, 1)),
        ({"SLURM_PROCID": "7", "SLURM_NTASKS": "16", "SLURM_LOCALID": "3"}, (7, 16, 3)),
        # torchrun inside a Slurm step: torchrun's variables win
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3"}, (3, 4, 3)),
    ]
    for env, expected in cases:
        assert (get_rank(env), get_world_size(env), get_local_rank(env)) == expected, env


def test_slurm_host_lists() -> None:
    assert first_host("node1") == "node1"
    assert first_host("gpu[07-08,10],cpu1") == "gpu07"
    assert first_host("a1,b[2-3]") == "a1"
    assert first_host("rack1-n[003,005]") == "rack1-n003"


def test_ddp_environment_from_slurm_and_openmpi() -> None:
    slurm = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_JOB_NODELIST": "n[3-4]",
        "SLURM_JOB_ID": "99",
    }
    env = ddp_environment(slurm)
    assert env["RANK"] == "5" and env["WORLD_SIZE"] == "8" and env["LOCAL_RANK"] == "1"
    assert env["NODE_RANK"] == "1" and env["LOCAL_WORLD_SIZE"] == "4" and env["MASTER_ADDR"] == "n3"
    assert env["MASTER_PORT"] == str(master_port({"SLURM_JOB_ID": "99"}))
    ompi = {
        "OMPI_COMM_WORLD_RANK": "6",
        "OMPI_COMM_WORLD_SIZE": "8",
        "OMPI_COMM_WORLD_LOCAL_RANK": "2",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
        "JOB_ID": "12",
    }
    env = ddp_environment(ompi)
    assert (env["RANK"], env["LOCAL_RANK"], env["NODE_RANK"], env["LOCAL_WORLD_SIZE"]) == ("6", "2", "1", "4")
    assert 20000 <= int(env["MASTER_PORT"]) < 40000
    assert master_port({"JOB_ID": "12"}) == master_port({"JOB_ID": "12"}) != master_port({"JOB_ID": "13"})
