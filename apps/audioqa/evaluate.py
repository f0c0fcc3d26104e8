"""Scoring trained runs and answering one question: SED event F1 (``sed_eval``), QA exact match per question
type, the majority-answer baseline, and :func:`ask` (a wav file and a question → the answer and the events).

Example:
    >>> import tempfile, numpy as np
    >>> path = tempfile.mkdtemp() + "/stereo.wav"
    >>> import soundfile; soundfile.write(path, np.zeros((1600, 2)), 16000)
    >>> try:
    ...     read_wav(path)
    ... except UserError as error:
    ...     print(error.what)
    the wav file has 2 channels; the models take mono
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.audioqa.scenes import QUESTION_TYPES
from apps.audioqa.sounds import CLASSES, SAMPLE_RATE
from core.errors import UserError


def sed_eval_f1(
    references: list[list[tuple[str, float, float]]], estimates: list[list[tuple[str, float, float]]]
) -> dict[str, float]:
    """Overall event-based F1, precision and recall of ``sed_eval`` with the DCASE settings (onsets within 200 ms,
    offsets within max(200 ms, 20% of the reference length))."""
    import sed_eval

    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(CLASSES), t_collar=0.2, percentage_of_length=0.2
    )
    for k, (reference, estimated) in enumerate(zip(references, estimates, strict=True)):
        name = f"clip{k}"
        metrics.evaluate(
            [{"filename": name, "event_label": lab, "onset": on, "offset": off} for lab, on, off in reference],
            [{"filename": name, "event_label": lab, "onset": on, "offset": off} for lab, on, off in estimated],
        )
    overall = metrics.results_overall_metrics()["f_measure"]
    return {
        "f1": float(overall["f_measure"]),
        "precision": float(overall["precision"]),
        "recall": float(overall["recall"]),
    }


def _sed_outputs(sed_run: str | Path, data_dir: str | Path, split: str) -> tuple[Any, list[Any], list[Any]]:
    from apps.audioqa.sed import ClipDataset, reference_events
    from core.train import load_run

    task = load_run(sed_run)
    clips = ClipDataset(_split_file(data_dir, split))
    outputs = []
    with torch.no_grad():
        for start in range(0, len(clips), 64):
            out = task(clips.mel[start : start + 64])
            outputs.append({k: out[k] for k in ("logits", "spans", "levels", "frame_logits")})
    return task, outputs, reference_events(clips.events, clips.mask)


def _estimates(outputs: list[Any], decoder: Any, clip_seconds: float) -> list[list[tuple[str, float, float]]]:
    from apps.audioqa.sed import decode_events

    return [
        [(e.label, e.onset, e.offset) for e in clip]
        for out in outputs
        for clip in decode_events(out, decoder, clip_seconds)
    ]


THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def select_decoder(sed_run: str | Path, data_dir: str | Path, split: str = "val") -> tuple[Any, dict[str, float]]:
    """The :class:`~apps.audioqa.sed.Decoder` of best event F1 on a split (the validation split: never the test one).

    Tried: each source (refined, queries, frames) with the query and frame thresholds of :data:`THRESHOLDS` (the
    median window, least length and gap keep the defaults the generator's statistics give); of equal scores the
    first in that order wins (refined keeps the query set, whose embeddings the event-level QA reads). Written to
    the run's ``decoder.json``, which :func:`run_decoder` reads.

    Returns:
        The chosen decoder and the F1 of every setting tried (``"source/threshold/frame_threshold"``).
    """
    from apps.audioqa.functional import event_f1
    from apps.audioqa.sed import Decoder
    from core.files import write_atomic

    task, outputs, references = _sed_outputs(sed_run, data_dir, split)
    settings = [Decoder("refined", t, f) for t in THRESHOLDS for f in THRESHOLDS]
    settings += [Decoder("queries", t) for t in THRESHOLDS]
    settings += [Decoder("frames", 0.5, f) for f in THRESHOLDS]
    scores = {}
    for decoder in settings:
        estimates = _estimates(outputs, decoder, task.model.clip_seconds)
        scores[decoder] = event_f1(references, estimates)["f1"]
    best = max(settings, key=lambda d: scores[d])
    chosen = {**asdict(best), "chosen_on": split, "f1": scores[best]}
    write_atomic(Path(sed_run) / "decoder.json", json.dumps(chosen, indent=2) + "\n")
    return best, {_setting_name(d): f for d, f in scores.items()}


def _setting_name(decoder: Any) -> str:
    if decoder.source == "queries":
        return f"queries/{decoder.threshold}"
    if decoder.source == "frames":
        return f"frames/{decoder.frame_threshold}"
    return f"refined/{decoder.threshold}/{decoder.frame_threshold}"


def run_decoder(sed_run: str | Path, data_dir: str | Path | None = None) -> Any:
    """The decoder a SED run uses: its ``decoder.json`` (chosen on the validation split), chosen now if there is
    none and ``data_dir`` is given, else the task's configured one."""
    from apps.audioqa.sed import Decoder
    from core.train import load_run

    path = Path(sed_run) / "decoder.json"
    if path.is_file():
        values = json.loads(path.read_text())
        return Decoder(**{k: v for k, v in values.items() if k in Decoder.__dataclass_fields__})
    if data_dir is not None:
        return select_decoder(sed_run, data_dir)[0]
    return load_run(sed_run).decoder


def evaluate_sed(
    sed_run: str | Path, data_dir: str | Path, split: str = "test", decoder: Any | None = None
) -> dict[str, Any]:
    """Event F1 of a SED run's best checkpoint on a split, by ``sed_eval`` and by our own implementation.

    ``decoder`` turns outputs into events (default: :func:`run_decoder`, chosen on the validation split).
    """
    from apps.audioqa.functional import event_f1

    decoder = decoder or run_decoder(sed_run, data_dir)
    task, outputs, references = _sed_outputs(sed_run, data_dir, split)
    estimates = _estimates(outputs, decoder, task.model.clip_seconds)
    ours = event_f1(references, estimates)
    reference = sed_eval_f1(references, estimates)
    return {
        "split": split,
        "clips": len(references),
        "decoder": asdict(decoder),
        "sed_eval_f1": reference["f1"],
        "sed_eval_precision": reference["precision"],
        "sed_eval_recall": reference["recall"],
        "f1": ours["f1"],
        "n_ref": ours["n_ref"],
        "n_est": ours["n_est"],
    }


def evaluate_rules(sed_run: str | Path, data_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """Exact match of :func:`~apps.audioqa.rules.rule_answer` on a SED run's detected events (no language model):
    how much of each answer the event-level output carries. Per question type and ``overall`` (the mean of types)."""
    from apps.audioqa.qa import accuracy_by_type, normalize
    from apps.audioqa.rules import rule_answer
    from apps.audioqa.sed import ClipDataset, decode_events

    decoder = run_decoder(sed_run, data_dir)
    task, outputs, _ = _sed_outputs(sed_run, data_dir, split)
    detected = [clip for out in outputs for clip in decode_events(out, decoder, task.model.clip_seconds)]
    questions = ClipDataset(_split_file(data_dir, split)).questions
    correct: dict[int, list[float]] = defaultdict(list)
    for events, text in zip(detected, questions, strict=True):
        for q in json.loads(text):
            answer = rule_answer(q["text"], events, task.model.clip_seconds)
            correct[QUESTION_TYPES.index(q["type"])].append(float(normalize(answer) == normalize(q["answer"])))
    return accuracy_by_type(correct)


def evaluate_qa(qa_run: str | Path, split: str = "test", data_dir: str | Path | None = None) -> dict[str, Any]:
    """Exact-match accuracy of a QA run's best checkpoint on a split, per question type and overall.

    ``overall`` is the mean over the six types (each type weighs the same whatever its count); ``micro`` is the
    share of all questions answered right.
    """
    from apps.audioqa.qa import accuracy_by_type
    from core.config import instantiate
    from core.config.loader import literal_override
    from core.train import load_run
    from core.train.run import load_run_config

    task = load_run(qa_run)
    cfg = load_run_config(qa_run, [literal_override("data_dir", str(data_dir))] if data_dir else [])
    datamodule = instantiate(cfg.datamodule)
    dataset = datamodule.split(split)
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, shuffle=False)
    correct: dict[int, list[float]] = defaultdict(list)
    with torch.no_grad():
        for batch in loader:
            for qtype, ok in zip(batch["type"].tolist(), task.correct(batch).tolist(), strict=True):
                correct[qtype].append(ok)
    scores: dict[str, Any] = accuracy_by_type(correct)
    scores["micro"] = sum(sum(v) for v in correct.values()) / sum(len(v) for v in correct.values())
    scores["n_questions"] = {QUESTION_TYPES[t]: len(v) for t, v in sorted(correct.items())}
    return scores


def _questions(data_dir: str | Path, split: str) -> list[dict[str, str]]:
    from core.data import RawHDF5Dataset

    source = RawHDF5Dataset(_split_file(data_dir, split))
    out = []
    for i in range(len(source)):
        text = source[i]["questions"]
        out += json.loads(text.decode() if isinstance(text, bytes) else str(text))
    source.close()
    return out


def majority_baseline(data_dir: str | Path, split: str = "test") -> dict[str, float]:
    """Accuracy of answering every question of a type with that type's most frequent training answer."""
    train = _questions(data_dir, "train")
    majority = {
        t: Counter(q["answer"] for q in train if q["type"] == t).most_common(1)[0][0]
        for t in QUESTION_TYPES
        if any(q["type"] == t for q in train)
    }
    correct: dict[str, list[float]] = defaultdict(list)
    for q in _questions(data_dir, split):
        correct[q["type"]].append(float(majority.get(q["type"]) == q["answer"]))
    scores = {t: sum(correct[t]) / len(correct[t]) for t in QUESTION_TYPES if correct[t]}
    scores["overall"] = sum(scores.values()) / len(scores)
    return scores


def _split_file(data_dir: str | Path, split: str) -> Path:
    path = Path(data_dir) / f"{split}.h5"
    if not path.is_file():
        raise UserError(
            f"no {split}.h5 in the data folder",
            where=str(data_dir),
            hint="run `kakehashi audioqa make-data` first, or give the right data_dir",
        )
    return path


def read_wav(path: str | Path) -> np.ndarray:
    """A mono 16 kHz wav file as float32; any other rate or channel count is a :class:`UserError`."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise UserError("wav file not found", where=str(path), hint="check the path")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as exc:
        raise UserError(f"cannot read the audio file: {exc}", where=str(path), hint="give a PCM wav file") from exc
    if audio.shape[1] != 1:
        raise UserError(
            f"the wav file has {audio.shape[1]} channels; the models take mono",
            where=str(path),
            hint="mix it down to one channel, e.g. sox in.wav -c 1 out.wav",
        )
    if rate != SAMPLE_RATE:
        raise UserError(
            f"the wav file is sampled at {rate} Hz; the models take {SAMPLE_RATE} Hz",
            where=str(path),
            hint=f"resample it, e.g. sox in.wav -r {SAMPLE_RATE} out.wav",
        )
    if audio.shape[0] < SAMPLE_RATE // 10:
        raise UserError("the wav file is shorter than 0.1 s", where=str(path), hint="give a 10 s clip")
    return np.asarray(audio[:, 0])


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    events: list[dict[str, Any]]


def ask(qa_run: str | Path, wav: str | Path, question: str) -> Answer:
    """Answer ``question`` about the sound in ``wav`` with a QA run (and the SED run it was trained on).

    Returns the generated answer and the events the SED detected (the event-level prefix the answer relied on).
    """
    from apps.audioqa.qa import Tokenizer, pool_frames, sed_features
    from apps.audioqa.sed import decode_events, mel_of_wave
    from core.train import load_run
    from core.train.run import load_run_config

    if not question.strip():
        raise UserError("the question is empty", where="QUESTION", hint='ask e.g. "what happened after the siren"')
    unknown = Tokenizer().unknown_words(question)
    if unknown:
        raise UserError(
            f"the model does not know the word(s) {', '.join(unknown)}",
            where="QUESTION",
            hint='ask with the words of the question templates, e.g. "is there a door knock"',
        )
    wave = read_wav(wav)
    _require_run(qa_run, "QA")
    qa = load_run(qa_run)
    if not qa.sed_run:
        raise UserError("the QA run names no SED run", where=str(qa_run), hint="train it with sed_run=<a SED run>")
    _require_run(qa.sed_run, "SED")
    sed = load_run(qa.sed_run)
    seconds = sed.model.clip_seconds
    n = int(seconds * SAMPLE_RATE)
    wave = np.pad(wave[:n], (0, max(0, n - wave.size)))  # the SED was trained on clips of this length
    mel = mel_of_wave(torch.from_numpy(wave))
    with torch.no_grad():
        events = decode_events(sed(mel), run_decoder(qa.sed_run), seconds)[0]
        features = sed_features(sed.model, mel)
    cfg = load_run_config(qa_run)
    if qa.features == "frame":
        prefix = pool_frames(features["frame"], int(cfg.datamodule.get("frame_pool", 1))).float()
    else:
        prefix = features["event"].float()
    tokenizer = qa.tokenizer
    prompt = torch.tensor([tokenizer.prompt(question, len(tokenizer.encode(question)) + 2)])
    with torch.no_grad():
        answer = tokenizer.decode(
            qa.model.generate(prefix if qa.features != "none" else None, prompt, tokenizer)[0].tolist()
        )
    return Answer(question=question, answer=answer, events=[asdict(e) for e in events])


def _require_run(run: str | Path, what: str) -> None:
    from core.train.checkpoints import resolve_checkpoint

    if not (Path(run) / "merged_config.yaml").is_file():
        raise UserError(
            f"not a {what} run directory (no merged_config.yaml)",
            where=str(run),
            hint=f"give the --run-dir of a finished `kakehashi audioqa train-{what.lower()}`",
        )
    resolve_checkpoint(run, "best")  # a UserError when there is no checkpoint


__all__ = [
    "Answer",
    "ask",
    "evaluate_qa",
    "evaluate_rules",
    "evaluate_sed",
    "majority_baseline",
    "read_wav",
    "run_decoder",
    "sed_eval_f1",
    "select_decoder",
]
