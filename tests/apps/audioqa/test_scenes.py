"""The generator: the same seed gives the same scenes, audio and questions; answers are balanced per question."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from apps.audioqa.scenes import (
    FIXED_ANSWERS,
    QUESTION_TYPES,
    SceneConfig,
    SplitSpec,
    candidate_questions,
    render_scene,
    sample_scene,
    scenes_and_questions,
)
from apps.audioqa.sounds import CLASSES, SAMPLE_RATE


def test_scenes_are_a_function_of_seed_and_index() -> None:
    assert sample_scene(3, 7) == sample_scene(3, 7)
    assert sample_scene(3, 7) != sample_scene(4, 7)
    assert np.array_equal(render_scene(sample_scene(3, 7), 3), render_scene(sample_scene(3, 7), 3))
    a, b = scenes_and_questions(SplitSpec("x", 80, 5), SceneConfig(), 1.0)
    c, d = scenes_and_questions(SplitSpec("x", 80, 5), SceneConfig(), 1.0)
    assert a == c and b == d


def test_events_are_inside_the_clip_and_apart() -> None:
    cfg = SceneConfig()
    for i in range(200):
        events = sample_scene(0, i, cfg).events
        assert 1 <= len(events) <= cfg.max_events
        assert events[0].onset >= cfg.min_gap - 1e-3 and events[-1].offset <= cfg.duration - cfg.min_gap + 1e-3
        for e, f in itertools.pairwise(events):
            assert f.onset - e.offset >= cfg.min_gap - 1e-3
        assert all(cfg.snr_db[0] <= e.snr_db <= cfg.snr_db[1] for e in events)


def test_the_mix_holds_each_event_at_its_level() -> None:
    scene = sample_scene(1, 2)
    wave = render_scene(scene, 1).astype(np.float64)
    noise_only = render_scene(type(scene)(index=scene.index, events=(), config=scene.config), 1)
    gain = 1.0 if np.abs(wave).max() < 0.949 else None  # a clip scaled to its peak keeps relative levels only
    levels = []
    for e in scene.events:
        part = slice(round(e.onset * SAMPLE_RATE), round(e.offset * SAMPLE_RATE))
        levels.append(10 * np.log10(np.mean(wave[part] ** 2) / np.mean(noise_only[part].astype(np.float64) ** 2)))
    truth = [10 * np.log10(10 ** (e.snr_db / 10) + 1) for e in scene.events]  # event + independent noise power
    if gain is not None:
        assert levels == pytest.approx(truth, abs=1.5)
    else:
        assert np.diff(levels) == pytest.approx(np.diff(truth), abs=1.5)


def test_answers_are_balanced_per_question_text() -> None:
    _, kept = scenes_and_questions(SplitSpec("x", 600, 11), SceneConfig(), 1.0)
    by_text: dict[str, Counter[str]] = defaultdict(Counter)
    types = {}
    for qs in kept:
        for q in qs:
            by_text[q.text][q.answer] += 1
            types[q.text] = q.type
    assert set(types.values()) == set(QUESTION_TYPES)
    for text, answers in by_text.items():
        assert len(set(answers.values())) == 1, f"{text}: {answers}"
        if types[text] in FIXED_ANSWERS:
            assert set(answers) == set(FIXED_ANSWERS[types[text]])
    # The best a question-only model can do is the majority answer of each text: chance for every type.
    for qtype in QUESTION_TYPES:
        texts = [t for t in by_text if types[t] == qtype]
        best = sum(max(by_text[t].values()) for t in texts) / sum(sum(by_text[t].values()) for t in texts)
        chance = 1 / len(FIXED_ANSWERS[qtype]) if qtype in FIXED_ANSWERS else 1 / 3
        assert best <= chance + 1e-9, qtype


def test_candidate_answers_follow_the_scene() -> None:
    for i in range(50):
        scene = sample_scene(2, i)
        counts = Counter(e.label for e in scene.events)
        for q in candidate_questions(scene):
            label = next(c for c in sorted(CLASSES, key=len, reverse=True) if c in q.text)
            if q.type == "existence":
                assert q.answer == ("yes" if counts[label] else "no")
            if q.type == "counting":
                assert q.answer == ("zero", "one", "two", "three")[counts[label]]


def test_make_data_writes_the_same_file_with_one_or_two_workers(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from apps.audioqa.data import make_data
    from core.data import RawHDF5Dataset

    files = []
    for workers in (1, 2):
        cfg = OmegaConf.create(
            {"out_dir": str(tmp_path / str(workers)), "num_workers": workers, "examples": 0,
             "splits": {"val": {"n_clips": 6, "seed": 4}}}
        )  # fmt: skip
        make_data(cfg)
        files.append(RawHDF5Dataset(tmp_path / str(workers) / "val.h5"))
    for i in range(6):
        one, two = files[0][i], files[1][i]
        assert np.array_equal(one["mel"], two["mel"]) and np.array_equal(one["events"], two["events"])
        assert one["questions"] == two["questions"]
