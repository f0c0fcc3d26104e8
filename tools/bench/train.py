"""Benchmark: `kakehashi train fit` against a plain Lightning script that trains the same model the same way.

Both train the digits MLP of core/train/config/digits.yaml (same split, model, optimizer, schedule, batch size,
CSV logger, top-3 and last checkpoints, no progress bar) in a fresh process, alternately, ``--repeats`` times.
Lightning's ``Timer`` callback measures the training loop inside each process (read back from the last
checkpoint), so a run's wall time splits into

- start-up: process wall time minus the training loop (imports, config, provenance, trainer construction, teardown);
- throughput: training samples per second inside the loop;

and the CPU time of each process (user + system) shows the extra work of ours on a machine whose other load makes
wall times noisy.

    python tools/bench/train.py [--repeats 5] [--epochs 10]

Writes tools/bench/results/train.json: ``startup_overhead_s_vs_plain`` (median start-up of ours minus the plain
script's, seconds; the target is < 1 s), ``startup_overhead_min_s_vs_plain`` (the same with the fastest run of
each), ``cpu_overhead_s_vs_plain`` (median CPU seconds per run, ours minus plain), ``startup_ratio_vs_plain``,
``throughput_ratio_vs_plain`` (ours / plain, median; 1.0 is identical), the spread of the plain script's throughput
over repeats (the noise floor), ``cli_parser_cpu_s`` (CPU seconds of building the ``kakehashi`` parser, which
imports every area's cli.py: part of our start-up that is not training's), the Lightning and torch versions and
the core count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("results") / "train.json"
DIGITS = ROOT / "core" / "train" / "config" / "digits.yaml"
N_TRAIN = 1077  # 60% of the 1797 digits

PLAIN_SCRIPT = '''
"""The digits MLP of core/train/config/digits.yaml, written as a plain Lightning script."""
import json, sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from lightning.pytorch.loggers import CSVLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

epochs, run = int(sys.argv[1]), Path(sys.argv[2])


class Task(L.LightningModule):
    def __init__(self):
        super().__init__()
        layers = [torch.nn.Flatten(), torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Dropout(0.1)]
        self.model = torch.nn.Sequential(*layers, torch.nn.Linear(128, 10))

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/loss", F.cross_entropy(logits, y), sync_dist=True)
        self.log("val/acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=1e-4)
        return [optimizer], [{"scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)}]


L.seed_everything(0, workers=True, verbose=False)
digits = load_digits()
x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
rest_x, _, rest_y, _ = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
train_x, val_x, train_y, val_y = train_test_split(rest_x, rest_y, test_size=0.25, stratify=rest_y, random_state=0)
train = DataLoader(TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y)), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(torch.from_numpy(val_x), torch.from_numpy(val_y)), batch_size=64)
checkpoints = str(run / "checkpoints")
best = ModelCheckpoint(dirpath=checkpoints, monitor="val/acc", mode="max", save_top_k=3)
last = ModelCheckpoint(dirpath=checkpoints, filename="last", save_top_k=1, enable_version_counter=False)
trainer = L.Trainer(
    accelerator="cpu", devices=1, max_epochs=epochs, log_every_n_steps=10, enable_model_summary=False,
    enable_progress_bar=False, logger=CSVLogger(str(run), name="logs"), callbacks=[best, last, Timer()],
    default_root_dir=str(run),
)
trainer.fit(Task(), train, val)
(run / "metric.json").write_text(json.dumps({"value": float(best.best_model_score)}))
'''


def _run(command: list[str], run: Path) -> tuple[float, float, float]:
    """(process wall time, training-loop time, process CPU time) of one run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"benchmark run failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    import torch

    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    timer = next(state for key, state in last["callbacks"].items() if key.startswith("Timer"))
    return wall, float(timer["time_elapsed"]["train"]), cpu


def _parser_cpu_s(repeats: int = 5) -> float:
    """CPU seconds the ``kakehashi`` command spends building its parser (every area's cli.py), beyond bare Python."""

    def cpu(code: str) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    parser = statistics.median(cpu("import core.cli; core.cli.build_parser()") for _ in range(repeats))
    return parser - statistics.median(cpu("pass") for _ in range(repeats))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    samples: dict[str, list[tuple[float, float, float]]] = {"ours": [], "plain": []}  # start-up, samples/s, CPU s
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "plain_lightning.py"
        script.write_text(PLAIN_SCRIPT)
        for repeat in range(args.repeats):
            for name in ("plain", "ours") if repeat % 2 else ("ours", "plain"):
                run = Path(folder) / f"{name}-{repeat}"
                if name == "plain":
                    command = [sys.executable, str(script), str(args.epochs), str(run)]
                else:
                    command = [sys.executable, "-m", "core.cli", "train", "fit", str(DIGITS)]
                    command += [f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false"]
                    command += ["+callbacks.timer._target_=lightning.pytorch.callbacks.Timer", "--run-dir", str(run)]
                wall, loop, cpu = _run(command, run)
                samples[name].append((wall - loop, args.epochs * N_TRAIN / loop, cpu))
                print(f"  {name:5s} #{repeat}: wall {wall:6.2f} s, loop {loop:6.2f} s, CPU {cpu:6.2f} s")
    startup = {name: statistics.median(s for s, _, _ in values) for name, values in samples.items()}
    fastest = {name: min(s for s, _, _ in values) for name, values in samples.items()}
    throughput = {name: statistics.median(t for _, t, _ in values) for name, values in samples.items()}
    cpu = {name: statistics.median(c for _, _, c in values) for name, values in samples.items()}
    plain_throughputs = [t for _, t, _ in samples["plain"]]
    figures = {
        "startup_overhead_s_vs_plain": round(startup["ours"] - startup["plain"], 3),
        "startup_overhead_min_s_vs_plain": round(fastest["ours"] - fastest["plain"], 3),
        "cpu_overhead_s_vs_plain": round(cpu["ours"] - cpu["plain"], 3),
        "startup_ratio_vs_plain": round(startup["ours"] / startup["plain"], 3),
        "throughput_ratio_vs_plain": round(throughput["ours"] / throughput["plain"], 3),
        "plain_throughput_spread": round((max(plain_throughputs) - min(plain_throughputs)) / throughput["plain"], 3),
        "startup_s_plain": round(startup["plain"], 3),
        "startup_s_ours": round(startup["ours"], 3),
        "cpu_s_plain": round(cpu["plain"], 3),
        "cpu_s_ours": round(cpu["ours"], 3),
        "cli_parser_cpu_s": round(_parser_cpu_s(), 3),
        "epochs": args.epochs,
        "repeats": args.repeats,
        "lightning_version": version("lightning"),
        "torch_version": version("torch"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(f"\n{'':28s}{'kakehashi':>12s}{'plain Lightning':>18s}{'ratio':>8s}")
    print(
        f"{'start-up (s, median)':28s}{startup['ours']:12.2f}{startup['plain']:18.2f}"
        f"{figures['startup_ratio_vs_plain']:8.2f}"
    )
    print(
        f"{'throughput (samples/s)':28s}{throughput['ours']:12.0f}{throughput['plain']:18.0f}"
        f"{figures['throughput_ratio_vs_plain']:8.2f}"
    )
    print(f"{'CPU per run (s, median)':28s}{cpu['ours']:12.2f}{cpu['plain']:18.2f}{cpu['ours'] / cpu['plain']:8.2f}")
    print(
        f"start-up overhead: {figures['startup_overhead_s_vs_plain']:+.2f} s (target < 1 s); "
        f"plain throughput spread over repeats: {figures['plain_throughput_spread']:.1%}"
    )
    print(f"of which building the kakehashi parser (all areas' cli.py): {figures['cli_parser_cpu_s']:.2f} CPU s")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
