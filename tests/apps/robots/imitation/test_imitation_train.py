"""Training through core.train: the loss falls, the run reloads, the baseline matches the size, the gate's NMI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from apps.robots.imitation.data import DemoDataModule, collate_episodes, mirrored
from apps.robots.imitation.demos import load_demonstrations
from apps.robots.imitation.env import EnvConfig
from apps.robots.imitation.evaluation import evaluate_policy, expert_episodes, gate_nmi, load_policy, summarize
from apps.robots.imitation.policy import MoELSTMPolicy, count_parameters, single_lstm_like
from apps.robots.imitation.task import ImitationTask


def _column(run: Path, name: str) -> list[float]:
    (metrics,) = (run / "logs").glob("version_*/metrics.csv")
    with open(metrics) as handle:
        return [float(row[name]) for row in csv.DictReader(handle) if row.get(name)]


def test_short_training_lowers_the_loss(trained: dict[str, Path]) -> None:
    bc = _column(trained["run"], "train/bc")
    assert len(bc) >= 10
    assert np.mean(bc[-3:]) < 0.6 * np.mean(bc[:3]), bc
    assert _column(trained["run"], "val/bc")  # validated on the held-out demonstration
    assert (trained["run"] / "merged_config.yaml").is_file() and (trained["run"] / "provenance.json").is_file()


def test_trained_policy_runs_on_every_robot(trained: dict[str, Path], small_env: EnvConfig) -> None:
    results = evaluate_policy(str(trained["run"]), small_env, seeds=[0, 1])
    assert [r.steps for r in results] == [60, 60] or any(r.success for r in results)
    assert summarize(results)["episodes"] == 2


def test_gate_nmi_is_sklearns_on_the_gate_argmax(trained: dict[str, Path], small_env: EnvConfig) -> None:
    from sklearn.metrics import normalized_mutual_info_score

    model = load_policy(trained["run"], 3)
    obs, labels = expert_episodes(small_env, [3000])
    assert len(obs) == 3  # one sequence per robot
    with torch.inference_mode():
        choice = np.concatenate(
            [model(torch.from_numpy(o).unsqueeze(0)).gate_logits[0].argmax(-1).numpy() for o in obs]
        )
    expected = normalized_mutual_info_score(np.concatenate(labels), choice)
    assert gate_nmi(model, obs, labels) == expected


def test_single_lstm_baseline_has_the_mixtures_parameter_count() -> None:
    for dims in [(18, 48, 3, 32), (22, 32, 4, 16)]:
        moe, single = MoELSTMPolicy(*dims), single_lstm_like(*dims)
        assert abs(count_parameters(single) - count_parameters(moe)) <= 0.02 * count_parameters(moe)


def test_mixture_output_is_a_convex_combination_of_the_experts() -> None:
    torch.manual_seed(0)
    moe = MoELSTMPolicy(6, hidden=8, n_experts=3, head_hidden=8)
    obs = torch.randn(2, 5, 6)
    out = moe(obs)
    features, _ = moe.lstm(obs)
    joined = torch.cat([features, obs], -1)
    proposals = torch.stack([torch.tanh(e(joined)) for e in moe.experts], -2)
    torch.testing.assert_close(out.gate_logits, moe.gate(joined))  # the gate sees the LSTM state and the observation
    weights = torch.softmax(out.gate_logits, -1)
    torch.testing.assert_close(out.actions, (weights.unsqueeze(-1) * proposals).sum(-2))
    torch.testing.assert_close(out.proposals, proposals)
    # stepping one step at a time with the carried state gives the same as the whole sequence
    state, steps = None, []
    for t in range(5):
        step = moe(obs[:, t : t + 1], state)
        state = step.state
        steps.append(step.actions)
    torch.testing.assert_close(torch.cat(steps, 1), out.actions)


def test_expert_loss_trains_the_labelled_behaviours_expert_only() -> None:
    torch.manual_seed(0)
    moe = MoELSTMPolicy(6, hidden=8, n_experts=3, head_hidden=8)
    task = ImitationTask(moe, n_robots=2, gate_weight=0.0, expert_weight=1.0)
    label = torch.tensor([[0, 1, 2, -1, 1], [2, 2, -1, 0, 0]])
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 4] = False  # padding: no term although it carries a label
    batch = {"obs": torch.randn(2, 5, 6), "action": torch.rand(2, 5, 2) * 2 - 1, "label": label, "mask": mask}
    losses = task.losses(batch)
    proposals = moe(batch["obs"]).proposals
    errors = [
        float(((proposals[b, t, label[b, t]] - batch["action"][b, t]) ** 2).sum() / 2)
        for b in range(2)
        for t in range(5)
        if mask[b, t] and label[b, t] >= 0
    ]
    assert float(losses["expert"]) == pytest.approx(np.mean(errors), rel=1e-5)
    assert float(losses["loss"]) == pytest.approx(float(losses["bc"] + losses["expert"]), rel=1e-5)
    losses["expert"].backward()  # the expert term trains the experts (and the LSTM), not the gate
    assert moe.gate[0].weight.grad is None
    assert all(e[0].weight.grad is not None and e[0].weight.grad.any() for e in moe.experts)


def test_single_lstm_has_no_gate_terms() -> None:
    single = single_lstm_like(6, hidden=8, n_experts=3, head_hidden=8)
    batch = {
        "obs": torch.zeros(1, 4, 6),
        "action": torch.zeros(1, 4, 2),
        "label": torch.zeros(1, 4, dtype=torch.long),
        "mask": torch.ones(1, 4, dtype=torch.bool),
    }
    losses = ImitationTask(single, n_robots=2, gate_weight=0.5, expert_weight=1.0).losses(batch)
    assert sorted(losses) == ["bc", "loss"] and float(losses["loss"]) == float(losses["bc"])


def test_datamodule_mirrors_and_masks(trained: dict[str, Path]) -> None:
    dm = DemoDataModule([str(trained["demos"])], n_robots=3, val_episodes=1, window=20)
    dm.setup("fit")
    demos = load_demonstrations(trained["demos"])
    assert len(dm.val_dataset) == 1 and len(dm.train_dataset) == 2 * len(dm.train_dataset) // 2
    twice = mirrored(mirrored(demos[0]))
    np.testing.assert_array_equal(twice.obs, demos[0].obs)
    batch = collate_episodes(dm.train_dataset[:3])
    assert batch["mask"].sum() == sum(len(s["obs"]) for s in dm.train_dataset[:3])
