"""NelderMeadSampler behaviour in one process: convergence, parameter types, resume, failures, feeding, errors."""

from __future__ import annotations

import math
import time

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from core.errors import ConfigError, UserError
from core.hpo.samplers import NelderMeadCoefficients, NelderMeadSampler
from core.hpo.samplers.nelder_mead import ATTR
from core.hpo.samplers.space import UnitBox

optuna.logging.set_verbosity(optuna.logging.WARNING)


def box(d: int, lo: float = -5.0, hi: float = 5.0) -> dict[str, FloatDistribution]:
    return {f"x{i}": FloatDistribution(lo, hi) for i in range(d)}


def point(trial: optuna.trial.BaseTrial, d: int, lo: float = -5.0, hi: float = 5.0) -> np.ndarray:
    return np.array([trial.suggest_float(f"x{i}", lo, hi) for i in range(d)])


def sphere(x: np.ndarray) -> float:
    return float(np.sum((x - 1.0) ** 2))


def rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


@pytest.mark.parametrize(("d", "n_trials", "tol"), [(2, 250, 1e-8), (5, 1200, 1e-6), (10, 2000, 1e-3)])
def test_converges_on_sphere(d: int, n_trials: int, tol: float) -> None:
    study = optuna.create_study(sampler=NelderMeadSampler(box(d)))
    study.optimize(lambda t: sphere(point(t, d)), n_trials=n_trials)
    assert study.best_value < tol
    np.testing.assert_allclose([study.best_params[f"x{i}"] for i in range(d)], np.ones(d), atol=math.sqrt(tol) * 3)


@pytest.mark.parametrize(("d", "n_trials", "tol"), [(2, 400, 1e-8), (5, 2500, 1e-4)])
def test_converges_on_rosenbrock(d: int, n_trials: int, tol: float) -> None:
    study = optuna.create_study(sampler=NelderMeadSampler(box(d, -2, 2)))
    study.optimize(lambda t: rosenbrock(point(t, d, -2, 2)), n_trials=n_trials)
    assert study.best_value < tol


def test_int_step_and_log_parameters_stay_valid_and_converge() -> None:
    space = {
        "lr": FloatDistribution(1e-5, 1.0, log=True),
        "units": IntDistribution(1, 512, log=True),
        "layers": IntDistribution(1, 12),
        "dropout": FloatDistribution(0.0, 0.5, step=0.05),
    }

    def objective(t: optuna.trial.Trial) -> float:
        lr = t.suggest_float("lr", 1e-5, 1.0, log=True)
        units = t.suggest_int("units", 1, 512, log=True)
        layers = t.suggest_int("layers", 1, 12)
        dropout = t.suggest_float("dropout", 0.0, 0.5, step=0.05)
        return (math.log10(lr) + 3) ** 2 + (math.log2(units) - 6) ** 2 + (layers - 4) ** 2 + (10 * (dropout - 0.2)) ** 2

    study = optuna.create_study(sampler=NelderMeadSampler(space))
    study.optimize(objective, n_trials=300)
    for trial in study.trials:
        assert isinstance(trial.params["units"], int) and 1 <= trial.params["units"] <= 512
        assert isinstance(trial.params["layers"], int) and 1 <= trial.params["layers"] <= 12
        assert 1e-5 <= trial.params["lr"] <= 1.0
        assert any(abs(trial.params["dropout"] - 0.05 * k) < 1e-9 for k in range(11))
    best = study.best_params
    assert (best["units"], best["layers"], round(best["dropout"], 9)) == (64, 4, 0.2)
    assert abs(math.log10(best["lr"]) + 3) < 0.05


def test_log_parameters_map_in_log_space_for_enqueued_values_too() -> None:
    unit_box = UnitBox({"lr": FloatDistribution(1e-6, 1.0, log=True), "n": IntDistribution(1, 1024, log=True)})
    # 1e-3 is halfway between 1e-6 and 1 in log space, 32 halfway between 1 and 1024
    np.testing.assert_allclose(unit_box.to_unit({"lr": 1e-3, "n": 32}), [0.5, 0.5])
    assert unit_box.to_params(np.array([0.5, 0.5])) == {"lr": pytest.approx(1e-3), "n": 32}


def run_serial(storage: optuna.storages.BaseStorage, n: int, fresh_sampler_each_trial: bool, **kwargs: object) -> list:
    study = optuna.create_study(storage=storage, sampler=NelderMeadSampler(box(3), seed=3, **kwargs))
    for _ in range(n):
        if fresh_sampler_each_trial:  # a new process resuming the study
            study = optuna.load_study(
                study_name=study.study_name, storage=storage, sampler=NelderMeadSampler(box(3), seed=3, **kwargs)
            )
        trial = study.ask()
        x = point(trial, 3)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        if trial.number % 11 == 5:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, rosenbrock(x / 2.5) + (0.1 if kind == "b" else 0.0))
    return [(t.params, t.state, t.system_attrs.get(ATTR)) for t in study.trials]


def test_resumed_after_every_trial_equals_an_uninterrupted_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    uninterrupted = run_serial(optuna.storages.InMemoryStorage(), 100, fresh_sampler_each_trial=False)
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    resumed = run_serial(storage, 100, fresh_sampler_each_trial=True)
    assert resumed == uninterrupted
    # and a run with the same seed in the same order is the same run (categoricals included)
    assert run_serial(optuna.storages.InMemoryStorage(), 100, fresh_sampler_each_trial=False) == uninterrupted


def test_failed_and_pruned_trials_count_as_worst_and_the_run_converges() -> None:
    rng = np.random.default_rng(0)
    d = 4

    def objective(t: optuna.trial.Trial) -> float:
        x = point(t, d)
        roll = rng.random()
        if roll < 0.10:
            raise RuntimeError("injected failure")
        if roll < 0.15:
            raise optuna.TrialPruned()
        return sphere(x)

    study = optuna.create_study(sampler=NelderMeadSampler(box(d)))
    study.optimize(objective, n_trials=900, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) > 50 and states.count(TrialState.PRUNED) > 25
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    assert study.best_value < 1e-6


def test_a_failed_first_vertex_is_replaced() -> None:
    study = optuna.create_study(sampler=NelderMeadSampler(box(2)))
    for n in range(3):  # initial simplex; the first vertex fails
        trial = study.ask()
        x = point(trial, 2)
        if n == 0:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, sphere(x))
    trial = study.ask()
    assert study._storage.get_trial_system_attrs(trial._trial_id)[ATTR]["key"] == "1:r"  # away from the failure
    failed = study.trials[0].params
    reflected = point(trial, 2)
    others = np.array([[t.params["x0"], t.params["x1"]] for t in study.trials[1:3]])
    np.testing.assert_allclose(reflected, 2 * others.mean(axis=0) - [failed["x0"], failed["x1"]])


def test_good_enqueued_points_enter_the_simplex_bad_ones_do_not() -> None:
    sampler = NelderMeadSampler(box(2), x0={"x0": -4.0, "x1": -4.0}, initial_step=0.05)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: sphere(point(t, 2)), n_trials=6)
    study.enqueue_trial({"x0": -5.0, "x1": -5.0})  # worse than every vertex
    study.enqueue_trial({"x0": 1.1, "x1": 0.9})  # far better than anything seen
    study.optimize(lambda t: sphere(point(t, 2)), n_trials=3)
    params, values = sampler.simplex(study)  # type: ignore[misc]
    assert params[0] == pytest.approx({"x0": 1.1, "x1": 0.9}) and values[0] == pytest.approx(0.02)
    assert {"x0": -5.0, "x1": -5.0} not in params
    study.optimize(lambda t: sphere(point(t, 2)), n_trials=100)
    assert study.best_value < 1e-8


def test_restarts_keep_improving_a_multimodal_function() -> None:
    def rastrigin(x: np.ndarray) -> float:
        return float(10 * x.size + np.sum(x**2 - 10 * np.cos(2 * np.pi * x)))

    without = optuna.create_study(sampler=NelderMeadSampler(box(2), restarts=False))
    without.optimize(lambda t: rastrigin(point(t, 2)), n_trials=1500)
    sampler = NelderMeadSampler(box(2))
    with_restarts = optuna.create_study(sampler=sampler)
    with_restarts.optimize(lambda t: rastrigin(point(t, 2)), n_trials=1500)
    run = next(iter(sampler._runs.values()))
    assert run.planner.stats.restarts >= 3
    assert with_restarts.best_value < without.best_value


def test_categorical_parameters_use_the_sub_sampler_and_maximize_works() -> None:
    sub = optuna.samplers.RandomSampler(seed=1)
    sampler = NelderMeadSampler(box(2), sub_sampler=sub)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(t: optuna.trial.Trial) -> float:
        x = point(t, 2)
        bonus = {"a": 0.0, "b": 1.0}[t.suggest_categorical("c", ["a", "b"])]
        return -sphere(x) + bonus

    study.optimize(objective, n_trials=300)
    assert {t.params["c"] for t in study.trials} == {"a", "b"}
    assert study.best_value > 1.0 - 1e-3  # the random categorical is noise to the simplex


def test_search_space_is_inferred_from_the_first_trial() -> None:
    study = optuna.create_study(sampler=NelderMeadSampler())
    study.optimize(lambda t: sphere(point(t, 3)), n_trials=400)
    assert study.trials[0].system_attrs[ATTR] == {"role": "probe"}
    assert study.trials[0].params == {"x0": 0.0, "x1": 0.0, "x2": 0.0}  # the centre of the box
    assert study.trials[1].system_attrs[ATTR]["key"] == "0:v0"
    assert study.best_value < 1e-6


def test_multi_objective_is_a_clear_error() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=NelderMeadSampler(box(2)))
    with pytest.raises(UserError, match="one objective"):
        study.ask()
    assert study.trials[0].state == TrialState.FAIL


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="contract"):
        NelderMeadCoefficients(contract=1.5)
    with pytest.raises(ConfigError, match="expand"):
        NelderMeadCoefficients(expand=0.5)
    with pytest.raises(ConfigError, match="bounds_handling"):
        NelderMeadSampler(box(2), bounds_handling="wrap")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="numeric"):
        NelderMeadSampler({"c": CategoricalDistribution(["a"])})
    study = optuna.create_study(sampler=NelderMeadSampler(box(2), x0={"x0": 9.0, "x1": 0.0}))
    with pytest.raises(ConfigError, match="x0"):
        study.ask()
    assert study.trials[0].state == TrialState.FAIL  # never left RUNNING without a role
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="x0"):
        study.ask()  # at once: no wait for the first trial to take a role
    assert time.perf_counter() - start < 5


def _serial_params(sampler: NelderMeadSampler, n: int = 60) -> list[tuple[float, ...]]:
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: sphere(point(t, 3)), n_trials=n)
    return [tuple(t.params[f"x{i}"] for i in range(3)) for t in study.trials]


def test_random_start_makes_seeds_differ_and_stays_reproducible() -> None:
    a = _serial_params(NelderMeadSampler(box(3), random_start=True, seed=1))
    b = _serial_params(NelderMeadSampler(box(3), random_start=True, seed=2))
    again = _serial_params(NelderMeadSampler(box(3), random_start=True, seed=1))
    assert a != b and a[:4] != b[:4]  # different initial simplices
    assert a == again
    # without it, a serial run does not depend on the seed (the simplex uses no randomness)
    assert _serial_params(NelderMeadSampler(box(3), seed=1)) == _serial_params(NelderMeadSampler(box(3), seed=2))
    study = optuna.create_study(sampler=NelderMeadSampler(box(3), random_start=True, seed=5))
    study.optimize(lambda t: sphere(point(t, 3)), n_trials=600)
    assert study.best_value < 1e-8


def test_random_restarts_differ_by_seed() -> None:
    from core.hpo.samplers.planner import random_simplex

    rng = np.random.default_rng
    s1, s2 = random_simplex(np.full(4, 0.3), 0.2, rng(1), True), random_simplex(np.full(4, 0.3), 0.2, rng(2), True)
    assert np.array_equal(s1[0], np.full(4, 0.3)) and not np.allclose(s1, s2)
    edges = [np.linalg.norm(s1[i] - s1[j]) for i in range(5) for j in range(i)]
    np.testing.assert_allclose(edges, 0.2)  # regular, inside the box here
    folded = random_simplex(np.full(3, 0.99), 0.5, rng(0))
    assert folded.min() >= 0 and folded.max() <= 1 and len({tuple(v) for v in folded.round(9)}) == 4


def test_four_async_workers_converge_without_random_points() -> None:
    """Simulated asynchronous workers (results told out of order): idle workers get guesses and local points."""
    import heapq

    def run(workers: int, budget: int = 300) -> tuple[float, optuna.Study]:
        study = optuna.create_study(sampler=NelderMeadSampler(box(3), seed=0))
        durations = np.random.default_rng(0).uniform(0.5, 1.5, size=budget)
        running: list = []
        clock, asked, told = 0.0, 0, 0
        while told < budget:
            while len(running) < workers and asked < budget:
                trial = study.ask()
                heapq.heappush(running, (clock + durations[asked], asked, trial, sphere(point(trial, 3))))
                asked += 1
            clock, _, trial, value = heapq.heappop(running)
            study.tell(trial, value)
            told += 1
        return study.best_value, study

    serial, _ = run(1)
    parallel, study = run(4)
    roles = [t.system_attrs[ATTR] for t in study.trials]
    # random points only while the first simplex is being evaluated (no best vertex to search around yet)
    assert sum(r.get("role") == "sub" for r in roles) <= 3
    assert any(r.get("guess") for r in roles) and any(r.get("role") == "local" for r in roles)
    assert parallel < 1e-6 and serial < 1e-6, (serial, parallel)
