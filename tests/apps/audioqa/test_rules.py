"""The rule answerer reproduces the generator's answers from the true events (so its score on detected events
measures the SED's events, not the rules)."""

from __future__ import annotations

from apps.audioqa.rules import rule_answer
from apps.audioqa.scenes import QUESTION_TYPES, candidate_questions, sample_scene


def test_rules_on_the_true_events_give_the_generators_answers() -> None:
    asked: dict[str, int] = dict.fromkeys(QUESTION_TYPES, 0)
    for index in range(150):
        scene = sample_scene(seed=5, index=index)
        for q in candidate_questions(scene):
            assert rule_answer(q.text, scene.events) == q.answer, (index, q)
            asked[q.type] += 1
    assert min(asked.values()) > 50, asked  # every type checked many times


def test_a_question_outside_the_templates_or_the_events_has_no_answer() -> None:
    scene = sample_scene(seed=5, index=0)
    assert rule_answer("what is the weather", scene.events) == ""
    absent = next(c for c in ("siren", "bell", "beep", "rain") if all(e.label != c for e in scene.events))
    assert rule_answer(f"when did the {absent} start", scene.events) == ""
