"""Benchmark: opening one study of a large journal file again and again, as the model bridge does (one journal for
all its studies, opened once per study and per batch of a Gauss–Newton search), against plain Optuna.

A journal of ``--studies`` studies × ``--trials`` trials is written, each trial with three parameters and a
``residuals`` user attribute of 96 numbers (the traffic bridge's trials carry the same), about 25 MB at the
defaults, like a 50-scenario traffic bridge's. Then ``--opens`` times, a random study is opened and its trials read:

- ``optuna``: ``JournalStorage(JournalFileBackend(path))`` each time: plain Optuna replays the whole file (so did
  ``core.hpo.storage.open_storage`` before it kept the journals it opened);
- ``ours``: ``open_storage`` as it is: the journal replayed at the first open (``seconds_first_open_ours``), then
  reused: each later open reads only what was appended since.

Between opens another trial is appended through a storage of its own (a second writer), so each open has new
records to read. Figures (tools/bench/results/journal_reopen.json): the journal's size, the median seconds per
open of each (ours: after its first), and ``speedup_ours_vs_optuna``.

Run: ``.venv/bin/python tools/bench/journal_reopen.py`` (≈ 2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "tools" / "bench" / "results" / "journal_reopen.json"


def write_journal(path: Path, studies: int, trials: int, seed: int) -> None:
    """The journal: ``studies`` studies of ``trials`` finished trials each, written in one go."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    rng = random.Random(seed)
    storage = JournalStorage(JournalFileBackend(str(path)))
    distributions = {n: optuna.distributions.FloatDistribution(0.0, 1.0) for n in ("a", "b", "c")}
    for s in range(studies):
        study = optuna.create_study(storage=storage, study_name=f"scenario-{s:03d}/expensive")
        for _ in range(trials):
            params = {n: rng.random() for n in distributions}
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=distributions,
                    value=sum(params.values()),
                    user_attrs={"residuals": [rng.gauss(0.0, 0.1) for _ in range(96)]},
                )
            )


def one_open(path: Path, how: str, name: str) -> float:
    """Seconds to open the journal ``how`` and read the study ``name``'s trials."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from core.hpo.storage import open_storage

    started = time.perf_counter()
    if how == "optuna":
        storage = JournalStorage(JournalFileBackend(str(path)))
    else:
        storage = open_storage(str(path), path.parent, read_only=True).storage
    trials = optuna.load_study(study_name=name, storage=storage).trials
    elapsed = time.perf_counter() - started
    assert trials, name
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=150)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--opens", type=int, default=15, help="opens per way, interleaved")
    parser.add_argument("--quick", action="store_true", help="a smoke test: a small journal; no JSON written")
    args = parser.parse_args()
    if args.quick:
        args.studies, args.trials, args.opens = 10, 10, 3

    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "studies.journal"
        started = time.perf_counter()
        write_journal(path, args.studies, args.trials, seed=0)
        print(f"journal: {args.studies} studies × {args.trials} trials, {path.stat().st_size / 1e6:.1f} MB "
              f"({time.perf_counter() - started:.0f} s to write)", flush=True)  # fmt: skip
        writer = JournalStorage(JournalFileBackend(str(path)))
        times: dict[str, list[float]] = {"optuna": [], "ours": []}
        for round_ in range(args.opens):
            for how in rng.sample(list(times), len(times)):
                name = f"scenario-{rng.randrange(args.studies):03d}/expensive"
                times[how].append(one_open(path, how, name))
                study = optuna.load_study(study_name=name, storage=writer)  # a second writer appends a trial
                study.tell(study.ask({"a": optuna.distributions.FloatDistribution(0.0, 1.0)}), 1.0)
            print(f"round {round_ + 1}/{args.opens}: " + ", ".join(f"{h} {t[-1]:.3f} s" for h, t in times.items()),
                  flush=True)  # fmt: skip
        size_mb = path.stat().st_size / 1e6
    figures = {
        "journal_mb": round(size_mb, 1),
        "studies": args.studies,
        "trials_per_study": args.trials,
        "opens_per_way": args.opens,
        "seconds_per_open_optuna": round(statistics.median(times["optuna"]), 4),
        "seconds_first_open_ours": round(times["ours"][0], 4),
        "seconds_per_open_ours": round(statistics.median(times["ours"][1:]), 4),
        "speedup_ours_vs_optuna": round(statistics.median(times["optuna"]) / statistics.median(times["ours"][1:]), 1),
        "optuna_version": optuna.__version__,
    }
    print(json.dumps(figures, indent=2))
    if not args.quick:
        RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
