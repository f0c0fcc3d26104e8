"""Short real training runs (SED, then QA on its frozen features), the HPO study config, eval, ask and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from apps.audioqa.qa import AudioPrefixLM, QATask, Tokenizer
from core.cli import main
from core.config import package_dir


def _epoch_losses(run: Path) -> list[float]:
    with (run / "logs" / "version_0" / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    by_epoch: dict[int, list[float]] = {}
    for r in rows:
        by_epoch.setdefault(int(r["epoch"]), []).append(float(r["train/loss"]))
    return [float(np.mean(v)) for _, v in sorted(by_epoch.items())]


def test_sed_training_lowers_the_loss(tiny_sed: Path) -> None:
    losses = _epoch_losses(tiny_sed)
    assert len(losses) == 4
    assert losses[-1] < 0.92 * losses[0] and losses == sorted(losses, reverse=True), losses
    assert (tiny_sed / "checkpoints" / "last.ckpt").is_file() and (tiny_sed / "metric.json").is_file()


def test_qa_training_lowers_the_loss_and_reloads(tiny_qa: Path) -> None:
    import torch

    from core.train import load_run

    losses = _epoch_losses(tiny_qa)
    assert losses[-1] < 0.8 * losses[0], losses
    task = load_run(tiny_qa)
    assert isinstance(task, QATask) and task.features == "event" and task.model.prefix_dim > 0
    # the training set's prefix statistics came back with the checkpoint (a fresh model has mean 0, std 1)
    assert not torch.equal(task.model.prefix_std, torch.ones_like(task.model.prefix_std))
    assert not torch.equal(task.model.prefix_mean, torch.zeros_like(task.model.prefix_mean))
    assert (
        task.sed_run is not None and (Path(task.sed_run) / "features").is_dir()
    )  # the frozen SED's features, cached per split


def test_the_lm_learns_answers_that_depend_on_the_prefix() -> None:
    """Answer = the sign of the prefix: only a model that reads the prefix gets it right."""
    import torch

    torch.manual_seed(0)
    tok = Tokenizer()
    lm = AudioPrefixLM(len(tok), prefix_dim=4, d_model=32, n_heads=2, n_layers=1, dropout=0.0)
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)

    def examples(n: int) -> tuple[torch.Tensor, list[str]]:
        prefix = torch.randn(n, 2, 4)
        sign = torch.randint(0, 2, (n,)) * 2 - 1
        prefix[:, 0, 0] += 1.5 * sign
        return prefix, ["yes" if int(s) > 0 else "no" for s in sign]

    prefix, answers = examples(256)  # 128 lets the LM memorize its training prefixes (0.84-0.91 over seeds)
    tokens = torch.tensor([tok.example("is there a siren", a, 10) for a in answers])
    sep = tok.stoi["<sep>"]
    for _ in range(150):
        logits = lm(prefix, tokens[:, :-1])
        targets = tokens[:, 1:].clone()
        targets[(tokens[:, :-1] == sep).cumsum(1) == 0] = -100
        targets[targets == 0] = -100
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    fresh, truth = examples(200)  # prefixes never seen: the model must read them
    prompts = torch.tensor([tok.prompt("is there a siren", 10)] * 200)
    generated = [tok.decode(row.tolist()) for row in lm.eval().generate(fresh, prompts, tok)]
    accuracy = np.mean([g == a for g, a in zip(generated, truth, strict=True)])
    assert accuracy > 0.85, accuracy  # the Bayes rate of this task is about 0.93; the question alone gives 0.5


def test_the_prefix_speaks_the_class_words() -> None:
    """A prefix position adds its most probable class name's word embedding, scaled by that probability."""
    import torch

    from apps.audioqa.sounds import CLASSES

    torch.manual_seed(0)
    tok = Tokenizer()
    names = [tok.encode(c) for c in CLASSES]
    lm = AudioPrefixLM(
        len(tok), len(CLASSES) + 2, d_model=16, n_heads=2, n_layers=1, class_columns=(1, 1 + len(CLASSES)),
        class_words=names,
    )  # fmt: skip
    prefix = torch.randn(3, 4, len(CLASSES) + 2)
    prefix[..., 1 : 1 + len(CLASSES)] = 0.0
    siren, bird = CLASSES.index("siren"), CLASSES.index("bird chirp")
    prefix[0, 0, 1 + siren] = 0.8
    prefix[1, 2, 1 + bird] = 0.6
    lm.set_prefix_statistics(prefix)
    assert lm.project is not None
    added = lm.embed_prefix(prefix) - lm.project((prefix - lm.prefix_mean) / lm.prefix_std)
    expected = torch.zeros_like(added)
    expected[0, 0] = 0.8 * lm.embed.weight[tok.stoi["siren"]]
    expected[1, 2] = 0.6 * lm.embed.weight[[tok.stoi["bird"], tok.stoi["chirp"]]].mean(0)
    torch.testing.assert_close(added, expected)
    flat = ((prefix - lm.prefix_mean) / lm.prefix_std).reshape(-1, prefix.shape[-1])
    torch.testing.assert_close(flat.mean(0), torch.zeros(prefix.shape[-1]), atol=1e-5, rtol=0)


def test_a_study_over_the_qa_learning_rate(tiny_data: Path, tiny_sed: Path, tmp_path: Path) -> None:
    from core.hpo import optimize

    result = optimize(
        package_dir("apps.audioqa.config") / "qa_hpo.yaml",
        [f"params.data_dir={tiny_data}", f"params.sed_run={tiny_sed}", "n_trials=2", "params.epochs=1",
         "params.d_model.choices=[32]", "plots=false"],
        run_dir=tmp_path,
        progress=False,
    )  # fmt: skip
    assert result.n_complete == 2
    for trial in result.study.trials:
        run = next(p.parent for p in tmp_path.rglob("merged_config.yaml") if _lr(p) == trial.params["lr"])
        with (run / "logs" / "version_0" / "metrics.csv").open() as f:
            logged = [float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")]
        assert trial.value == pytest.approx(max(logged))  # SaveMetric's best val/acc reached the study
        assert trial.value is not None and 0.0 <= trial.value <= 1.0


def _lr(path: Path) -> float | None:
    import yaml

    cfg = yaml.safe_load(path.read_text())
    return float(cfg["task"]["optimizer"]["lr"]) if "task" in cfg else None


def test_eval_and_ask(tiny_data: Path, tiny_sed: Path, tiny_qa: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audioqa", "eval", str(tiny_sed)]) == 0
    scores = json.loads((tiny_sed / "results" / "eval-test.json").read_text())
    assert 0.0 <= scores["f1"] <= 1.0 and scores["clips"] == 12
    chosen = json.loads((tiny_sed / "decoder.json").read_text())  # chosen on the validation clips, kept in the run
    assert chosen["chosen_on"] == "val" and scores["decoder"]["source"] == chosen["source"]
    assert main(["audioqa", "eval", str(tiny_qa)]) == 0
    scores = json.loads((tiny_qa / "results" / "eval-test.json").read_text())
    assert set(scores["majority"]) >= {"existence", "overall"}
    wav = tiny_data / "examples" / "test-0000.wav"
    capsys.readouterr()
    assert main(["audioqa", "ask", str(tiny_qa), str(wav), "is there a siren", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["question"] == "is there a siren" and isinstance(answer["events"], list)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("rate", "sampled at 8000 Hz"),
        ("stereo", "2 channels"),
        ("empty", "the question is empty"),
        ("unknown", "does not know the word(s) banana"),
        ("no-run", "not a QA run directory"),
        ("no-checkpoint", "no checkpoint"),
    ],
)
def test_bad_input_is_one_error_line(
    case: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "clip.wav"
    soundfile.write(wav, np.zeros((16000, 2) if case == "stereo" else 16000), 8000 if case == "rate" else 16000)
    run = tmp_path / "run"
    if case != "no-run":  # a run dir that passes the cheap check; what is wrong is the wav, question or checkpoint
        run.mkdir()
        (run / "merged_config.yaml").write_text("task: {_target_: apps.audioqa.qa.QATask}\n")
    question = {"empty": "  ", "unknown": "is there a banana"}.get(case, "is there a siren")
    assert main(["audioqa", "ask", str(run), str(wav), question]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
