"""The Optuna layer: reference timings, no future leakage under every pruner, exact stops, determinism, options."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import optuna
import pytest

from core.errors import UserError
from core.hpo.simulator import Evaluation, Report, Simulator, simulate
from tests.core.hpo.simulator.reference import Instance, reference

optuna.logging.set_verbosity(optuna.logging.ERROR)
STEPS = (1, 2, 3, 4, 5, 6, 7, 8)


def tied_objective(trial: optuna.Trial) -> Generator[Report, None, Evaluation]:
    """Integer runtimes from the parameters: many exact ties."""
    x = trial.suggest_float("x", 0.0, 1.0)
    unit = float(1 + int(x * 4))
    for step in (1, 2, 3):
        yield Report(step=step, value=x * 10 / step, elapsed=unit * step)
    return Evaluation(values=x, runtime=unit * 4)


def test_tell_order_and_times_match_the_reference_with_ties() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3), pruner=optuna.pruners.NopPruner())
    result = simulate(study, tied_objective, n_workers=7, n_trials=60)
    elapsed = [[1.0 + int(t.params["x"] * 4)] for t in result.trials]
    instance = Instance(7, [[u[0], 2 * u[0], 3 * u[0], 4 * u[0]] for u in elapsed], [0.0] * 60, 60, None)
    want = reference(instance)
    assert result.order == want.order
    assert [t.worker for t in result.trials] == [want.worker[j] for j in range(60)]
    assert [t.start for t in result.trials] == pytest.approx([want.started[j] for j in range(60)], abs=1e-9)
    assert [t.end for t in result.trials] == pytest.approx([want.ended[j] for j in range(60)], abs=1e-9)
    assert len(result.order) - len({result.trials[n].end for n in result.order}) > 10  # ties happened


def test_pruned_trials_match_the_reference_when_cut_at_their_pruning_report() -> None:
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )
    result = simulate(study, tied_objective, n_workers=5, n_trials=50)
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned
    milestones = []
    for t in result.trials:
        unit = 1.0 + int(t.params["x"] * 4)
        full = [unit, 2 * unit, 3 * unit, 4 * unit]
        milestones.append(full[: len(t.reports)] if t.state == "PRUNED" else full)
    want = reference(Instance(5, milestones, [0.0] * 50, 50, None))
    assert result.order == want.order
    assert [t.end for t in result.trials] == pytest.approx([want.ended[j] for j in range(50)], abs=1e-9)
    for t in pruned:  # a pruned trial ends, and frees its worker, at its last report
        assert t.end == t.reports[-1][2]


def smooth_elapsed(params: dict[str, Any], step: int) -> float:
    return step * (10.0 + 90.0 * params["y"] + 3.0 * params["x"])


def smooth_objective(trial: optuna.Trial) -> Generator[Report, None, Evaluation]:
    """Continuous runtimes: no two events at the same simulated time."""
    params = {"x": trial.suggest_float("x", 0.0, 1.0), "y": trial.suggest_float("y", 0.0, 1.0)}
    loss = (params["x"] - 0.3) ** 2 + 0.5 * params["y"]
    for step in STEPS:
        # improving curves, except for x >= 0.6 whose curves get worse (for PatientPruner)
        value = loss * (1.0 + 2.0 / step) if params["x"] < 0.6 else loss * (0.5 + step / 8)
        yield Report(step=step, value=value, elapsed=smooth_elapsed(params, step))
    return Evaluation(values=loss, runtime=smooth_elapsed(params, len(STEPS)) + 1.0)


class Spy(optuna.pruners.BasePruner):
    """Logs, at every pruning decision, the simulated clock and every intermediate value in the study."""

    def __init__(self, inner: optuna.pruners.BasePruner, clock: Callable[[], float]) -> None:
        self.inner = inner
        self.clock = clock
        self.log: list[tuple[int, int, float, set[tuple[int, int]]]] = []

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        visible = {(t.number, s) for t in study.get_trials(deepcopy=False) for s in t.intermediate_values}
        assert trial.last_step is not None
        self.log.append((trial.number, trial.last_step, self.clock(), visible))
        return self.inner.prune(study, trial)


PRUNERS: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=4),
    "percentile": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=4),
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=8, reduction_factor=2),
    "patient": lambda: optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(n_startup_trials=4), patience=1),
    "wilcoxon": lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.2, n_startup_steps=2),
}


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_pruners_see_exactly_what_a_real_run_would_have_seen(name: str) -> None:
    holder: list[Simulator] = []
    spy = Spy(PRUNERS[name](), lambda: holder[0].now)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=11), pruner=spy)
    simulator = Simulator(study, smooth_objective, n_workers=6, n_trials=48)
    holder.append(simulator)
    result = simulator.run()
    by_number = {t.number: t for t in result.trials}
    report_time = {
        (t.number, step): t.start + smooth_elapsed(t.params, step) for t in result.trials for step, _, _ in t.reports
    }
    assert len(spy.log) == sum(len(t.reports) for t in result.trials)
    for number, step, now, visible in spy.log:
        assert now == pytest.approx(by_number[number].start + smooth_elapsed(by_number[number].params, step))
        future = [key for key in visible if report_time[key] > now + 1e-9]
        assert not future, f"decision of trial {number} at step {step} saw values from the future: {future[:3]}"
        expected = {key for key, at in report_time.items() if at <= now + 1e-9}
        assert visible == expected  # nothing missing either: a real run would have had these
    states = {t.state for t in result.trials}
    assert "PRUNED" in states and states <= {"COMPLETE", "PRUNED"}
    workers_free_at: dict[tuple[int, float], int] = {}
    for t in result.trials:
        workers_free_at[(t.worker, t.asked)] = t.number
    for t in result.trials:  # every ended trial's worker asks again right then, while trials remain
        if any(other.asked >= t.end for other in result.trials if other.number > t.number):
            later = [o for o in result.trials if o.worker == t.worker and o.number > t.number]
            if later:
                assert min(later, key=lambda o: o.number).asked >= t.end - 1e-9


def test_the_leakage_check_catches_a_naive_simulation() -> None:
    """An OptunaHub-style objective reports all its values at ask time: the same check must flag it."""
    holder: list[Simulator] = []
    spy = Spy(optuna.pruners.MedianPruner(n_startup_trials=4), lambda: holder[0].now)

    def naive(trial: optuna.Trial) -> Evaluation:
        params = {"x": trial.suggest_float("x", 0.0, 1.0), "y": trial.suggest_float("y", 0.0, 1.0)}
        loss = (params["x"] - 0.3) ** 2 + 0.5 * params["y"]
        for step in STEPS:
            trial.report(loss * (1.0 + 2.0 / step), step)
            if trial.should_prune():
                return Evaluation(values=loss, runtime=smooth_elapsed(params, step))
        return Evaluation(values=loss, runtime=smooth_elapsed(params, len(STEPS)) + 1.0)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2), pruner=spy)
    simulator = Simulator(study, naive, n_workers=6, n_trials=48)
    holder.append(simulator)
    result = simulator.run()
    by_number = {t.number: t for t in result.trials}
    leaking = 0
    for number, step, ask_time, visible in spy.log:
        true_now = ask_time + smooth_elapsed(by_number[number].params, step)
        leaking += any(
            by_number[n].start + smooth_elapsed(by_number[n].params, s) > true_now + 1e-9 for n, s in visible
        )
    assert leaking > len(spy.log) // 4


@pytest.mark.parametrize("n_workers", [1, 3, 16, 64])
def test_stops_at_exactly_n_trials_and_leaves_nothing_running(n_workers: int) -> None:
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.MedianPruner(n_startup_trials=2)
    )
    result = simulate(study, smooth_objective, n_workers=n_workers, n_trials=37, record_in_study=True)
    assert len(study.trials) == 37 == len(result.trials) == len(result.order)
    assert all(t.state.is_finished() for t in study.trials)
    assert sorted(result.order) == [t.number for t in study.trials]
    assert len({t.worker for t in result.trials}) == min(n_workers, 37)
    for t in study.trials:
        attrs = t.user_attrs["simulation"]
        record = result.trials[t.number]
        assert (attrs["worker"], attrs["start"], attrs["end"]) == (record.worker, record.start, record.end)


def test_time_budget_cuts_running_trials_and_asks_nothing_after_it() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    result = simulate(study, smooth_objective, n_workers=4, time_budget=1500.0)
    assert all(t.state.is_finished() for t in study.trials)
    assert all(t.asked < 1500.0 and t.end <= 1500.0 for t in result.trials)
    cut = [t for t in result.trials if t.cut]
    assert cut and all(t.state == "FAIL" and t.end == 1500.0 for t in cut)
    assert len(cut) <= 4 and result.end_time == 1500.0
    complete = [t for t in result.trials if t.state == "COMPLETE"]
    assert complete and all(t.end <= 1500.0 for t in complete)


def run_once(seed: int) -> tuple[str, list[Any]]:
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=seed), pruner=optuna.pruners.SuccessiveHalvingPruner()
    )
    result = simulate(study, smooth_objective, n_workers=5, n_trials=40)
    return result.to_csv_text(), [(t.params, t.user_attrs, t.intermediate_values, t.value) for t in study.trials]


def test_same_seed_gives_byte_identical_output() -> None:
    first, second, other = run_once(4), run_once(4), run_once(5)
    assert first[0] == second[0] and first[1] == second[1]
    assert first[0] != other[0]


def test_csv_export(tmp_path: Any) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    result = simulate(study, smooth_objective, n_workers=2, n_trials=5)
    path = result.to_csv(tmp_path / "out" / "trials.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("number,worker,asked,start,end,sampler_time,state,cut,n_reports,value_0,params_x")
    assert len(lines) == 6
    row = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    assert float(row["end"]) == result.trials[0].end and row["state"] == "COMPLETE"


def test_multi_objective_and_constrained_studies() -> None:
    def objective(trial: optuna.Trial) -> Evaluation:
        x, y = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
        return Evaluation(values=(x, (1 - x) ** 2 + y), runtime=1.0 + 5 * y, constraints=(x - 0.8,))

    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=0, population_size=8)
    )
    result = simulate(study, objective, n_workers=4, n_trials=40)
    assert all(t.state == optuna.trial.TrialState.COMPLETE and len(t.values) == 2 for t in study.trials)
    assert all(t.constraints == {"0": t.params["x"] - 0.8} for t in study.trials)
    assert study.best_trials and all(t.params["x"] <= 0.8 for t in study.best_trials)
    assert len(result.trials[0].values or ()) == 2

    def single(trial: optuna.Trial) -> Evaluation:
        x = trial.suggest_float("x", -2.0, 2.0)
        return Evaluation(values=x * x, runtime=1.0 + abs(x), constraints=(0.5 - x,))

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    simulate(study, single, n_workers=3, n_trials=40)
    feasible = [t for t in study.trials if t.user_attrs["constraints"][0] <= 0]
    assert feasible and study.best_trial.params["x"] >= 0.5  # best_trial honours constraints


def test_checkpoint_resume_charges_only_the_extra_runtime() -> None:
    fidelities = iter([10, 30, 60, 20])

    def objective(trial: optuna.Trial) -> Evaluation:
        fidelity = next(fidelities)
        trial.suggest_int("epochs", fidelity, fidelity)
        return Evaluation(values=1.0 / fidelity, runtime=10.0 * fidelity, checkpoint_key="cfg", fidelity=fidelity)

    study = optuna.create_study()
    result = simulate(study, objective, n_workers=1, n_trials=4, checkpoints=True)
    # 100 s for 10 epochs; 30 epochs resume from 10: +200; 60 from 30: +300; 20 from 10: +100
    assert [t.end for t in result.trials] == [100.0, 300.0, 600.0, 700.0]
    assert [t.charged_runtime for t in result.trials] == [100.0, 200.0, 300.0, 100.0]
    fidelities = iter([10, 30])
    result = simulate(optuna.create_study(), objective, n_workers=2, n_trials=2, checkpoints=True)
    assert [t.end for t in result.trials] == [100.0, 300.0]  # started together: no checkpoint to resume from
    fidelities = iter([10, 30])
    result = simulate(optuna.create_study(), objective, n_workers=1, n_trials=2)
    assert [t.end for t in result.trials] == [100.0, 400.0]  # off by default


def test_sampler_cost_serializes_asks_like_the_reference() -> None:
    runtimes = [5.0, 3.0, 4.0, 1.0, 2.0, 6.0, 2.5, 1.5]

    def objective(trial: optuna.Trial) -> Evaluation:
        return Evaluation(values=0.0, runtime=runtimes[trial.number])

    result = simulate(optuna.create_study(), objective, n_workers=3, n_trials=8, sampler_cost=0.75)
    want = reference(Instance(3, [[r] for r in runtimes], [0.75] * 8, 8, None))
    assert result.order == want.order
    assert [t.start for t in result.trials] == pytest.approx([want.started[j] for j in range(8)])
    assert [t.end for t in result.trials] == pytest.approx([want.ended[j] for j in range(8)])
    assert all(t.sampler_time == 0.75 for t in result.trials)
    growing = simulate(optuna.create_study(), objective, n_workers=3, n_trials=8, sampler_cost=lambda n: 0.1 * n)
    assert [t.sampler_time for t in growing.trials][:3] == [0.0, 0.0, 0.0]
    assert max(t.sampler_time for t in growing.trials) > 0.0
    measured = simulate(optuna.create_study(), objective, n_workers=3, n_trials=8, sampler_cost="measured")
    assert all(t.sampler_time > 0 and t.start == t.asked + t.sampler_time for t in measured.trials)


def test_objective_errors_fail_the_trial_with_catch_and_leave_nothing_running_without() -> None:
    def objective(trial: optuna.Trial) -> Generator[Report, None, Evaluation]:
        x = trial.suggest_float("x", 0.0, 1.0)
        yield Report(step=1, value=x, elapsed=2.0)
        if trial.number % 3 == 1:
            raise ArithmeticError("diverged")
        return Evaluation(values=x, runtime=5.0)

    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    result = simulate(study, objective, n_workers=2, n_trials=9, catch=(ArithmeticError,))
    failed = [t for t in result.trials if t.state == "FAIL"]
    assert [t.number for t in failed] == [1, 4, 7] and all(t.end - t.start == 2.0 for t in failed)
    study = optuna.create_study()
    with pytest.raises(ArithmeticError):
        simulate(study, objective, n_workers=3, n_trials=9)
    assert all(t.state.is_finished() for t in study.trials)


def test_user_mistakes_are_one_line_errors() -> None:
    study = optuna.create_study()
    with pytest.raises(UserError, match="no end"):
        simulate(study, smooth_objective, n_workers=2)
    with pytest.raises(UserError, match="n_workers"):
        simulate(study, smooth_objective, n_workers=0, n_trials=1)
    with pytest.raises(UserError, match="returned float"):
        simulate(study, lambda t: 1.0, n_workers=1, n_trials=1)  # type: ignore[arg-type,return-value]

    def backwards(trial: optuna.Trial) -> Generator[Report, None, Evaluation]:
        yield Report(step=1, value=0.0, elapsed=5.0)
        return Evaluation(values=0.0, runtime=1.0)

    with pytest.raises(UserError, match="backwards"):
        simulate(optuna.create_study(), backwards, n_workers=1, n_trials=1)
    assert math.isfinite(0.0)
