"""Soundscapes with known events, and closed-answer questions about them, balanced so the question alone says little.

A scene is 10 s of pink-ish background noise with 1–6 non-overlapping events of the classes in
:mod:`apps.audioqa.sounds`; each event has an exact onset, offset and level (its SNR over the background, in dB).
Scene ``i`` of a split depends only on ``(seed, i)``, so a split is the same on every machine and in any number of
writer processes.

Questions are templated, in six types (:data:`QUESTION_TYPES`): existence, counting, order (after/before), timing
(which third of the clip an event starts in), duration and loudness comparisons. Every question the scene can answer
unambiguously is a candidate (timing needs an onset at least 0.3 s from a third's border, duration a length ratio of
at least 1.4, loudness a level difference of at least 6 dB); :func:`balanced_questions` then keeps, for each distinct
question text, the same number of questions for every answer, so a model that reads only the question is at chance
on each of them.

Example:
    >>> scene = sample_scene(seed=0, index=3)
    >>> [(e.label, round(e.onset, 2)) for e in scene.events][:2]
    [('clap', 0.31), ('clap', 1.28)]
    >>> [q for q in candidate_questions(scene) if q.type == "counting" and "clap" in q.text][0]
    Question(type='counting', text='how many clap sounds are there', answer='three')
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apps.audioqa.sounds import CLASSES, SAMPLE_RATE, background, render

log = logging.getLogger(__name__)

QUESTION_TYPES: tuple[str, ...] = ("existence", "counting", "order", "timing", "duration", "loudness")
COUNT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three")
THIRDS: tuple[str, ...] = ("beginning", "middle", "end")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "existence": ("is there a {a}", "did you hear a {a}"),
    "counting": ("how many {a} sounds are there", "how many times did a {a} occur"),
    "after": ("what happened after the {a}", "what sound came after the {a}"),
    "before": ("what happened before the {a}", "what sound came before the {a}"),
    "timing": ("when did the {a} start", "in which part of the clip did the {a} start"),
    "longer": ("was the {a} longer than the {b}", "did the {a} last longer than the {b}"),
    "shorter": ("was the {a} shorter than the {b}",),
    "louder": ("was the {a} louder than the {b}",),
    "quieter": ("was the {a} quieter than the {b}",),
}
FIXED_ANSWERS: dict[str, tuple[str, ...]] = {
    "existence": ("yes", "no"),
    "counting": COUNT_WORDS,
    "timing": THIRDS,
    "duration": ("yes", "no"),
    "loudness": ("yes", "no"),
}


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn (every field has the default of ``apps/audioqa/config/data.yaml``)."""

    duration: float = 10.0
    max_events: int = 6
    max_classes: int = 4
    event_length: tuple[float, float] = (0.4, 2.0)
    snr_db: tuple[float, float] = (2.0, 20.0)
    min_gap: float = 0.3
    noise_rms: float = 0.02


@dataclass(frozen=True)
class Event:
    label: str
    onset: float
    offset: float
    snr_db: float


@dataclass(frozen=True)
class Scene:
    index: int
    events: tuple[Event, ...]
    config: SceneConfig = field(default_factory=SceneConfig)


@dataclass(frozen=True)
class Question:
    type: str
    text: str
    answer: str


def sample_scene(seed: int, index: int, config: SceneConfig | None = None) -> Scene:
    """Scene ``index`` of the split drawn with ``seed``: classes, multiplicities, lengths, placement and levels."""
    cfg = config or SceneConfig()
    rng = np.random.default_rng([seed, index, 0])
    n_classes = int(rng.integers(1, cfg.max_classes + 1))
    chosen = rng.choice(len(CLASSES), size=n_classes, replace=False)
    labels = [CLASSES[int(c)] for c in chosen for _ in range(int(rng.choice([1, 1, 2, 3])))]
    rng.shuffle(labels)
    labels = labels[: cfg.max_events]
    lengths = rng.uniform(*cfg.event_length, size=len(labels))
    while lengths.sum() + cfg.min_gap * (len(labels) + 1) > cfg.duration and len(labels) > 1:
        labels, lengths = labels[:-1], lengths[:-1]
    slack = cfg.duration - lengths.sum() - cfg.min_gap * (len(labels) + 1)
    gaps = cfg.min_gap + slack * rng.dirichlet(np.ones(len(labels) + 1))
    onsets = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    levels = rng.uniform(*cfg.snr_db, size=len(labels))
    events = tuple(
        Event(label, round(float(on), 3), round(float(on + length), 3), round(float(snr), 2))
        for label, on, length, snr in zip(labels, onsets, lengths, levels, strict=True)
    )
    return Scene(index=index, events=events, config=cfg)


def render_scene(scene: Scene, seed: int) -> np.ndarray:
    """The scene's waveform at :data:`~apps.audioqa.sounds.SAMPLE_RATE`, float32, peak at most 0.95."""
    cfg = scene.config
    rng = np.random.default_rng([seed, scene.index, 1])
    n = round(cfg.duration * SAMPLE_RATE)
    mix = background(n, rng) * cfg.noise_rms
    for event in scene.events:
        start = round(event.onset * SAMPLE_RATE)
        wave = render(event.label, event.offset - event.onset, rng) * cfg.noise_rms * 10 ** (event.snr_db / 20)
        stop = min(n, start + wave.size)
        mix[start:stop] += wave[: stop - start]
    peak = float(np.abs(mix).max())
    if peak > 0.95:  # one gain for the whole clip: relative levels (the SNRs) stay exact
        mix *= 0.95 / peak
    return mix.astype(np.float32)


def _third(onset: float, duration: float) -> str | None:
    for k, border in enumerate((duration / 3, 2 * duration / 3)):
        if abs(onset - border) < 0.3:
            return None
        if onset < border:
            return THIRDS[k]
    return THIRDS[2]


def candidate_questions(scene: Scene) -> list[Question]:
    """Every templated question the scene answers unambiguously (see the module docstring)."""
    events = scene.events
    counts = {c: sum(e.label == c for e in events) for c in CLASSES}
    single = [(i, e) for i, e in enumerate(events) if counts[e.label] == 1]
    out: list[Question] = []
    for c in CLASSES:
        for t in TEMPLATES["existence"]:
            out.append(Question("existence", t.format(a=c), "yes" if counts[c] else "no"))
        if counts[c] < len(COUNT_WORDS):
            for t in TEMPLATES["counting"]:
                out.append(Question("counting", t.format(a=c), COUNT_WORDS[counts[c]]))
    for i, e in single:
        if i + 1 < len(events):
            out += [Question("order", t.format(a=e.label), events[i + 1].label) for t in TEMPLATES["after"]]
        if i > 0:
            out += [Question("order", t.format(a=e.label), events[i - 1].label) for t in TEMPLATES["before"]]
        third = _third(e.onset, scene.config.duration)
        if third is not None:
            out += [Question("timing", t.format(a=e.label), third) for t in TEMPLATES["timing"]]
        for _, d in single:
            if d is e:
                continue
            a_len, b_len = e.offset - e.onset, d.offset - d.onset
            if max(a_len, b_len) >= 1.4 * min(a_len, b_len):
                for kind, truth in (("longer", a_len > b_len), ("shorter", a_len < b_len)):
                    out += [
                        Question("duration", t.format(a=e.label, b=d.label), "yes" if truth else "no")
                        for t in TEMPLATES[kind]
                    ]
            if abs(e.snr_db - d.snr_db) >= 6.0:
                for kind, truth in (("louder", e.snr_db > d.snr_db), ("quieter", e.snr_db < d.snr_db)):
                    out += [
                        Question("loudness", t.format(a=e.label, b=d.label), "yes" if truth else "no")
                        for t in TEMPLATES[kind]
                    ]
    return out


def balanced_questions(candidates: Sequence[Sequence[Question]], per_type: int, seed: int) -> list[list[Question]]:
    """Pick up to ``per_type`` questions of each type so that every question text has each answer equally often.

    For existence, counting, timing, duration and loudness the answers of a text are the type's whole closed set
    (a text missing one of them is dropped); for order they are the answers the split offers for that text (at
    least three). Texts take one question per answer in turn until the type has ``per_type``.

    Args:
        candidates: Per scene, its candidate questions.
        per_type: Questions of each type to keep (fewer where the candidates do not allow balance).
        seed: Seed of the choice among equivalent candidates.

    Returns:
        Per scene, the questions kept.

    Example:
        >>> scenes = [sample_scene(0, i) for i in range(200)]
        >>> kept = balanced_questions([candidate_questions(s) for s in scenes], per_type=40, seed=0)
        >>> answers = [q.answer for qs in kept for q in qs if q.type == "existence"]
        >>> answers.count("yes") == answers.count("no") == 20
        True
    """
    rng = np.random.default_rng(seed)
    kept: list[list[Question]] = [[] for _ in candidates]
    for qtype in QUESTION_TYPES:
        groups: dict[str, dict[str, list[tuple[int, Question]]]] = defaultdict(lambda: defaultdict(list))
        for scene_index, questions in enumerate(candidates):
            for q in questions:
                if q.type == qtype:
                    groups[q.text][q.answer].append((scene_index, q))
        usable: list[list[list[tuple[int, Question]]]] = []
        for text in sorted(groups):
            by_answer = groups[text]
            needed = FIXED_ANSWERS.get(qtype)
            if needed is not None and any(a not in by_answer for a in needed):
                continue
            if needed is None and len(by_answer) < 3:
                continue
            lists = [list(by_answer[a]) for a in sorted(by_answer)]
            for items in lists:
                rng.shuffle(items)
            usable.append(lists)
        taken = 0
        depth = 0
        while taken < per_type:
            progressed = False
            for lists in usable:
                if depth < min(len(items) for items in lists) and taken + len(lists) <= per_type:
                    for items in lists:
                        scene_index, q = items[depth]
                        kept[scene_index].append(q)
                    taken += len(lists)
                    progressed = True
            if not progressed:
                break
            depth += 1
        if taken < per_type:
            log.info("question type %s: %d of %d asked for (balance limits it)", qtype, taken, per_type)
    return kept


@dataclass(frozen=True)
class SplitSpec:
    name: str
    n_clips: int
    seed: int


def scenes_and_questions(
    spec: SplitSpec, scene_config: SceneConfig, questions_per_clip: float
) -> tuple[list[Scene], list[list[Question]]]:
    """The split's scenes and its balanced questions (``questions_per_clip`` of each type per clip, at most)."""
    scenes = [sample_scene(spec.seed, i, scene_config) for i in range(spec.n_clips)]
    per_type = max(1, round(questions_per_clip * spec.n_clips))
    kept = balanced_questions([candidate_questions(s) for s in scenes], per_type, seed=spec.seed)
    return scenes, kept


class _SampleMaker:
    """Picklable ``make_sample`` for :class:`~core.data.HDF5Writer`: audio, log-mel, events, questions."""

    def __init__(self, seed: int, store_audio: bool) -> None:
        self.seed = seed
        self.store_audio = store_audio

    def __call__(self, item: tuple[Scene, list[Question]]) -> dict[str, Any]:
        import torch

        from apps.audioqa.functional import log_mel

        torch.set_num_threads(1)
        scene, questions = item
        wave = render_scene(scene, self.seed)
        mel = log_mel(torch.from_numpy(wave)).numpy().astype(np.float16)
        events = np.array(
            [[CLASSES.index(e.label), e.onset, e.offset, e.snr_db] for e in scene.events], dtype=np.float32
        ).reshape(-1, 4)
        sample: dict[str, Any] = {
            "mel": mel,
            "events": events,
            "questions": json.dumps([asdict(q) for q in questions]),
        }
        if self.store_audio:
            sample["audio"] = (wave * 32767).astype(np.int16)
        return sample


def write_split(
    path: str | Path,
    spec: SplitSpec,
    scene_config: SceneConfig | None = None,
    questions_per_clip: float = 1.0,
    store_audio: bool = False,
    num_workers: int = 1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write one split to an HDF5 file (one group per clip: ``mel``, ``events``, ``questions``, ``audio``).

    Returns a summary: clips, events, and questions per type and answer.
    """
    from core.data import HDF5Writer

    cfg = scene_config or SceneConfig()
    scenes, questions = scenes_and_questions(spec, cfg, questions_per_clip)
    HDF5Writer(path, num_workers=num_workers, chunk_size=50, overwrite=overwrite).write(
        list(zip(scenes, questions, strict=True)), make_sample=_SampleMaker(spec.seed, store_audio)
    )
    return summarize(scenes, questions)


def summarize(scenes: Sequence[Scene], questions: Iterable[Sequence[Question]]) -> dict[str, Any]:
    """Counts of clips, events and questions (per type, and per answer within a type)."""
    answers: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for qs in questions:
        for q in qs:
            answers[q.type][q.answer] += 1
    return {
        "clips": len(scenes),
        "events": sum(len(s.events) for s in scenes),
        "questions": {t: dict(sorted(a.items())) for t, a in sorted(answers.items())},
    }


def write_wav(path: str | Path, wave: np.ndarray) -> None:
    """Write a mono float waveform as 16-bit PCM at :data:`~apps.audioqa.sounds.SAMPLE_RATE`."""
    import soundfile

    from core.files import atomic_path

    with atomic_path(path) as tmp:
        soundfile.write(str(tmp), wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")


__all__ = [
    "QUESTION_TYPES",
    "Event",
    "Question",
    "Scene",
    "SceneConfig",
    "SplitSpec",
    "balanced_questions",
    "candidate_questions",
    "render_scene",
    "sample_scene",
    "write_split",
    "write_wav",
]
