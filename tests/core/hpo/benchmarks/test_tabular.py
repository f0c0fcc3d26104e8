"""The tabular benchmark adapter: CSV and HDF5 tables, runtimes, errors, and a simulation on a table."""

from __future__ import annotations

import itertools
from pathlib import Path

import h5py
import numpy as np
import optuna
import pytest

from core.errors import UserError
from core.hpo.benchmarks import TabularBenchmark
from core.hpo.simulator import benchmark_objective, simulate

optuna.logging.set_verbosity(optuna.logging.ERROR)
LRS, DEPTHS, EPOCHS = (0.001, 0.01, 0.1), (2, 4, 8), (1, 2, 4, 8)


def rows() -> list[tuple[float, int, str, int, float, float]]:
    out = []
    for lr, depth, act in itertools.product(LRS, DEPTHS, ("relu", "tanh")):
        for epoch in EPOCHS:
            loss = abs(np.log10(lr) + 2) + 1 / depth + (0.1 if act == "tanh" else 0.0) + 1.0 / epoch
            out.append((lr, depth, act, epoch, loss, 7.0 * depth))  # seconds per epoch level
    return out


def write_csv(path: Path) -> Path:
    lines = ["lr,depth,act,epoch,loss,seconds"] + [",".join(map(str, r)) for r in rows()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_table(tmp_path: Path) -> None:
    bench = TabularBenchmark(
        write_csv(tmp_path / "t.csv"), ["lr", "depth", "act"], "epoch", ["loss"], "seconds", cumulative_runtime=False
    )
    assert bench.fidelities == EPOCHS
    assert bench.search_space["depth"].choices == DEPTHS and bench.search_space["act"].choices == ("relu", "tanh")
    result = bench.evaluate({"lr": 0.01, "depth": 4, "act": "relu"}, 4)
    assert result.values == pytest.approx((0.25 + 0.25,)) and result.runtime == 28.0 * 3  # three levels summed
    with pytest.raises(UserError, match="not in the table"):
        bench.evaluate({"lr": 0.5, "depth": 4, "act": "relu"}, 4)
    with pytest.raises(UserError, match="no column 'acc'"):
        TabularBenchmark(tmp_path / "t.csv", ["lr"], "epoch", ["acc"], "seconds")
    with pytest.raises(UserError, match="not found"):
        TabularBenchmark(tmp_path / "missing.csv", ["lr"], "epoch", ["loss"], "seconds")


def test_hdf5_tables_columns_and_compound(tmp_path: Path) -> None:
    data = rows()
    with h5py.File(tmp_path / "cols.h5", "w") as f:
        for i, name in enumerate(("lr", "depth", "act", "epoch", "loss", "seconds")):
            column = [r[i] for r in data]
            f[name] = np.array(column, dtype="S") if name == "act" else np.array(column)
    dtype = np.dtype([("lr", "f8"), ("depth", "i8"), ("act", "S4"), ("epoch", "i8"), ("loss", "f8"), ("seconds", "f8")])
    with h5py.File(tmp_path / "compound.h5", "w") as f:
        f["table"] = np.array([tuple(r) for r in data], dtype=dtype)
    a = TabularBenchmark(tmp_path / "cols.h5", ["lr", "depth", "act"], "epoch", ["loss"], "seconds")
    b = TabularBenchmark(tmp_path / "compound.h5", ["lr", "depth", "act"], "epoch", ["loss"], "seconds", group="table")
    point = {"lr": 0.1, "depth": 8, "act": "tanh"}
    assert a.evaluate(point, 2) == b.evaluate(point, 2)
    assert a.evaluate(point, 2).runtime == 56.0  # cumulative by default


def test_simulation_on_a_table_with_successive_halving(tmp_path: Path) -> None:
    bench = TabularBenchmark(
        write_csv(tmp_path / "t.csv"), ["lr", "depth", "act"], "epoch", ["loss"], "seconds", cumulative_runtime=False
    )
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
    )
    result = simulate(study, benchmark_objective(bench), n_workers=4, n_trials=30)
    assert len(result.order) == 30 and any(t.state == "PRUNED" for t in result.trials)
    for t in result.trials:
        want = bench.evaluate(t.params, EPOCHS[-1] if t.state == "COMPLETE" else t.reports[-1][0])
        assert t.end - t.start == pytest.approx(want.runtime)
        if t.state == "COMPLETE":
            assert t.values == want.values
    assert min(t.values[0] for t in result.trials if t.state == "COMPLETE") == pytest.approx(
        min(
            bench.evaluate({"lr": lr, "depth": d, "act": a}, 8).values[0]
            for lr, d, a in itertools.product(LRS, DEPTHS, ("relu", "tanh"))
        ),
        abs=0.3,
    )
