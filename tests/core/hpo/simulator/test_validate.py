"""Validate mode: a real run with threads sleeping scaled runtimes gives the simulated order, states and times."""

from __future__ import annotations

from collections.abc import Generator

import optuna

from core.hpo.simulator import Evaluation, Report
from core.hpo.simulator.validate import run_threaded, validate

optuna.logging.set_verbosity(optuna.logging.ERROR)
# simulated seconds; 2e-2 real seconds each: events land at least 60 ms apart (checked below), more than a loaded
# 2-core machine delays a thread's wake-up or a sampler's ask (at 2e-3, 6.7 ms apart, the order flipped under load)
TIME_SCALE = 2e-2
RUNTIMES = [230.0, 110.0, 370.0, 150.0, 290.0, 190.0, 410.0, 130.0, 330.0, 250.0, 170.0, 450.0]


def objective(trial: optuna.Trial) -> Generator[Report, None, Evaluation]:
    x = trial.suggest_float("x", 0.0, 1.0)
    runtime = RUNTIMES[trial.number]
    for step in (1, 2):
        yield Report(step=step, value=x + 1.0 / step, elapsed=runtime * step / 3)
    return Evaluation(values=x, runtime=runtime)


def make_study() -> optuna.Study:
    return optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )


def test_real_threads_agree_with_the_simulation() -> None:
    report = validate(make_study, objective, n_workers=3, n_trials=len(RUNTIMES), time_scale=TIME_SCALE)
    assert report.resolution * TIME_SCALE >= 5e-2  # events far enough apart for thread timing
    assert report.same_order, (report.summary(), report.simulated.order, report.real.order)
    assert report.same_states and report.order_agreement == 1.0
    assert report.max_time_error < 25.0  # half a second of real drift at most over the ~20 s run (quiet: ~0.02 s)
    assert {t.state for t in report.real.trials} == {"COMPLETE", "PRUNED"}
    sim_params = [t.params for t in report.simulated.trials]
    assert [t.params for t in report.real.trials] == sim_params  # the sampler saw the same history


def test_threaded_run_detects_a_wrong_order() -> None:
    """The comparison has teeth: two workers really run in parallel, so one worker's order differs."""
    one = run_threaded(make_study(), objective, n_workers=1, n_trials=6, time_scale=1e-4)
    two = run_threaded(make_study(), objective, n_workers=2, n_trials=6, time_scale=1e-4)
    assert one.order == sorted(one.order) and two.order != sorted(two.order)
