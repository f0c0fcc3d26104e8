"""Answers read off an event list by each question template's meaning (no learning): a diagnostic of the features.

Given the SED's detected events, :func:`rule_answer` answers a templated question the way the generator defines its
answer (existence, count, the neighbour after / before, the third of the onset, length and level comparisons). On
the true events it reproduces the generator's answers exactly (tested); on the detected events it shows how much of
the answer the event-level output of the SED carries, apart from how well a language model learns to read it.

Example:
    >>> from apps.audioqa.scenes import Event
    >>> events = [Event("siren", 1.0, 2.5, 10.0), Event("bell", 4.0, 4.6, 18.0)]
    >>> [rule_answer(q, events) for q in ("what happened after the siren", "was the bell louder than the siren")]
    ['bell', 'yes']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from apps.audioqa.scenes import COUNT_WORDS, TEMPLATES, THIRDS


class EventLike(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def onset(self) -> float: ...
    @property
    def offset(self) -> float: ...
    @property
    def snr_db(self) -> float: ...


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.escape(template).replace(r"\{a\}", "(?P<a>.+)").replace(r"\{b\}", "(?P<b>.+)"))


PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, _pattern(t)) for kind, templates in TEMPLATES.items() for t in templates
)


def rule_answer(question: str, events: Sequence[EventLike], clip_seconds: float = 10.0) -> str:
    """The answer of ``question`` (a template's text) on ``events``; ``""`` where the events cannot answer it."""
    text = " ".join(question.lower().split())
    for kind, pattern in PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        a = [e for e in events if e.label == match["a"]]
        b = [e for e in events if "b" in match.groupdict() and e.label == match["b"]]
        if kind == "existence":
            return "yes" if a else "no"
        if kind == "counting":
            return COUNT_WORDS[min(len(a), len(COUNT_WORDS) - 1)]
        if not a:
            return ""
        ordered = sorted(events, key=lambda e: e.onset)
        i = ordered.index(a[0])
        if kind == "after":
            return ordered[i + 1].label if i + 1 < len(ordered) else ""
        if kind == "before":
            return ordered[i - 1].label if i > 0 else ""
        if kind == "timing":
            return THIRDS[min(2, int(3 * a[0].onset / clip_seconds))]
        if not b:
            return ""
        a_len, b_len = a[0].offset - a[0].onset, b[0].offset - b[0].onset
        truth = {
            "longer": a_len > b_len,
            "shorter": a_len < b_len,
            "louder": a[0].snr_db > b[0].snr_db,
            "quieter": a[0].snr_db < b[0].snr_db,
        }[kind]
        return "yes" if truth else "no"
    return ""


__all__ = ["PATTERNS", "rule_answer"]
