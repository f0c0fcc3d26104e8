"""One annotation round on a tiny split: labelled as an array of 2 local jobs (core.jobs), one HDF5 per shard,
merged, reviewed by the scripted reviewer, resumable; the accepted labels train the next round."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from apps.avsl.annotate import annotate_round, label_correct, teacher_labels
from apps.avsl.data import AVSLDataset, SceneArrays
from core.data import RawHDF5Dataset
from core.train import fit
from tests.apps.avsl.conftest import TINY_OVERRIDES, TRAIN


def test_teacher_labels_and_their_check() -> None:
    maps = np.zeros((4, 8, 16), np.float32)
    maps[2, 1:3, 1:3] = 0.9
    labels, classes, confidence = teacher_labels(maps, np.array([0.01, 0.02, 0.97, 0.03]))
    assert classes.tolist() == [2] and (labels == 1).sum() == 4 and confidence == pytest.approx(0.8)
    truth = np.zeros((8, 16), np.uint8)
    truth[1:3, 1:3], truth[5:7, 5:7] = 1, 2  # object 0 sounds (class 2), object 1 is a silent look-alike
    assert label_correct(labels, classes, truth, np.array([2, 2]), np.array([True, False]))
    assert not label_correct(labels, np.array([1]), truth, np.array([2, 2]), np.array([True, False]))
    assert not label_correct((truth == 2).astype(np.uint8), classes, truth, np.array([2, 2]), np.array([True, False]))


@pytest.mark.slow
def test_an_annotation_round_sharded_as_two_jobs(tiny_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "round"
    result = annotate_round(
        tiny_run,
        tiny_data / "unlabelled.h5",
        out,
        n_hand_frames=8,
        n_shards=2,
        threshold=0.0,
        min_review=4,
        max_reject=1.0,
        n_overlays=3,
        timeout=300,
    )
    shards = sorted((out / "shards").glob("shard-*.h5"))
    assert [p.name for p in shards] == ["shard-0000.h5", "shard-0001.h5"]
    sizes = [len(RawHDF5Dataset(p)) for p in shards]
    assert sizes == [6, 6]  # 12 scenes split between the two array elements
    assert len(list((out / "logs").glob("label*.log"))) == 2
    merged = RawHDF5Dataset(out / "pseudo.h5")
    truth = SceneArrays(tiny_data / "unlabelled.h5")
    assert merged.group_names == truth.names  # every scene labelled once, in order
    report = json.loads((out / "report.json").read_text())
    assert report["n_unlabelled"] == 12 and report["n_accepted"] == len(RawHDF5Dataset(result.accepted_path))
    assert report["n_reviewed"] >= 4 and len(result.overlays) == 3
    assert all(p.suffix == ".png" and p.stat().st_size > 0 for p in result.overlays)
    # the reviewer's verdicts are the hidden truth's: every reviewed rejection is a wrong label
    for path in result.overlays:
        name = path.stem.rsplit("-", 1)[0]
        group = merged.read_raw(merged.group_names.index(name))
        scene = truth[truth.names.index(name)]
        ok = label_correct(group["labels"], group["cls"], scene["labels"], scene["cls"], scene["sounding"])
        assert path.stem.endswith("accept" if ok else "reject")
    # each number of predicted sources is reviewed on its own: its own threshold, its accepted count
    assert set(report["thresholds"]) == set(report["n_accepted_by_sources"])
    assert sum(report["n_accepted_by_sources"].values()) == report["n_accepted"]
    expected = report["n_accepted"] / 8
    assert report["label_multiplier"] == pytest.approx(expected)

    # resumable: the shards are kept, only the merge and the review run again
    stamps = [p.stat().st_mtime_ns for p in shards]
    again = annotate_round(
        tiny_run,
        tiny_data / "unlabelled.h5",
        out,
        n_hand_frames=8,
        n_shards=2,
        threshold=0.0,
        min_review=4,
        max_reject=1.0,
        n_overlays=0,
        timeout=300,
    )
    assert json.dumps(again.report, sort_keys=True) == json.dumps(report, sort_keys=True)
    assert [p.stat().st_mtime_ns for p in shards] == stamps

    # the accepted labels feed the next round: the student trains on hand + pseudo labels
    if report["n_accepted"]:
        data = AVSLDataset([tiny_data / "hand.h5", tiny_data / "unlabelled.h5"], [None, result.accepted_path])
        assert len(data) == 8 + report["n_accepted"]
        student = tmp_path / "student"
        overrides = [f"data_dir={tiny_data}", *TINY_OVERRIDES, "trainer.max_epochs=1", f"annotate_dir={out}"]
        fit(TRAIN.with_name("student.yaml"), [*overrides, f"teacher={tiny_run}"], run_dir=student)
        assert (student / "checkpoints" / "last.ckpt").is_file()


def test_the_student_starts_from_the_teacher(tiny_run: Path, tmp_path: Path) -> None:
    from apps.avsl.model import AVSLNet
    from apps.avsl.task import AVSLTask
    from core.errors import UserError
    from core.train import load_run

    teacher = load_run(tiny_run)
    student = AVSLTask(AVSLNet(width=16, grid=(4, 8)), init_from=str(tiny_run))
    student.setup("validate")  # only a fit starts from the teacher
    learnt = teacher.model.state_dict()
    assert not all(torch.equal(student.model.state_dict()[name], value) for name, value in learnt.items())
    student.setup("fit")
    for name, value in learnt.items():
        assert torch.equal(student.model.state_dict()[name], value), name
    with pytest.raises(UserError, match="do not fit"):
        AVSLTask(AVSLNet(width=8, grid=(4, 8)), init_from=str(tiny_run)).setup("fit")
