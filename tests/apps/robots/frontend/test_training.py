"""Training on mixtures only: the loss goes down, the training path never opens a clean signal, the config
trains through core.train, and the trained front-end runs offline and block-online with aligned output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

from apps.robots.frontend import functional as F  # noqa: E402
from apps.robots.frontend.enhance import Frontend, StreamingFrontend  # noqa: E402
from apps.robots.frontend.model import DirectionalMaskNet, MaskNet  # noqa: E402
from apps.robots.frontend.task import FrontendTask, MixtureDataModule, MixtureDataset, TeacherSpec  # noqa: E402

from .conftest import TRAIN_YAML, tiny_overrides  # noqa: E402


@pytest.mark.parametrize(
    ("objective", "model"), [("teacher", DirectionalMaskNet), ("teacher", MaskNet), ("fca", MaskNet)]
)
def test_a_short_training_run_lowers_the_loss(tiny_data: dict[str, Path], objective: str, model: type) -> None:
    torch.manual_seed(0)
    task = FrontendTask(model=model(hidden=16), objective=objective)
    data = MixtureDataset(tiny_data["train"], crop=16000, teacher=TeacherSpec(iterations=3))
    items = [data[i] for i in range(3)]
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    assert batch["teacher"].shape == (3, 3, 257, F.n_frames(16000, 512, 256))
    optimizer = torch.optim.Adam(task.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float(task.loss(batch))
    for _ in range(20):
        optimizer.zero_grad()
        loss = task.loss(batch)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(task.loss(batch))
    if objective == "fca":  # a likelihood near 3 nats per bin
        assert after < before - 0.05, (before, after)
    else:  # a KL divergence, which goes to 0 (the directional network starts near the tiny teacher's soft masks)
        assert after < 0.7 * before, (before, after)


def test_the_training_split_holds_no_clean_signal(tiny_data: dict[str, Path]) -> None:
    with h5py.File(tiny_data["train"]) as f:
        keys = {key for group in f.values() for key in group}
    assert "mixture" in keys and not keys & {"clean", "noise"}
    with h5py.File(tiny_data["eval"]) as f:  # the evaluation split does hold them: the check above can fail
        assert {"clean", "noise"} <= set(next(iter(f.values())))


def test_the_training_path_never_reads_clean_signals(
    tiny_data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole `fit` on files that do hold clean images: every HDF5 dataset it opens is a mixture."""
    from core.train import fit

    opened: list[str] = []
    real_open = h5py.h5d.open

    def recording_open(location: Any, name: bytes, *args: Any, **kwargs: Any) -> Any:
        opened.append(name.decode())
        return real_open(location, name, *args, **kwargs)

    real_getitem = h5py.Group.__getitem__

    def recording_getitem(self: Any, name: Any) -> Any:
        item = real_getitem(self, name)
        if isinstance(item, h5py.Dataset):
            opened.append(str(item.name))
        return item

    monkeypatch.setattr(h5py.h5d, "open", recording_open)
    monkeypatch.setattr(h5py.Group, "__getitem__", recording_getitem)
    data = tiny_data["eval"]
    fit(TRAIN_YAML, tiny_overrides(data, data), run_dir=tmp_path / "run")
    assert opened, "the recorder saw nothing: it would not see a clean read either"
    assert all(name.rstrip("/").endswith("mixture") for name in opened), sorted(set(opened))
    with h5py.File(data) as f:  # and the recorder does see a clean read when one happens
        f[next(iter(f))]["clean"]
    assert any(name.endswith("clean") for name in opened)


def test_teacher_masks_of_a_crop_are_those_of_the_whole_mixture(tiny_data: dict[str, Path]) -> None:
    whole = MixtureDataset(tiny_data["train"], teacher=TeacherSpec(iterations=2))[0]
    cropped = MixtureDataset(tiny_data["train"], crop=8000, seed=3, teacher=TeacherSpec(iterations=2))
    item = cropped[0]
    start = next(
        s for s in range(0, 24001 - 8000, 256) if torch.equal(whole["mixture"][:, s : s + 8000], item["mixture"])
    )
    assert item["teacher"].shape[-1] == F.n_frames(8000, 512, 256)
    assert torch.equal(item["teacher"], whole["teacher"][..., start // 256 : start // 256 + item["teacher"].shape[-1]])


def test_datamodule_reports_a_missing_file(tmp_path: Path) -> None:
    from core.errors import UserError

    dm = MixtureDataModule(train=str(tmp_path / "none.h5"), val=str(tmp_path / "none.h5"))
    with pytest.raises(UserError, match="data file not found"):
        dm.setup("fit")


def test_trained_run_enhances_offline_and_streaming_with_aligned_output(tiny_run: Path) -> None:
    frontend = Frontend.from_run(tiny_run)
    speech = np.random.default_rng(0).standard_normal(12000) * np.hanning(12000)
    identical = np.tile(speech, (4, 1))  # one source, the same at every mic: MVDR must pass it unchanged
    offline = frontend.enhance(identical)
    streamed = StreamingFrontend(frontend).run(identical, block=512)
    assert F.si_sdr(offline, speech) > 25.0
    assert F.si_sdr(streamed, speech) > 25.0
    assert F.si_sdr(np.roll(streamed, 64), speech) < 10.0  # a misalignment would show
    assert frontend.separate(identical).shape == (2, 12000)
