"""The result protocol between a trial command and the runner.

A trial ends by writing JSON to its ``{out_file}``, or by printing it as the last line of its stdout::

    {"value": 0.25}                          # one objective
    {"values": [0.25, 3.0]}                  # several objectives
    {"value": 0.25, "user_attrs": {"epochs": 12}}
    0.25                                     # a bare number (or a list of numbers) is accepted too

While it runs, it may append intermediate values to its ``{report_file}``, one JSON object per line::

    {"step": 1, "value": 0.9}

The runner reads them with :class:`ReportTail`, feeds them to the pruner, and stops a pruned trial.

Example:
    >>> parse_result_text('{"values": [1, 2.5], "user_attrs": {"k": 1}}', n_objectives=2)
    TrialResult(values=[1.0, 2.5], user_attrs={'k': 1})
    >>> parse_result_text('{"value": "nan?"}', n_objectives=1)
    Traceback (most recent call last):
    ...
    core.hpo.results.ResultError: "value" is not a number: 'nan?'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ResultError(Exception):
    """A trial's result is missing or malformed; the message says why (stored as the trial's failure reason)."""


@dataclass
class TrialResult:
    values: list[float]
    user_attrs: dict[str, Any] = field(default_factory=dict)


def parse_result_text(text: str, n_objectives: int) -> TrialResult:
    """Parse one result document (the content of ``out_file`` or the last stdout line)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"not JSON ({exc.msg}): {_short(text)}") from None
    user_attrs: dict[str, Any] = {}
    if isinstance(data, dict):
        if "values" in data:
            raw = data["values"]
            key = "values"
        elif "value" in data:
            raw = data["value"]
            key = "value"
        else:
            raise ResultError(f'no "value" or "values" key in {_short(text)}')
        attrs = data.get("user_attrs", {})
        if not isinstance(attrs, dict):
            raise ResultError('"user_attrs" must be an object')
        user_attrs = attrs
    else:
        raw, key = data, "value"
    values = raw if isinstance(raw, list) else [raw]
    numbers = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ResultError(f'"{key}" is not a number: {v!r}')
        if math.isnan(v):
            raise ResultError(f'"{key}" is NaN')
        numbers.append(float(v))
    if len(numbers) != n_objectives:
        raise ResultError(f"{len(numbers)} values for {n_objectives} objectives")
    return TrialResult(numbers, user_attrs)


def read_result(out_file: Path, log_file: Path | None, n_objectives: int) -> TrialResult:
    """The result of a finished trial: ``out_file`` if it exists, else the last line of its log that is JSON.

    Raises:
        ResultError: with the reason (no output, not JSON, not a number, wrong count).
    """
    if out_file.is_file():
        text = out_file.read_text(encoding="utf-8", errors="replace").strip()
        if not text:
            raise ResultError(f"{out_file.name} is empty")
        return parse_result_text(text, n_objectives)
    last = _last_json_line(log_file) if log_file is not None else None
    if last is None:
        raise ResultError(f"no result: {out_file.name} was not written and stdout has no JSON last line")
    return parse_result_text(last, n_objectives)


def _last_json_line(log_file: Path) -> str | None:
    """The last line of the log that parses as JSON (stderr lines may follow stdout's last line in the log)."""
    if not log_file.is_file():
        return None
    for line in reversed(tail_lines(log_file, 50)):
        line = line.strip()
        if not line:
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError:
            continue
        return line
    return None


def tail_lines(path: Path, n_lines: int, max_bytes: int = 64_000) -> list[str]:
    """The last ``n_lines`` lines of a text file, reading at most ``max_bytes`` from its end."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-n_lines:]


def log_tail(path: Path | None, n_lines: int = 20, max_chars: int = 2000) -> str:
    """The end of a log, short enough to store as a trial attribute."""
    if path is None:
        return ""
    text = "\n".join(tail_lines(path, n_lines))
    return text[-max_chars:]


class ReportTail:
    """Incremental reader of a report file: each call to :meth:`read` returns the ``(step, value)`` pairs appended
    since the last call. A line still being written (no newline yet) is kept for the next call.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "report.jsonl"
        >>> tail = ReportTail(path)
        >>> tail.read()
        []
        >>> _ = path.write_text('{"step": 1, "value": 0.5}\\n{"step": 2, "val')
        >>> tail.read()
        [(1, 0.5)]
        >>> with path.open("a") as f:
        ...     _ = f.write('ue": 0.25}\\n')
        >>> tail.read()
        [(2, 0.25)]
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.bad_lines = 0

    def read(self) -> list[tuple[int, float]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        reports = []
        for line in lines:
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                step, value = item["step"], item["value"]
                if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                    raise ValueError(step)
                if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                    raise ValueError(value)
            except (ValueError, KeyError, TypeError):
                self.bad_lines += 1
                continue
            reports.append((step, float(value)))
        return reports


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
