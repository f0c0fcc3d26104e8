"""``kakehashi job <local|slurm|sge|pbs> <cpu|gpu|mpi|train> ... LOG -- CMD ...`` and ``job status|cancel|logs``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli import SubParsers, add_area, console
from core.errors import UserError

if TYPE_CHECKING:
    from core.jobs.base import Backend, JobHandle, JobState, JobStatus

_MODES = ("cpu", "gpu", "mpi", "train")
_EXIT_TIMEOUT = 124  # like timeout(1): the job hit its walltime
_EXIT_NO_CODE = 1  # cancelled or lost: the job ended without an exit code of its own


def _non_negative(text: str) -> float:
    """``--timeout``: seconds, at least 0 (argparse turns the ``ValueError`` into one ``error:`` line)."""
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError(text)
    return value


_non_negative.__name__ = "non-negative number of seconds"


def _count(text: str) -> int:
    """``--tail``, ``--n-tasks`` and friends: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_count.__name__ = "positive integer"


def _index(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_index.__name__ = "non-negative integer"


def register(areas: SubParsers) -> None:
    verbs = add_area(
        areas,
        "job",
        help="run commands as jobs on local processes, Slurm, SGE or PBS",
        description="Submit a command as a job (or an array of jobs) and wait for it; query, cancel, read logs.\n"
        "Exit status when waiting: the job's exit code (arrays: the first non-zero), 124 for a walltime,\n"
        "1 for a job cancelled or lost; 2 for a usage error. Ctrl-C cancels what was submitted.\n"
        "`job status` exits the same way for jobs that have ended unsuccessfully, 0 while all are fine or running.",
    )
    from core.jobs.registry import backend_names

    backends = backend_names()
    for backend in backends:
        _add_submit_verb(verbs, backend)

    status = verbs.add_parser(
        "status",
        help="states of submitted jobs",
        epilog="example:\n  kakehashi job local cpu --no-wait --name quick logs/quick.log -- sleep 1\n"
        "  kakehashi job status --wait logs/.kakehashi/quick.*",
    )
    status.add_argument("jobs", metavar="JOB", nargs="+", help="job id as printed at submission, or its state dir")
    status.add_argument("--backend", choices=backends, help="where the id is ambiguous")
    status.add_argument("--wait", action="store_true", help="wait until they finish; exit with their exit code")
    status.set_defaults(handler=_status)

    cancel = verbs.add_parser(
        "cancel",
        help="cancel jobs (every array element)",
        epilog="example:\n  kakehashi job local cpu --no-wait --name long logs/long.log -- sleep 600\n"
        "  kakehashi job cancel logs/.kakehashi/long.*",
    )
    cancel.add_argument("jobs", metavar="JOB", nargs="+", help="job id or state dir")
    cancel.add_argument("--backend", choices=backends, help="where the id is ambiguous")
    cancel.set_defaults(handler=_cancel)

    logs = verbs.add_parser(
        "logs",
        help="print a job's log (an array element's with --element)",
        epilog="example:\n"
        "  kakehashi job local cpu --n-tasks 4 --name arr logs/arr.log -- sh -c 'echo task $TASK_INDEX'\n"
        '  kakehashi job logs "$(ls -d logs/.kakehashi/arr.* | tail -n 1)" --element 3 --tail 20',
    )
    logs.add_argument("job", metavar="JOB", help="job id or state dir")
    logs.add_argument("--backend", choices=backends, help="where the id is ambiguous")
    logs.add_argument("--element", type=_index, help="array element (default: all, each under a header)")
    logs.add_argument("--tail", type=_count, help="only the last N lines")
    logs.set_defaults(handler=_logs)


def _add_submit_verb(verbs: SubParsers, backend: str) -> None:
    example = {
        "local": "example:\n  kakehashi job local cpu --n-tasks 8 --n-tasks-per-proc 2 logs/sweep.log -- "
        'python -c "from core.jobs import split_tasks; print(split_tasks(list(range(8))))"',
        "slurm": "example (slurm):\n  kakehashi job slurm cpu --walltime 0:05:00 logs/slurm.log -- hostname",
        "sge": "example (sge):\n  kakehashi job sge cpu --n-tasks 2 --walltime 0:05:00 logs/sge.log -- hostname",
        "pbs": "example (pbs):\n  kakehashi job pbs train --n-nodes 2 --n-procs 4 --config "
        "core/jobs/config/sites/abci-pbs.yaml --option group=gab12345 logs/ddp.log -- python fit.py",
    }.get(backend, f"example:\n  kakehashi job {backend} cpu logs/run.log -- hostname")
    parser = verbs.add_parser(
        backend,
        help=f"run a command as a {backend} job",
        description=f"Submit CMD as a {backend} job in MODE and wait for it (unless --no-wait).",
        epilog=example,
    )
    parser.add_argument("mode", choices=_MODES, help="cpu | gpu | mpi (mpirun -np N) | train (DDP ranks)")
    parser.add_argument("--n-tasks", type=_count, default=1, help="array: number of tasks (default 1: no array)")
    parser.add_argument("--n-tasks-per-proc", type=_count, default=1, help="array: tasks per array element")
    parser.add_argument("--n-procs", type=_count, default=1, help="MPI ranks (mpi) or processes per node (train)")
    parser.add_argument("--n-nodes", type=_count, default=1, help="nodes")
    parser.add_argument("--n-gpus", type=_index, default=0, help="GPUs per node")
    parser.add_argument("--walltime", help="[D-]HH:MM:SS")
    parser.add_argument("--name", help="job name (default: the command's name)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="export to the job")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="site template value")
    parser.add_argument("--cwd", type=Path, help="working directory of the job (default: here)")
    parser.add_argument("--config", type=Path, help=f"site config extending the bundled {backend}.yaml")
    parser.add_argument("--no-wait", action="store_true", help="submit, print the job id and return")
    parser.add_argument(
        "--timeout", type=_non_negative, help="stop waiting after this many seconds (the job keeps running)"
    )
    parser.add_argument(
        "log", metavar="LOG", type=Path, help="log file (arrays: LOG with .<element> before its suffix)"
    )
    parser.add_argument("command", metavar="-- CMD ...", nargs=argparse.REMAINDER, help="the command and its arguments")
    parser.set_defaults(handler=_submit, backend=backend)


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} needs KEY=VALUE, not {value!r}", where=flag)
        pairs[key] = text
    return pairs


def _submit(args: argparse.Namespace) -> int:
    from core.jobs import JobSpec, get_backend

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UserError("no command to run", where=f"kakehashi job {args.backend}", hint="put it after --: LOG -- CMD")
    spec = JobSpec(
        command=command,
        name=args.name or Path(command[0]).name,
        log_path=args.log,
        mode=args.mode,
        walltime=args.walltime,
        n_gpus=args.n_gpus,
        n_nodes=args.n_nodes,
        n_procs=args.n_procs,
        n_tasks=args.n_tasks,
        n_tasks_per_proc=args.n_tasks_per_proc,
        env=_pairs(args.env, "--env"),
        cwd=args.cwd,
        options=_pairs(args.option, "--option"),
    )
    backend = get_backend(args.backend, args.config)
    handle = backend.submit(spec)
    print(f"submitted {args.backend} job {handle.job_id} ({handle.n_array} element(s)); state: {handle.state_dir}")
    if args.no_wait:
        if args.backend == "local":
            _until_started(backend, handle)
        return 0
    return _wait_and_report(backend, [handle], args.timeout, cancel_on_interrupt=True)


def _until_started(backend: Backend, handle: JobHandle) -> None:
    """Local jobs start from this process: stay until every element has started (or ended)."""
    from core.jobs import JobState

    while any(t.state is JobState.PENDING for t in backend.status([handle])[0].tasks):
        time.sleep(0.1)


def _counts(statuses: Sequence[JobStatus]) -> dict[JobState, int]:
    from core.jobs import JobState

    counts = dict.fromkeys(JobState, 0)
    for status in statuses:
        for task in status.tasks:
            counts[task.state] += 1
    return counts


def _progress_text(statuses: Sequence[JobStatus]) -> str:
    from core.jobs import JobState

    c = _counts(statuses)
    failed = c[JobState.FAILED] + c[JobState.TIMEOUT] + c[JobState.LOST] + c[JobState.CANCELLED]
    return (
        f"queued {c[JobState.PENDING]} · running {c[JobState.RUNNING]} · done {c[JobState.COMPLETED]} · failed {failed}"
    )


def _wait_and_report(
    backend: Backend, handles: Sequence[JobHandle], timeout: float | None, cancel_on_interrupt: bool
) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    statuses: list[JobStatus] = []
    try:
        with console.status("waiting for jobs") as spinner:

            def on_progress(current: Sequence[JobStatus]) -> None:
                spinner.update(_progress_text(current))

            statuses = backend.wait(handles, timeout=timeout, on_progress=on_progress)
    except KeyboardInterrupt:
        if cancel_on_interrupt:
            for handle in handles:
                backend.cancel(handle)
            console.print(f"cancelled {', '.join(h.job_id for h in handles)}")
        raise
    console.print(_progress_text(statuses))
    _print_table(statuses)
    return exit_status(statuses)


def exit_status(statuses: Sequence[JobStatus]) -> int:
    """The CLI's exit status for finished jobs: the first non-zero exit code; 124 walltime; 1 cancelled or lost."""
    from core.jobs import JobState

    for status in statuses:
        if not status.state.finished:
            return _EXIT_NO_CODE
        for task in status.tasks:
            if task.state is JobState.COMPLETED:
                continue
            if task.exit_code not in (None, 0) and task.state is JobState.FAILED:
                return min(int(task.exit_code), 255)
            return _EXIT_TIMEOUT if task.state is JobState.TIMEOUT else _EXIT_NO_CODE
    return 0


def _print_table(statuses: Sequence[JobStatus]) -> None:
    from rich.table import Table

    from core.jobs import JobState

    # ids and paths are what a person copies: never cut them at the terminal's width (paths fold onto more lines)
    table = Table()
    table.add_column("job", no_wrap=True, min_width=max((len(s.handle.job_id) for s in statuses), default=3))
    for name in ("backend", "state", "exit", "elements"):
        table.add_column(name)
    table.add_column("log / reason", overflow="fold")
    for status in statuses:
        h = status.handle
        failed = [t for t in status.tasks if t.state.finished and t.state is not JobState.COMPLETED]
        detail = status.reason or (str(failed[0].log_path) if failed else str(h.log_paths[0]))
        if failed and h.n_array > 1:
            detail = f"element {failed[0].index}: {failed[0].log_path}" + (
                f" ({status.reason})" if status.reason else ""
            )
        done = sum(t.state is JobState.COMPLETED for t in status.tasks)
        code = "" if status.exit_code is None else str(status.exit_code)
        table.add_row(h.job_id, h.backend, status.state.value, code, f"{done}/{h.n_array} done", detail)
    console().print(table)


def _handles(refs: Sequence[str], backend: str | None) -> list[JobHandle]:
    from core.jobs.state import find_handle

    return [find_handle(ref, backend) for ref in refs]


def _grouped(handles: Sequence[JobHandle]) -> list[tuple[Backend, list[JobHandle]]]:
    """Handles by backend, each backend configured as at submission: one status query per backend."""
    from core.jobs.registry import backend_of

    groups: dict[str, tuple[Backend, list[JobHandle]]] = {}
    for handle in handles:
        if handle.backend not in groups:
            groups[handle.backend] = (backend_of(handle), [])
        groups[handle.backend][1].append(handle)
    return list(groups.values())


def _status(args: argparse.Namespace) -> int:
    statuses: list[JobStatus] = []
    code = 0
    for backend, handles in _grouped(_handles(args.jobs, args.backend)):
        if args.wait:
            code = code or _wait_and_report(backend, handles, None, cancel_on_interrupt=False)
        else:
            statuses += backend.status(handles)
    if not args.wait:
        _print_table(statuses)
        ended_badly = [s for s in statuses if s.state.finished]
        code = exit_status(ended_badly)
    return code


def _cancel(args: argparse.Namespace) -> int:
    for backend, handles in _grouped(_handles(args.jobs, args.backend)):
        for handle in handles:
            backend.cancel(handle)
            print(f"cancelled {handle.backend} job {handle.job_id}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    [handle] = _handles([args.job], args.backend)
    if args.element is not None and not 0 <= args.element < handle.n_array:
        raise UserError(
            f"element {args.element} out of range", where=f"job {handle.job_id}", hint=f"0..{handle.n_array - 1}"
        )
    elements = range(handle.n_array) if args.element is None else [args.element]
    for element in elements:
        path = handle.log_paths[element]
        if handle.n_array > 1 and args.element is None:
            print(f"==> element {element}: {path} <==")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            print(f"(no log yet: {path})", file=sys.stderr)
            continue
        lines = text.splitlines(keepends=True)
        sys.stdout.write("".join(lines[-args.tail :] if args.tail else lines))
    return 0


__all__ = ["exit_status", "register"]
