"""The bridge pipeline end to end on a small analytic family, its resumability and its faults."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from core.bridge.analytic import expensive
from core.bridge.pipeline import run
from core.bridge.scenario import Scenario
from core.bridge.studies import StudyResult
from core.bridge.workspace import Workspace
from core.config import load_config, package_dir
from core.errors import ConfigError, UserError

EXAMPLE = package_dir("core.bridge.config") / "examples" / "analytic.yaml"


def _config(tmp_path: Path, *overrides: str) -> DictConfig:
    return load_config(
        EXAMPLE,
        [
            f"workspace={tmp_path / 'ws'}",
            "scenarios.n_train=8",
            "scenarios.n_test=3",
            "models.cheap.n_trials=40",
            "models.expensive.n_trials=25",
            "fit.models=[linear,ridge,gp]",
            "evaluate.refine=3",
            "models.cheap.n_max_jobs=1",
            "models.expensive.n_max_jobs=1",
            *overrides,
        ],
    )


QUICK = (
    "scenarios.n_train=5",
    "scenarios.n_test=1",
    "models.cheap.n_trials=8",
    "models.expensive.n_trials=8",
    "fit.models=[ridge]",
    "evaluate.refine=0",
)


def _pairs_only_workspace(workspace: Path, rows: list[dict[str, object]]) -> None:
    """A workspace holding only ``pairs.csv`` with ``rows``: what the fit stage reads."""
    workspace.mkdir()
    with (workspace / "pairs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_the_whole_pipeline_writes_every_artifact(tmp_path: Path) -> None:
    workspace = run(_config(tmp_path), log=lambda _: None, progress=False)
    root = workspace.root
    for name in (
        "merged_config.yaml",
        "provenance.json",
        "pairs.csv",
        "model/model.joblib",
        "model/card.json",
        "evaluation.csv",
        "report/report.md",
        "report/summary.json",
        "report/quality_vs_cost.png",
        "report/predicted_vs_direct.png",
        "report/objective_per_scenario.png",
    ):
        assert (root / name).is_file(), name
    pairs = _rows(root / "pairs.csv")
    assert [r["split"] for r in pairs].count("train") == 8 and len(pairs) == 11
    evaluation = _rows(root / "evaluation.csv")
    assert len(evaluation) == 3
    for row in evaluation:  # the expensive model really ran at the predicted point, and at the refined one
        scenario = Scenario.load(root / "scenarios" / f"{row['scenario']}.json")
        predicted = {"theta0": float(row["pred.theta0"]), "theta1": float(row["pred.theta1"])}
        assert float(row["bridge_value"]) == pytest.approx(expensive(scenario, predicted))
        refined = {"theta0": float(row["refined.theta0"]), "theta1": float(row["refined.theta1"])}
        assert float(row["refine_value"]) == pytest.approx(expensive(scenario, refined))
        assert float(row["pred_std.theta0"]) >= 0 and 1 <= int(row["refine_expensive_runs"]) <= 4
    report = (root / "report" / "report.md").read_text()
    card = json.loads((root / "model" / "card.json").read_text())
    for name in ("theta0", "theta1"):  # each output's anchor and shrinkage weight, in the card and the report
        anchor, weight = card["anchor"][name], card["shrinkage_weight"][name]
        assert anchor["kind"] in ("mean", "prior") and 0.0 <= weight <= 1.0
        assert f"| {name} | {card['model'][name]} | {anchor['kind']} {anchor['value']:.4g} | {weight:.3g} |" in report
    summary = json.loads((root / "report" / "summary.json").read_text())
    assert summary["n_test_scenarios"] == 3 and set(summary["model"].values()) <= {"linear", "ridge", "gp", "mean"}
    # the bridge predicts far better than the centre of the box, which is what a model ignoring ξ̂ would say
    centre = [
        expensive(Scenario.load(root / "scenarios" / f"{r['scenario']}.json"), {"theta0": 0, "theta1": 0})
        for r in evaluation
    ]
    assert summary["bridge_value"] < 0.5 * sorted(centre)[1]


def test_refine_strictly_improves_a_prediction_that_is_off(tmp_path: Path) -> None:
    """A straight line cannot follow the nonlinear map, so h's predictions miss θ*; the refine runs, started there,
    must find strictly better points on every held-out scenario."""
    cfg = _config(
        tmp_path, "scenarios.mapping=nonlinear", "fit.models=[linear]", "evaluate.refine=4",
        "evaluate.refine_full_at=1e-6", "evaluate.direct_reference=false",
    )  # fmt: skip
    workspace = run(cfg, log=lambda _: None, progress=False)
    evaluation = _rows(workspace.evaluation)
    assert all(float(r["bridge_value"]) > 1e-3 for r in evaluation)  # the prediction is off
    for row in evaluation:
        assert int(row["refine_expensive_runs"]) == 5
        assert float(row["refine_value"]) < float(row["bridge_value"]), row["scenario"]


def test_gauss_newton_refine_lands_on_the_optimum_of_a_quadratic_loss(tmp_path: Path) -> None:
    """With the loss's residuals, the probes give its exact Jacobian on a quadratic bowl, so the one Gauss–Newton
    step lands on θ* wherever h's prediction missed it (by less than the step's limit of 25% of a range)."""
    cfg = _config(
        tmp_path, "scenarios.mapping=nonlinear", "fit.models=[linear]", "evaluate.refine=4",
        "evaluate.refine_full_at=1e-6", "evaluate.direct_reference=false", "evaluate.refine_method=gauss_newton",
        "models.expensive.objective=core.bridge.analytic.expensive_with_residuals",
    )  # fmt: skip
    workspace = run(cfg, log=lambda _: None, progress=False)
    evaluation = _rows(workspace.evaluation)
    assert all(float(r["bridge_value"]) > 1e-3 for r in evaluation)  # the prediction is off
    for row in evaluation:
        assert int(row["refine_expensive_runs"]) == 4  # the check, a probe per parameter (2), the step
        assert float(row["refine_value"]) < 1e-6, row["scenario"]


RANGE_REFINE = (
    "scenarios.mapping=nonlinear", "fit.models=[linear]", "evaluate.refine=4", "evaluate.refine_full_at=1e-6",
    "evaluate.direct_reference=false", "evaluate.refine_method=gauss_newton", "evaluate.refine_scale=range",
    "models.expensive.objective=core.bridge.analytic.expensive_with_residuals",
)  # fmt: skip


def _probe_moves(workspace: Workspace) -> list[tuple[dict[str, str], list[float]]]:
    """Each held-out row of ``evaluation.csv`` and how far its probes moved each parameter from the prediction."""
    import optuna

    from core.bridge.studies import open_journal

    journal = open_journal(workspace.storage)
    out = []
    for row in _rows(workspace.evaluation):
        predicted = {n: float(row[f"pred.{n}"]) for n in ("theta0", "theta1")}
        probes = optuna.load_study(study_name=f"{row['scenario']}/probe", storage=journal).trials
        out.append((row, sorted(abs(t.params[n] - predicted[n]) for t in probes for n in predicted)))
    return out


def test_gauss_newton_refine_with_range_scale_probes_a_quarter_of_each_range(tmp_path: Path) -> None:
    """``evaluate.refine_scale: range``: the probes move 25% of a range (1.0 of [-2, 2]) whatever h's std, and the
    step still lands on θ*."""
    workspace = run(_config(tmp_path, *RANGE_REFINE), log=lambda _: None, progress=False)
    for row, moves in _probe_moves(workspace):
        assert moves == pytest.approx([0.0, 0.0, 1.0, 1.0])
        assert float(row["refine_value"]) < 1e-6, row["scenario"]


@pytest.mark.parametrize("keep", ["step", "best"])
def test_gauss_newton_refine_share_sets_the_probes_and_keep_step_keeps_the_steps_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: str
) -> None:
    """``evaluate.refine_share: 0.4``: the probes move 40% of a range (1.6 of [-2, 2]); ``refine_keep: step`` keeps
    the step's point even where an earlier run scored lower (here the step is sent to a corner), ``best`` does not."""
    import core.bridge.pipeline as pipeline

    monkeypatch.setattr(pipeline, "gauss_newton_point", lambda predicted, *_: {n: 2.0 for n in predicted})
    cfg = _config(tmp_path, *RANGE_REFINE, "evaluate.refine_share=0.4", f"evaluate.refine_keep={keep}")
    workspace = run(cfg, log=lambda _: None, progress=False)
    for row, moves in _probe_moves(workspace):
        assert moves == pytest.approx([0.0, 0.0, 1.6, 1.6])
        at_corner = float(row["refined.theta0"]) == float(row["refined.theta1"]) == 2.0
        assert at_corner == (keep == "step"), row["scenario"]
        if keep == "step":  # worse than the check run, kept anyway
            assert float(row["refine_value"]) > float(row["bridge_value"])


@pytest.mark.parametrize("prior", ["scale", "std"])
def test_gauss_newton_refine_prior_is_as_wide_as_the_probes_or_hs_std(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prior: str
) -> None:
    """``evaluate.refine_prior: std``: the step's prior is the prediction's std (``pred_std.*``), while the probes
    still move 40% of a range; ``scale`` (the default): the prior is as wide as the probes move."""
    import core.bridge.pipeline as pipeline

    priors: dict[str, list[float]] = {}
    real = pipeline.gauss_newton_point

    def spy(predicted: dict[str, float], residuals: Any, probes: Any, std: Any, *rest: Any) -> dict[str, float]:
        priors[json.dumps(predicted, sort_keys=True)] = [float(v) for v in std]
        return real(predicted, residuals, probes, std, *rest)

    monkeypatch.setattr(pipeline, "gauss_newton_point", spy)
    cfg = _config(tmp_path, *RANGE_REFINE, "evaluate.refine_share=0.4", f"evaluate.refine_prior={prior}")
    workspace = run(cfg, log=lambda _: None, progress=False)
    for row, moves in _probe_moves(workspace):
        assert moves == pytest.approx([0.0, 0.0, 1.6, 1.6])
        predicted = {n: float(row[f"pred.{n}"]) for n in ("theta0", "theta1")}
        expected = [float(row[f"pred_std.{n}"]) for n in predicted] if prior == "std" else [1.6, 1.6]
        assert priors[json.dumps(predicted, sort_keys=True)] == pytest.approx(expected)


def test_gauss_newton_refine_needs_residuals(tmp_path: Path) -> None:
    cfg = _config(tmp_path, *QUICK, "evaluate.refine=4", "evaluate.refine_method=gauss_newton")
    with pytest.raises(UserError, match="residuals"):
        run(cfg, log=lambda _: None, progress=False)


POOLED = (
    "scenarios.mapping=nonlinear", "fit.models=[linear]", "evaluate.refine=3", "evaluate.refine_full_at=1e-6",
    "evaluate.direct_reference=false", "evaluate.refine_method=pooled",
    "models.expensive.objective=core.bridge.analytic.expensive_with_residuals",
)  # fmt: skip


def test_pooled_refine_learns_the_jacobian_offline_and_runs_each_refine_run_on_a_replicate(tmp_path: Path) -> None:
    """``evaluate.refine_method: pooled``: 8 offline runs per training scenario fit the Jacobian (the analytic
    residuals are linear, so exactly), each refine run reads the scenario with ``context.replicate`` = its number,
    and the result (never run itself) is θ* wherever h's prediction missed it."""
    cfg = _config(tmp_path, *POOLED, "evaluate.jacobian_features=core.bridge.analytic.cell_features")
    workspace = run(cfg, log=lambda _: None, progress=False)
    record = json.loads((workspace.model_dir / "jacobian.json").read_text(encoding="utf-8"))
    assert record["runs"] == 8 * 8 and record["scenarios"] == 8
    for row in _rows(workspace.evaluation):
        scenario = Scenario.load(workspace.scenario_file(row["scenario"]))
        assert float(row["bridge_value"]) > 1e-3  # the prediction is off
        assert int(row["refine_expensive_runs"]) == 4
        refined = [float(row[f"refined.theta{i}"]) for i in range(2)]
        assert refined == pytest.approx(scenario.context["theta_star"], abs=1e-6)
        for k in (1, 2, 3):
            variant = Scenario.load(workspace.study_dir(row["scenario"], f"refine-{k}") / "scenario.json")
            assert variant.context["replicate"] == k and variant.name == scenario.name
    # evaluate again (a kill, or --redo-from evaluate): every offline and refine run is read back, none run twice
    before = _finished_at(workspace)
    assert len(before["train-000/jacobian"]) == 8 and len(before[f"{row['scenario']}/refine-3"]) == 1
    run(cfg, log=lambda _: None, progress=False, redo_from="evaluate")
    assert _finished_at(workspace) == before


def _finished_at(workspace: Workspace) -> dict[str, list[object]]:
    """Each study of the workspace's journal and when each of its trials finished (a rerun trial finishes later)."""
    import optuna

    from core.bridge.studies import open_journal

    journal = open_journal(workspace.storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(journal)]
    return {n: [t.datetime_complete for t in optuna.load_study(study_name=n, storage=journal).trials] for n in names}


def test_pooled_refine_can_take_its_offline_runs_from_fewer_training_scenarios(tmp_path: Path) -> None:
    """``evaluate.jacobian_scenarios``: the offline runs go to the first 3 training scenarios only, and their
    linear residuals still give the exact Jacobian."""
    cfg = _config(tmp_path, *POOLED, "evaluate.jacobian_features=core.bridge.analytic.cell_features",
                  "evaluate.jacobian_scenarios=3")  # fmt: skip
    workspace = run(cfg, log=lambda _: None, progress=False)
    record = json.loads((workspace.model_dir / "jacobian.json").read_text(encoding="utf-8"))
    assert record["runs"] == 8 * 3 and record["scenarios"] == 3
    assert not workspace.study_dir("train-003", "jacobian").exists()
    for row in _rows(workspace.evaluation):
        scenario = Scenario.load(workspace.scenario_file(row["scenario"]))
        refined = [float(row[f"refined.theta{i}"]) for i in range(2)]
        assert refined == pytest.approx(scenario.context["theta_star"], abs=1e-6)


def test_pooled_refine_needs_jacobian_features(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="jacobian_features"):
        run(_config(tmp_path, *POOLED), log=lambda _: None, progress=False)


def test_every_study_lives_in_one_storage_under_its_scenario_and_role(tmp_path: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    workspace = run(_config(tmp_path, *QUICK), log=lambda _: None, progress=False)
    assert workspace.storage.is_file() and not list(workspace.root.glob("studies/*/*/study.journal"))
    storage = JournalStorage(JournalFileBackend(str(workspace.storage)))
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert {"train-000/cheap", "train-004/expensive", "test-000/expensive", "test-000/bridge"} <= names
    study = optuna.load_study(study_name="train-002/expensive", storage=storage)
    assert len(study.trials) == 8
    bridge = optuna.load_study(study_name="test-000/bridge", storage=storage)
    row = _rows(workspace.evaluation)[0]
    assert bridge.trials[0].params["theta0"] == pytest.approx(float(row["pred.theta0"]))


def test_an_output_no_model_can_predict_falls_back_to_the_mean(tmp_path: Path) -> None:
    """The cheap model's optimum says nothing about θ* when every scenario's cheap model is the same bowl: h must
    predict the training mean of θ̂ and say so."""
    cfg = _config(
        tmp_path, *QUICK, "scenarios.n_train=8", "models.cheap.objective=tests.core.bridge.helpers.cheap_uninformative",
        "fit.prior=none",
    )  # fmt: skip
    messages: list[str] = []
    workspace = run(cfg, log=messages.append, progress=False)
    card = json.loads((workspace.model_dir / "card.json").read_text())
    assert card["model"] == {"theta0": "mean", "theta1": "mean"} and card["fallback_to_mean"] == ["theta0", "theta1"]
    assert sum("no model beats the training mean" in m for m in messages) == 2
    pairs = [r for r in _rows(workspace.pairs) if r["split"] == "train"]
    prediction = float(_rows(workspace.evaluation)[0]["pred.theta0"])
    assert prediction == pytest.approx(sum(float(r["theta.theta0"]) for r in pairs) / len(pairs))


def test_finished_stages_and_studies_are_not_redone(tmp_path: Path) -> None:
    cfg = _config(tmp_path, *QUICK)
    workspace = run(cfg, stages=("prepare", "optimize"), log=lambda _: None)
    kept = workspace.study_dir("train-000", "cheap") / "result.json"
    redo = workspace.study_dir("train-001", "expensive") / "result.json"
    kept_before = kept.read_text()
    redo.unlink()  # as if optimize had been killed before this study finished:
    workspace.marker("optimize").unlink()  # then the stage has no marker either
    messages: list[str] = []
    run(cfg, stages=("prepare", "optimize"), log=messages.append)
    assert any("prepare: done before, skipped" in m for m in messages)
    assert any("1 to run" in m for m in messages)
    assert kept.read_text() == kept_before
    assert StudyResult.load(redo.parent).n_trials == 8  # resumed to the total, not 8 more


def test_a_scenario_whose_study_fails_is_excluded_and_reported(tmp_path: Path) -> None:
    cfg = _config(tmp_path, *QUICK, "models.cheap.objective=tests.core.bridge.helpers.cheap_failing_on_train_001")
    messages: list[str] = []
    workspace = run(cfg, log=messages.append)
    assert any("train-001 excluded" in m for m in messages)
    assert "train-001" not in {r["scenario"] for r in _rows(workspace.pairs)}
    assert "Excluded (a study found no finished trial): train-001" in (workspace.report_dir / "report.md").read_text()


def test_too_few_pairs_for_the_model(tmp_path: Path) -> None:
    cfg = _config(tmp_path, *QUICK, "scenarios.n_train=4", "fit.models=[polynomial]", "evaluate.direct_reference=false")
    with pytest.raises(UserError, match="4 scenario pairs are too few for the polynomial model"):
        run(cfg, log=lambda _: None)


def test_bad_model_section_is_refused_when_the_config_loads(tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"neither objective nor command \(.*analytic\.yaml: models\.cheap\.objective\)"
    ):
        _config(tmp_path, "models.cheap.objective=null")
    assert not (tmp_path / "ws").exists()


def test_a_plain_config_is_checked_before_any_stage_runs(tmp_path: Path) -> None:
    """run() on a config built in Python (not loaded with the schema) checks it too, before writing anything."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(_config(tmp_path, *QUICK)))
    cfg.scenarios.n_train = "many"
    with pytest.raises(UserError, match=r"'many' is not an int .*\(config: scenarios\.n_train\)"):
        run(cfg, log=lambda _: None)
    assert not (tmp_path / "ws").exists()


def _write_pairs(tmp_path: Path, theta0: list[float], theta1: list[float]) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    rows = [
        {"scenario": f"train-{i:03d}", "split": "train", "xi.xi0": rng.uniform(-3, 3), "xi.xi1": rng.uniform(-3, 3),
         "theta.theta0": a, "theta.theta1": b}
        for i, (a, b) in enumerate(zip(theta0, theta1, strict=True))
    ]  # fmt: skip
    root = tmp_path / "ws"
    root.mkdir(parents=True, exist_ok=True)
    with (root / "pairs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_fit_offers_the_centre_of_the_search_range_as_the_anchor_unless_prior_is_none(tmp_path: Path) -> None:
    """θ0's targets centre on the box's centre 0 (the prior's error 1 beats the leave-one-out mean's (8/7)²), θ1's
    sit far from it: the centre becomes θ0's anchor and the mean stays θ1's; with fit.prior=none both are means."""
    import numpy as np

    noise = np.random.default_rng(2).normal(0.0, 0.5, 8)
    theta0 = (noise - noise.mean()).tolist()
    theta1 = (1.5 + 0.3 * noise).tolist()
    _write_pairs(tmp_path, theta0, theta1)
    workspace = run(_config(tmp_path, "fit.models=[linear]"), stages=("fit",), log=lambda _: None, progress=False)
    card = json.loads((workspace.model_dir / "card.json").read_text())
    assert card["prior"] == {"theta0": 0.0, "theta1": 0.0}  # the middle of [-2, 2]
    assert card["anchor"]["theta0"] == {"kind": "prior", "value": 0.0}
    assert card["anchor"]["theta1"]["kind"] == "mean"
    assert card["anchor"]["theta1"]["value"] == pytest.approx(float(np.mean(theta1)))
    _write_pairs(tmp_path, theta0, theta1)
    cfg = _config(tmp_path, "fit.models=[linear]", "fit.prior=none")
    workspace = run(cfg, stages=("fit",), force=True, log=lambda _: None, progress=False)
    card = json.loads((workspace.model_dir / "card.json").read_text())
    assert card["prior"] is None and {a["kind"] for a in card["anchor"].values()} == {"mean"}
    assert card["anchor"]["theta0"]["value"] == pytest.approx(0.0, abs=1e-12)


def test_top_k_targets_and_a_refit_reevaluate_at_the_new_prediction(tmp_path: Path) -> None:
    """With fit.target_top_k=3 a training target is the mean θ of its study's 3 best trials; redoing from collect
    refits h, and evaluate runs the check study again at the new prediction instead of reusing the stale one."""
    import optuna

    from core.bridge.studies import load_trials, open_journal

    cfg = _config(tmp_path, *QUICK, "scenarios.n_train=6")
    workspace = run(cfg, log=lambda _: None, progress=False)
    before = _rows(workspace.evaluation)[0]
    cfg = _config(tmp_path, *QUICK, "scenarios.n_train=6", "fit.target_top_k=3")
    messages: list[str] = []
    run(cfg, log=messages.append, progress=False, redo_from="collect")
    assert any("the mean θ of the 3 best trials" in m for m in messages)
    journal = open_journal(workspace.storage)
    for row in (r for r in _rows(workspace.pairs) if r["split"] == "train"):
        trials = load_trials(journal, f"{row['scenario']}/expensive")
        best = sorted((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value)[:3]
        for name in ("theta0", "theta1"):
            assert float(row[f"theta.{name}"]) == pytest.approx(sum(t.params[name] for t in best) / 3)
        assert row["theta_top_k"] == "3"
    after = _rows(workspace.evaluation)[0]
    assert float(after["pred.theta0"]) != pytest.approx(float(before["pred.theta0"]))  # h changed
    (trial,) = load_trials(open_journal(workspace.storage), "test-000/bridge")  # one check run, at the new prediction
    assert trial.params["theta0"] == pytest.approx(float(after["pred.theta0"]))
    assert float(after["bridge_value"]) == pytest.approx(trial.value)


def test_known_targets_need_no_training_study_and_count_one_run_per_training_scenario(tmp_path: Path) -> None:
    """With fit.targets=known a training target is the θ the scenario was simulated with (its
    context.known_params), no expensive study runs on a training scenario, and the offline cost in pairs.csv is
    one run per training scenario; a family without known_params is refused before any study runs."""
    from core.bridge.studies import open_journal

    cfg = _config(tmp_path, *QUICK, "fit.targets=known")
    messages: list[str] = []
    workspace = run(cfg, log=messages.append, progress=False)
    assert any("the θ each was simulated with" in m for m in messages)
    names = {s.study_name for s in open_journal(workspace.storage).get_all_studies()}
    assert not any(n.startswith("train-") and n.endswith("/expensive") for n in names)
    assert "test-000/expensive" in names  # direct HPO, the reference, still runs
    for row in (r for r in _rows(workspace.pairs) if r["split"] == "train"):
        star = Scenario.load(workspace.scenario_file(row["scenario"])).context["theta_star"]
        assert [float(row["theta.theta0"]), float(row["theta.theta1"])] == star
        assert row["expensive_trials"] == "1" and row["expensive_wall_s"] == ""  # the family records no wall
    card = json.loads((workspace.model_dir / "card.json").read_text())
    assert card["targets"] == "known"
    assert (
        "h's targets: the parameters each training scenario was simulated with"
        in (workspace.report_dir / "report.md").read_text()
    )

    plain = _config(
        tmp_path / "plain", *QUICK, "fit.targets=known", "scenarios._target_=tests.core.bridge.helpers.UnknownFamily"
    )
    with pytest.raises(ConfigError, match="has no known theta0, theta1"):
        run(plain, log=lambda _: None, progress=False)
    assert not (tmp_path / "plain" / "ws" / "studies.journal").exists()


def test_cheap_loss_input_makes_the_cheap_calibrations_loss_an_input_of_h(tmp_path: Path) -> None:
    """θ0 follows the cheap calibration's best loss and not ξ̂: only with fit.cheap_loss_input does h see it."""
    import numpy as np

    rng = np.random.default_rng(3)
    loss = rng.uniform(0.1, 0.5, 12)
    rows = [
        {"scenario": f"train-{i:03d}", "split": "train", "xi.xi0": rng.uniform(-3, 3), "xi.xi1": rng.uniform(-3, 3),
         "cheap_best": value, "theta.theta0": 4 * value - 1.2, "theta.theta1": rng.normal(0.0, 0.5)}
        for i, value in enumerate(loss)
    ]  # fmt: skip
    _pairs_only_workspace(tmp_path / "ws", rows)
    cards = {}
    for flag in ("false", "true"):
        cfg = _config(tmp_path, "fit.models=[linear]", f"fit.cheap_loss_input={flag}")
        workspace = run(cfg, stages=("fit",), force=True, log=lambda _: None, progress=False)
        cards[flag] = json.loads((workspace.model_dir / "card.json").read_text())
    assert cards["false"]["inputs"] == ["xi.xi0", "xi.xi1"]
    assert cards["true"]["inputs"] == ["xi.xi0", "xi.xi1", "cheap_best"]
    assert cards["true"]["cv_mse_standardized"]["theta0"]["linear"] < 0.01
    assert cards["false"]["cv_mse_standardized"]["theta0"]["linear"] > 0.5


def test_feature_inputs_add_the_scenarios_features_to_h_and_refuse_a_family_without_them(tmp_path: Path) -> None:
    """θ0 follows a feature of the scenario and not ξ̂: with fit.feature_inputs h reads the feature.* columns that
    collect writes from each scenario's context.features; a family without features is one error."""
    import numpy as np

    rng = np.random.default_rng(4)
    feature = rng.uniform(0.0, 1.0, 12)
    rows = [
        {"scenario": f"train-{i:03d}", "split": "train", "xi.xi0": rng.uniform(-3, 3), "xi.xi1": rng.uniform(-3, 3),
         "cheap_best": 0.1, "feature.mean_count": value, "theta.theta0": 2 * value - 1.0, "theta.theta1": 0.0}
        for i, value in enumerate(feature)
    ]  # fmt: skip
    _pairs_only_workspace(tmp_path / "ws", rows)
    cfg = _config(tmp_path, "fit.models=[linear]", "fit.feature_inputs=true")
    workspace = run(cfg, stages=("fit",), force=True, log=lambda _: None, progress=False)
    card = json.loads((workspace.model_dir / "card.json").read_text())
    assert card["inputs"] == ["xi.xi0", "xi.xi1", "feature.mean_count"]
    assert card["cv_mse_standardized"]["theta0"]["linear"] < 0.01
    with pytest.raises(UserError, match=r"context\.features"):
        run(_config(tmp_path / "plain", *QUICK, "fit.feature_inputs=true"), log=lambda _: None, progress=False)


GAUSS_NEWTON = (
    "scenarios.n_train=5", "scenarios.n_test=2", "models.cheap.n_trials=8", "fit.models=[ridge]", "evaluate.refine=0",
    "models.expensive.objective=core.bridge.analytic.expensive_with_residuals",
    "models.expensive.method=gauss_newton", "models.expensive.n_trials=10", "evaluate.direct_trials=6",
    "evaluate.direct_gauss_newton=10",
)  # fmt: skip


def test_gauss_newton_calibrations_find_the_optimum_in_their_budget_and_direct_hpo_keeps_the_sampler(
    tmp_path: Path,
) -> None:
    """On a loss whose residuals are linear in θ, rounds of probes and Gauss–Newton steps from the centre reach θ*
    within 10 runs (θ* up to 1.5 from the centre, a step at most 1): the training targets are θ*, and so is the
    second reference on the held-out scenarios; direct HPO there still runs the sampler for its own budget."""
    import optuna

    from core.bridge.studies import open_journal

    workspace = run(_config(tmp_path, *GAUSS_NEWTON), log=lambda _: None, progress=False)
    journal = open_journal(workspace.storage)
    for row in _rows(workspace.pairs):
        star = Scenario.load(workspace.scenario_file(row["scenario"])).context["theta_star"]
        if row["split"] == "train":
            assert [float(row["theta.theta0"]), float(row["theta.theta1"])] == pytest.approx(star, abs=1e-6)
            trials = optuna.load_study(study_name=f"{row['scenario']}/expensive", storage=journal).trials
            assert len(trials) <= 10
            assert trials[0].params == {"theta0": 0.0, "theta1": 0.0}  # from the centre of the ranges
    for row in _rows(workspace.evaluation):
        assert float(row["direct_gauss_newton_value"]) < 1e-9
        assert 4 <= int(row["direct_gauss_newton_expensive_runs"]) <= 10
        assert int(row["direct_expensive_runs"]) == 6  # the sampler's reference, its own budget


def test_a_gauss_newton_calibration_resumes_without_running_a_point_twice(tmp_path: Path) -> None:
    """A calibration stopped after its first runs (here: a smaller budget) or before its result was written
    continues from the study's trials: every point is run once."""
    import optuna

    from core.bridge.pipeline import run_one_study
    from core.bridge.studies import open_journal

    cfg = _config(tmp_path, *GAUSS_NEWTON, "models.expensive.n_trials=3")
    workspace = run(cfg, log=lambda _: None, progress=False, stages=("prepare",))
    first = run_one_study(cfg, "train-000", "expensive")
    assert first.n_trials == 3  # the start, then a probe per parameter
    journal = open_journal(workspace.storage)
    before = [
        tuple(t.params.values()) for t in optuna.load_study(study_name="train-000/expensive", storage=journal).trials
    ]
    grown = _config(tmp_path, *GAUSS_NEWTON)
    study_dir = workspace.study_dir("train-000", "expensive")
    (study_dir / "result.json").unlink()  # as if killed before the end
    done = run_one_study(grown, "train-000", "expensive")
    trials = optuna.load_study(study_name="train-000/expensive", storage=open_journal(workspace.storage)).trials
    points = [tuple(t.params.values()) for t in trials]
    assert len(points) == len(set(points)) == done.n_trials and done.best_value is not None
    assert done.best_value < 1e-9 and points[:3] == before
    (study_dir / "result.json").unlink()
    again = run_one_study(grown, "train-000", "expensive")  # nothing left to run
    assert again.n_trials == done.n_trials and again.best_params == done.best_params


def test_a_gauss_newton_calibration_needs_residuals(tmp_path: Path) -> None:
    cfg = _config(tmp_path, *GAUSS_NEWTON, "models.expensive.objective=core.bridge.analytic.expensive")
    with pytest.raises(UserError, match="residuals"):
        run(cfg, log=lambda _: None, progress=False)


def test_a_stage_done_with_another_config_says_which_keys_changed_and_how_to_redo_it(tmp_path: Path) -> None:
    """A finished stage records the config keys its results depend on; a run that skips it with other values warns
    once, at the earliest such stage, naming each key's recorded and current value; keys that only say how the work
    runs (n_max_jobs) are not results; --redo-from refits and records the new values, in its stage record and in
    merged_config.yaml (which a run that skips every stage leaves as it was)."""
    workspace = run(_config(tmp_path, *QUICK), log=lambda _: None, progress=False)
    before = json.loads((workspace.model_dir / "card.json").read_text())
    messages: list[str] = []
    run(_config(tmp_path, *QUICK, "models.expensive.n_max_jobs=2"), log=messages.append, progress=False)
    assert not any("warning" in m for m in messages) and sum("done before, skipped" in m for m in messages) == 6
    messages.clear()
    changed = _config(tmp_path, *QUICK, "fit.models=[linear]", "evaluate.refine=1")
    run(changed, log=messages.append, progress=False)
    (warning,) = [m for m in messages if "warning" in m]
    assert warning.startswith("fit: warning: done before with another config")
    assert 'fit.models: ["ridge"] → ["linear"]' in warning and "--redo-from fit" in warning
    assert "evaluate.refine" not in warning  # one warning, at the earliest stage whose inputs changed
    assert json.loads((workspace.model_dir / "card.json").read_text()) == before  # nothing redone unasked
    merged = workspace.root / "merged_config.yaml"
    assert OmegaConf.load(merged).fit.models == ["ridge"]  # nothing ran: the config on record stays
    messages.clear()
    run(changed, log=messages.append, progress=False, redo_from="fit")
    assert json.loads((workspace.model_dir / "card.json").read_text())["model"] != before["model"]
    assert OmegaConf.load(merged).fit.models == ["linear"]  # the config the redone stages ran with
    messages.clear()
    run(changed, log=messages.append, progress=False)
    assert not any("warning" in m for m in messages)
    marker = json.loads(workspace.marker("fit").read_text())
    marker.pop("inputs")  # a workspace from before stages recorded their inputs: nothing to compare with
    workspace.marker("fit").write_text(json.dumps(marker))
    messages.clear()
    run(_config(tmp_path, *QUICK), stages=("fit",), log=messages.append, progress=False)
    assert messages == ["fit: done before, skipped (--force redoes it)"]
