"""A real training run of the shipped digits config, and everything done with it afterwards."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import accuracy_score

from core.cli import main
from core.train import evaluate, fit, load_run, merge_top_k
from core.train.digits import DigitsDataModule
from tests.core.train.conftest import DIGITS, digits_config

STATED_ACCURACY = 0.93  # README: the shipped config reaches 0.95 test accuracy (343 of 360) in 20 CPU epochs


def _test_split() -> tuple[torch.Tensor, np.ndarray]:
    datamodule = DigitsDataModule(seed=0)
    datamodule.setup("test")
    return datamodule.test_dataset.tensors[0], datamodule.test_labels


def _accuracy(task: torch.nn.Module) -> float:
    inputs, labels = _test_split()
    with torch.no_grad():
        predicted = task(inputs).argmax(-1).numpy()
    return float(accuracy_score(labels, predicted))


def _val_acc_column(run: Path) -> list[tuple[int, float]]:
    with (run / "logs" / "version_0" / "metrics.csv").open() as f:
        return [(int(r["epoch"]), float(r["val/acc"])) for r in csv.DictReader(f) if r["val/acc"]]


def test_digits_reach_the_stated_accuracy_and_shuffled_labels_do_not(digits_run: Path, tmp_path: Path) -> None:
    accuracy = _accuracy(load_run(digits_run))
    assert accuracy >= STATED_ACCURACY
    baseline = fit(digits_config(["datamodule.shuffle_labels=true"]), run_dir=tmp_path / "shuffled")
    shuffled_accuracy = _accuracy(load_run(baseline.run_dir))
    assert shuffled_accuracy <= 0.25 < accuracy - 0.5  # chance is 0.1


def test_the_run_directory_records_the_run(digits_run: Path) -> None:
    merged = yaml.safe_load((digits_run / "merged_config.yaml").read_text())
    assert merged["trainer"]["max_epochs"] == 20
    assert merged["task"]["schedulers"][0]["scheduler"]["T_max"] == 20  # interpolations resolved
    provenance = json.loads((digits_run / "provenance.json").read_text())
    assert provenance["packages"]["torch"].startswith("2.9") and "lightning" in provenance["packages"]
    checkpoints = sorted(p.name for p in (digits_run / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in checkpoints and len(checkpoints) == 4  # last + save_top_k: 3


def test_save_metric_writes_the_hpo_protocol(digits_run: Path) -> None:
    logged = _val_acc_column(digits_run)
    assert [epoch for epoch, _ in logged] == list(range(20))
    best_epoch, best = max(logged, key=lambda item: item[1])
    result = json.loads((digits_run / "metric.json").read_text())
    assert result["value"] == pytest.approx(best)
    assert result["user_attrs"] == {"monitor": "val/acc", "epoch": best_epoch}
    reports = [json.loads(line) for line in (digits_run / "report.jsonl").read_text().splitlines()]
    assert [(r["step"], r["value"]) for r in reports] == [(e, pytest.approx(v)) for e, v in logged]


def test_merge_averages_the_recorded_top_k(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last = torch.load(digits_run / "checkpoints" / "last.ckpt", weights_only=False)
    (record,) = [v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint")]
    top = sorted(record["best_k_models"].items(), key=lambda item: float(item[1]), reverse=True)
    states = [torch.load(path, weights_only=False)["state_dict"] for path, _ in top]
    merged_path = merge_top_k(digits_run, 3, output=tmp_path / "merged.ckpt")
    merged = torch.load(merged_path, weights_only=False)
    for key, value in merged["state_dict"].items():
        torch.testing.assert_close(value, sum(s[key] for s in states) / 3)
    assert [m["path"] for m in merged["merged_from"]] == [str(path) for path, _ in top]
    assert _accuracy(load_run(digits_run, merged_path)) >= STATED_ACCURACY - 0.02

    assert main(["train", "merge", str(digits_run), "--top-k", "4"]) == 2
    assert "4 checkpoints asked but ModelCheckpoint(monitor=val/acc) kept 3" in capsys.readouterr().err


def test_test_and_predict_verbs_agree_with_the_loaded_task(digits_run: Path) -> None:
    metrics, path = evaluate(digits_run, "test")
    assert metrics["test/acc"] == pytest.approx(_accuracy(load_run(digits_run)), abs=1e-6)
    assert json.loads(path.read_text())["metrics"]["test/acc"] == metrics["test/acc"]
    predictions, path = evaluate(digits_run, "predict", checkpoint="last")
    inputs, _ = _test_split()
    with torch.no_grad():
        expected = load_run(digits_run, "last")(inputs).argmax(-1)
    assert torch.equal(torch.cat(predictions), expected) and path.name == "predict-last.pt"


def test_resume_continues_from_the_last_checkpoint(digits_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "resumed"
    shutil.copytree(digits_run, run)
    fit(digits_config(["trainer.max_epochs=22", "callbacks.metric=null"]), run_dir=run, resume="last")
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 21
    with (run / "logs" / "version_1" / "metrics.csv").open() as f:
        assert sorted({int(r["epoch"]) for r in csv.DictReader(f)}) == [20, 21]  # only the new epochs ran
    assert yaml.safe_load((run / "history" / "0" / "merged_config.yaml").read_text())["trainer"]["max_epochs"] == 20
    assert yaml.safe_load((run / "merged_config.yaml").read_text())["trainer"]["max_epochs"] == 22


def test_load_pretrained_and_unused_parameters(digits_run: Path) -> None:
    from core.train.callbacks import LoadPretrained, PrintUnusedParams, load_pretrained
    from core.train.modules import MLP
    from core.train.tasks import ClassificationTask

    class Task(ClassificationTask):
        def __init__(self) -> None:
            super().__init__(MLP(64, [128], 12, dropout=0.1))  # two more classes: the head does not fit
            self.adapter = torch.nn.Linear(3, 3)  # never used in forward

    source = torch.load(digits_run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    task = Task()
    report = load_pretrained(task, {f"net.{k[len('model.') :]}": v for k, v in source.items()}, {r"^net\.": "model."})
    assert report.loaded == ["model.1.bias", "model.1.weight"]
    assert sorted(k for k, _, _ in report.shape_skipped) == ["model.4.bias", "model.4.weight"]
    assert report.missing == ["adapter.bias", "adapter.weight"] and report.unexpected == []
    torch.testing.assert_close(task.model[1].weight, source["model.1.weight"])

    pretrained, unused = LoadPretrained(digits_run, exclude=[r"^model\.4\."]), PrintUnusedParams()
    trainer = lightning.Trainer(
        max_steps=1, callbacks=[pretrained, unused], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, limit_val_batches=0, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(Task(), datamodule=DigitsDataModule())
    assert pretrained.report is not None and pretrained.report.shape_skipped == []
    assert pretrained.report.loaded == ["model.1.bias", "model.1.weight"]
    assert unused.unused == ["adapter.weight", "adapter.bias"]


def test_run_pipeline_one_and_sharded_batch(digits_run: Path, tmp_path: Path) -> None:
    from core.train.inference import RunPipeline

    inputs, _ = _test_split()
    sources = []
    for i in range(5):
        np.save(tmp_path / f"s{i}.npy", inputs[i].numpy())
        sources.append(f"s{i}.npy")
    (tmp_path / "list.txt").write_text("\n".join(sources) + "\n")
    with torch.no_grad():
        expected = load_run(digits_run)(inputs[:5]).numpy()

    pipeline = RunPipeline(digits_run)
    written = []
    for element in range(2):  # two elements of an array job, as core.jobs exports them
        environ = {"TASK_INDEX": str(element), "TASK_STEPSIZE": "1", "TASK_COUNT": "2"}
        written.append(pipeline.batch(tmp_path / "list.txt", tmp_path / "out", environ=environ))
    assert [len(w) for w in written] == [3, 2]
    assert sorted(p.name for w in written for p in w) == [f"s{i}.npy" for i in range(5)]
    for i in range(5):
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"s{i}.npy"), expected[i], rtol=1e-5, atol=1e-6)
    assert pipeline.batch(tmp_path / "list.txt", tmp_path / "out") == []  # done already: nothing redone

    target = tmp_path / "one.npy"
    assert main(["train", "infer", str(digits_run), "one", str(tmp_path / "s0.npy"), str(target)]) == 0
    np.testing.assert_allclose(np.load(target), expected[0], rtol=1e-5, atol=1e-6)
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "fit", "missing.yaml"], "missing.yaml"),
        (["train", "fit", str(DIGITS), "trainer.max_epochz=3"], "max_epochs"),
        (["train", "fit", str(DIGITS), "--resume"], "--resume without a run directory"),
        (["train", "validate", "."], "not a run directory"),
    ],
)
def test_user_mistakes_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_last_checkpoint_is_written_every_epoch_even_between_validations(tmp_path: Path) -> None:
    overrides = ["trainer.max_epochs=2", "trainer.check_val_every_n_epoch=5", "~callbacks.metric"]
    result = fit(digits_config(overrides), run_dir=tmp_path / "sparse-val")
    last = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 1  # saved after the second (last) epoch, although no validation ran
