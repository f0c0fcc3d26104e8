"""OptimizerTask's optimizer, parameter groups and scheduler configs; SequentialLR against torch's own."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, ReduceLROnPlateau, StepLR

from core.config import instantiate
from core.errors import ConfigError
from core.train.schedulers import SequentialLR
from core.train.task import OptimizerTask


class Net(OptimizerTask):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.encoder = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        self.head = torch.nn.Linear(4, 2)
        self.frozen = torch.nn.Linear(2, 2).requires_grad_(False)


def test_parameter_groups_by_glob_first_match_wins() -> None:
    task = Net(
        optimizer=functools.partial(torch.optim.AdamW, lr=0.1, weight_decay=0.5),
        param_groups=[{"pattern": "encoder.*", "lr": 0.01}, {"pattern": ["*.bias"], "weight_decay": 0.0}],
    )
    optimizers, schedulers = task.configure_optimizers()
    groups = optimizers[0].param_groups
    names = {id(p): n for n, p in task.named_parameters()}
    assert [sorted(names[id(p)] for p in g["params"]) for g in groups] == [
        ["encoder.0.bias", "encoder.0.weight", "encoder.1.bias", "encoder.1.weight"],
        ["head.bias"],
        ["head.weight"],  # the rest; frozen parameters are left out
    ]
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.01, 0.5), (0.1, 0.0), (0.1, 0.5)]
    assert schedulers == []


def test_a_pattern_matching_nothing_is_a_config_error() -> None:
    task = Net(param_groups=[{"pattern": "decoder.*", "lr": 0.01}])
    with pytest.raises(ConfigError, match=r"decoder\.\*.*matches no trainable parameter") as info:
        task.configure_optimizers()
    assert info.value.where == "task.param_groups[0]" and "encoder.0.weight" in str(info.value.hint)


def test_schedulers_from_a_config_node() -> None:
    node = {
        "_target_": f"{__name__}.Net",
        "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1.0},
        "schedulers": [
            {"scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 2}},
            {
                "scheduler": {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True},
                "monitor": "val/loss",
                "interval": "epoch",
            },
        ],
    }
    task = instantiate(node)
    _, configs = task.configure_optimizers()
    assert isinstance(configs[0]["scheduler"], StepLR) and configs[0]["interval"] == "epoch"
    assert not configs[0]["reduce_on_plateau"]
    assert isinstance(configs[1]["scheduler"], ReduceLROnPlateau) and configs[1]["reduce_on_plateau"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"scheduler": functools.partial(StepLR, step_size=1), "interval": "batch"}, "interval must be"),
        ({"scheduler": functools.partial(ReduceLROnPlateau)}, "needs `monitor`"),
        ({"scheduler": functools.partial(StepLR, step_size=1), "every": 2}, "unknown scheduler key"),
        ({"scheduler": "StepLR"}, "factory of the optimizer"),
    ],
)
def test_bad_scheduler_configs(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Net(schedulers=[spec]).configure_optimizers()


def _sgd() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.5)


def _lrs(optimizer: torch.optim.Optimizer, scheduler: object, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()  # type: ignore[attr-defined]
    return out


def test_sequential_lr_follows_torch_sequential_lr() -> None:
    reference_optimizer = _sgd()
    reference = torch.optim.lr_scheduler.SequentialLR(
        reference_optimizer,
        [LinearLR(reference_optimizer, start_factor=0.1, total_iters=3), CosineAnnealingLR(reference_optimizer, 6)],
        milestones=[3],
    )
    optimizer = _sgd()
    ours = SequentialLR(
        optimizer,
        [functools.partial(LinearLR, start_factor=0.1, total_iters=3), functools.partial(CosineAnnealingLR, T_max=6)],
        milestones=[3],
    )
    expected = _lrs(reference_optimizer, reference, 12)
    assert _lrs(optimizer, ours, 12) == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) > 6  # the schedule really moves


def test_sequential_lr_warmup_then_reduce_on_plateau_and_resume() -> None:
    def build(optimizer: torch.optim.Optimizer) -> SequentialLR:
        return SequentialLR(
            optimizer,
            [
                functools.partial(LinearLR, start_factor=0.25, total_iters=2),
                functools.partial(ReduceLROnPlateau, factor=0.5, patience=1),
            ],
            milestones=[2],
        )

    optimizer = _sgd()
    scheduler = build(optimizer)
    seen = []
    for loss in [5.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0]:
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(loss)
    # warm-up 0.125 → 0.3125, then 0.5 from the plateau member, halved after two epochs without improvement
    assert seen[:3] == pytest.approx([0.125, 0.3125, 0.5])
    assert seen[-1] < 0.5
    with pytest.raises(ValueError, match="needs a metric"):
        scheduler.step()

    state, optimizer_state = scheduler.state_dict(), optimizer.state_dict()
    restored_optimizer = _sgd()  # Lightning's order: build both, then load the optimizer, then the scheduler
    restored = build(restored_optimizer)
    restored_optimizer.load_state_dict(optimizer_state)
    restored.load_state_dict(state)
    assert restored_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    for loss in [3.0, 3.0, 3.0]:
        scheduler.step(loss)
        restored.step(loss)
        assert restored.get_last_lr() == scheduler.get_last_lr()


def test_sequential_lr_validates_milestones() -> None:
    factory = functools.partial(StepLR, step_size=1)
    with pytest.raises(ValueError, match="milestones"):
        SequentialLR(_sgd(), [factory, factory], milestones=[])
    with pytest.raises(ValueError, match="increasing"):
        SequentialLR(_sgd(), [factory, factory, factory], milestones=[3, 3])
