"""Fake PBS Professional commands for tests: no PBS server exists in Debian, so ``qsub``, ``qstat`` and ``qdel``
are played by this script (see ``install_fake_pbs``). They run jobs for real, as local processes:

- ``qsub SCRIPT`` reads the ``#PBS -J a-b`` and ``#PBS -l walltime=`` directives, starts one supervisor per array
  element (``PBS_JOBID``, ``PBS_ARRAY_INDEX`` set) and prints ``<seq>.fake`` or ``<seq>[].fake``; a script with
  ``#PBS -q reject`` is refused the way qsub refuses an unknown queue.
- ``qstat -x -f -F json -t IDS`` prints PBS Pro's JSON: ``job_state`` R or F/X, ``Exit_status`` (256 + signal
  for a killed job, -29 for a walltime kill), ``Resource_List.walltime`` and ``resources_used.walltime``.
- ``qdel ID`` sends SIGTERM to every element's process group.
State lives in ``$FAKE_PBS_DIR``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("FAKE_PBS_DIR", "/tmp/fake-pbs"))
SUFFIX = ".fake"


def install_fake_pbs(bin_dir: Path, state_dir: Path) -> dict[str, str]:
    """Write ``qsub``, ``qstat``, ``qdel`` into ``bin_dir``; return the environment that puts them on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("qsub", "qstat", "qdel"):
        path = bin_dir / tool
        path.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} {tool} "$@"\n')
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_PBS_DIR": str(state_dir)}


def _seconds(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def qsub(args: list[str]) -> int:
    if args == ["-help"]:
        print("usage: qsub [-a date_time] [-A account_string] [-c interval] ... [script | -- command [arg1 ...]]")
        return 0
    script = Path(args[-1])
    text = script.read_text()
    if re.search(r"^#PBS -q reject\b", text, re.M):
        print("qsub: Unknown queue", file=sys.stderr)
        return 170
    ROOT.mkdir(parents=True, exist_ok=True)
    seq = len(list(ROOT.glob("[0-9]*"))) + 100
    job = ROOT / str(seq)
    job.mkdir()
    array = re.search(r"^#PBS -J (\d+)-(\d+)", text, re.M)
    walltime = re.search(r"^#PBS -l walltime=([\d:]+)", text, re.M)
    elements = list(range(int(array[1]), int(array[2]) + 1)) if array else [None]
    meta = {"array": array is not None, "walltime": walltime[1] if walltime else None, "elements": elements}
    (job / "meta.json").write_text(json.dumps(meta))
    job_id = f"{seq}[]{SUFFIX}" if array else f"{seq}{SUFFIX}"
    for element in elements:
        env = {**os.environ, "PBS_JOBID": job_id}
        if element is not None:
            env["PBS_ARRAY_INDEX"] = str(element)
        name = "single" if element is None else str(element)
        subprocess.Popen(
            [sys.executable, __file__, "_run", str(job), name, str(script)],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    print(job_id)
    return 0


def _run(job: Path, name: str, script: str) -> int:
    meta = json.loads((job / "meta.json").read_text())
    started = time.time()
    child = subprocess.Popen(["bash", script], start_new_session=True)
    (job / f"{name}.pid").write_text(str(child.pid))
    (job / f"{name}.start").write_text(str(started))
    limit = _seconds(meta["walltime"]) if meta["walltime"] else None
    exit_status = None
    while exit_status is None:
        code = child.poll()
        if code is not None:
            exit_status = code if code >= 0 else 256 - code
        elif limit is not None and time.time() - started > limit:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            exit_status = -29
        time.sleep(0.05)
    record = {"Exit_status": exit_status, "used": time.time() - started}
    (job / f"{name}.done").write_text(json.dumps(record))
    return 0


def qstat(args: list[str]) -> int:
    ids = [a for a in args if not a.startswith("-") and a not in ("json",)]
    jobs: dict[str, dict[str, object]] = {}
    unknown = []
    for job_id in ids:
        seq = re.match(r"^(\d+)", job_id)
        job = ROOT / (seq[1] if seq else "none")
        if not job.is_dir():
            unknown.append(job_id)
            continue
        meta = json.loads((job / "meta.json").read_text())
        records = {}
        for element in meta["elements"]:
            name = "single" if element is None else str(element)
            done = job / f"{name}.done"
            record: dict[str, object] = {"job_state": "Q"}
            if meta["walltime"]:
                record["Resource_List"] = {"walltime": meta["walltime"]}
            if done.exists():
                info = json.loads(done.read_text())
                record.update(job_state="X" if meta["array"] else "F", Exit_status=info["Exit_status"])
                record["resources_used"] = {"walltime": _hms(info["used"])}
            elif (job / f"{name}.start").exists():
                record["job_state"] = "R"
            key = f"{seq[1]}[{element}]{SUFFIX}" if meta["array"] else f"{seq[1]}{SUFFIX}"
            records[key] = record
        if meta["array"]:
            finished = all(r["job_state"] == "X" for r in records.values())
            jobs[f"{seq[1]}[]{SUFFIX}"] = {"job_state": "F" if finished else "B"}
        jobs.update(records)
    print(json.dumps({"timestamp": int(time.time()), "pbs_version": "fake", "Jobs": jobs}, indent=4))
    for job_id in unknown:
        print(f"qstat: Unknown Job Id {job_id}", file=sys.stderr)
    return 153 if unknown else 0


def qdel(args: list[str]) -> int:
    seq = re.match(r"^(\d+)", args[-1])
    job = ROOT / (seq[1] if seq else "none")
    if not job.is_dir():
        print(f"qdel: Unknown Job Id {args[-1]}", file=sys.stderr)
        return 153
    for pid_file in job.glob("*.pid"):
        if not (job / pid_file.name.replace(".pid", ".done")).exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
    return 0


if __name__ == "__main__":
    tool, rest = sys.argv[1], sys.argv[2:]
    if tool == "_run":
        sys.exit(_run(Path(rest[0]), rest[1], rest[2]))
    sys.exit({"qsub": qsub, "qstat": qstat, "qdel": qdel}[tool](rest))
