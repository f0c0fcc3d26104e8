"""The audio-language model: a small decoder-only LM, trained from scratch, that reads an audio prefix then the
question and generates the answer word by word (the Pengi / LTU recipe at toy scale).

The prefix is one of three feature kinds of a frozen SED run (:class:`~apps.audioqa.sed.SEDTransformer`):

- ``frame``: its encoder's frame-level features (one per 80 ms, mean-pooled by ``frame_pool``) with the frame-wise
  class probabilities;
- ``event``: its decoder's event-level embeddings, one per query, with each query's class probabilities, span,
  level and confidence, ordered by predicted onset (queries that found no event last);
- ``none``: no prefix at all, the question-only baseline.

Each kind enters the LM's token space the same way (:meth:`AudioPrefixLM.embed_prefix`): standardized, through
a two-layer MLP, plus the word embedding of the position's most probable class. The sequence is
``[prefix] <bos> question <sep> answer <eos>``; the loss is the cross-entropy of the answer tokens and ``<eos>``.

Example:
    >>> import torch
    >>> tok = Tokenizer()
    >>> tok.decode(tok.encode("what happened after the bird chirp"))
    'what happened after the bird chirp'
    >>> lm = AudioPrefixLM(vocab_size=len(tok), prefix_dim=5, d_model=32, n_heads=2, n_layers=1)
    >>> prompts = torch.tensor([tok.prompt("is there a siren", 16)])
    >>> lm.generate(torch.zeros(1, 3, 5), prompts, tok).shape
    torch.Size([1, 4])
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apps.audioqa.scenes import COUNT_WORDS, QUESTION_TYPES, TEMPLATES, THIRDS
from apps.audioqa.sounds import CLASSES
from core.data.datamodule import DataModule
from core.errors import UserError
from core.train.task import OptimizerFactory, OptimizerTask

log = logging.getLogger(__name__)

FEATURE_KINDS = ("event", "frame", "none")
PAD, BOS, SEP, EOS, UNK = "<pad>", "<bos>", "<sep>", "<eos>", "<unk>"
MAX_ANSWER = 4  # answer tokens generated at most (the longest answer has two words, then <eos>)


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, single spaces: what exact match compares.

    Example:
        >>> normalize("  Bird  Chirp. ")
        'bird chirp'
    """
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


class Tokenizer:
    """Word-level vocabulary of the question templates, class names and answers (fixed: nothing to fit)."""

    def __init__(self) -> None:
        words: set[str] = set()
        for templates in TEMPLATES.values():
            for template in templates:
                words.update(template.replace("{a}", " ").replace("{b}", " ").split())
        for text in (*CLASSES, *COUNT_WORDS, *THIRDS, "yes no"):
            words.update(text.split())
        self.itos = [PAD, BOS, SEP, EOS, UNK, *sorted(words)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(w, self.stoi[UNK]) for w in normalize(text).split()]

    def decode(self, ids: Sequence[int]) -> str:
        words = []
        for i in ids:
            if i == self.stoi[EOS]:
                break
            if i >= 5:
                words.append(self.itos[i])
        return " ".join(words)

    def unknown_words(self, text: str) -> list[str]:
        return [w for w in normalize(text).split() if w not in self.stoi]

    def prompt(self, question: str, length: int) -> list[int]:
        """``<bos> question <sep>``, right-padded to ``length``."""
        ids = [self.stoi[BOS], *self.encode(question), self.stoi[SEP]]
        return ids + [self.stoi[PAD]] * (length - len(ids))

    def example(self, question: str, answer: str, length: int) -> list[int]:
        """``<bos> question <sep> answer <eos>``, right-padded to ``length``."""
        ids = [self.stoi[BOS], *self.encode(question), self.stoi[SEP], *self.encode(answer), self.stoi[EOS]]
        return ids + [self.stoi[PAD]] * (length - len(ids))


class AudioPrefixLM(nn.Module):
    """Decoder-only transformer over ``[projected prefix] + tokens`` with a causal mask and tied output weights.

    Each prefix position enters the token space as ``LayerNorm(MLP(standardized feature))`` plus, where the feature
    holds class probabilities (``class_columns``), the word embedding of its most probable class name scaled by that
    probability: the prefix then speaks the question's words ("is there a *siren*"), so binding a question's class
    word to the audio is a match of like with like instead of a mapping the LM must discover. The feature is
    standardized per column with the training set's statistics (:meth:`set_prefix_statistics`; kept in the
    state dict), so that scalar inputs such as onsets keep their scale next to a 64-wide embedding. Token and
    position embeddings start at std 0.02 (GPT-2's initialization): at N(0, 1) they drown the projected prefix.

    Args:
        vocab_size: Tokens.
        prefix_dim: Width of one prefix feature (0: no prefix).
        d_model, n_heads, n_layers, dim_feedforward, dropout: Transformer sizes.
        max_len: Longest prefix + text.
        class_columns: ``(start, stop)`` columns of the prefix feature that hold the class probabilities, in the
            order of ``class_words``; ``None``: no class-word input.
        class_words: Token ids of each class name.
    """

    prefix_mean: Tensor
    prefix_std: Tensor
    class_word_ids: Tensor
    class_word_mask: Tensor

    def __init__(
        self,
        vocab_size: int,
        prefix_dim: int,
        d_model: int = 96,
        n_heads: int = 4,
        n_layers: int = 3,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        max_len: int = 256,
        class_columns: tuple[int, int] | None = None,
        class_words: Sequence[Sequence[int]] = (),
    ) -> None:
        super().__init__()
        if class_columns is not None and class_columns[1] - class_columns[0] != len(class_words):
            raise ValueError(f"class_columns {class_columns} do not match {len(class_words)} class names")
        self.prefix_dim = prefix_dim
        self.class_columns = class_columns
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.position.weight, std=0.02)
        self.project: nn.Module | None = None
        if prefix_dim:
            self.project = nn.Sequential(
                nn.Linear(prefix_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model), nn.LayerNorm(d_model)
            )
        self.register_buffer("prefix_mean", torch.zeros(prefix_dim))
        self.register_buffer("prefix_std", torch.ones(prefix_dim))
        # Each class name as a (classes, words) index with a mask: two-word names ("bird chirp") average their words.
        longest = max((len(w) for w in class_words), default=0)
        words = torch.zeros(len(class_words), longest, dtype=torch.long)
        word_mask = torch.zeros(len(class_words), longest)
        for c, ids in enumerate(class_words):
            words[c, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
            word_mask[c, : len(ids)] = 1.0
        self.register_buffer("class_word_ids", words, persistent=False)
        self.register_buffer("class_word_mask", word_mask, persistent=False)
        self.layers = nn.ModuleList(
            [
                nn.TransformerEncoderLayer(
                    d_model, n_heads, dim_feedforward, dropout, batch_first=True, norm_first=True
                )
                for _ in range(n_layers)
            ]
        )
        self.norm = nn.LayerNorm(d_model)

    @torch.no_grad()
    def set_prefix_statistics(self, prefixes: Tensor) -> None:
        """Standardize prefix columns by the mean and std of ``prefixes (N, P, prefix_dim)`` (the training set)."""
        flat = prefixes.reshape(-1, prefixes.shape[-1]).float()
        self.prefix_mean.copy_(flat.mean(0))
        self.prefix_std.copy_(flat.std(0) + 1e-3)  # constant columns (a class never predicted) stay finite

    def embed_prefix(self, prefix: Tensor) -> Tensor:
        """The prefix in the token space ``(B, P, d_model)``."""
        assert self.project is not None
        x: Tensor = self.project((prefix - self.prefix_mean) / self.prefix_std)
        if self.class_columns is not None:
            start, stop = self.class_columns
            confidence, best = prefix[..., start:stop].max(dim=-1)
            mask = self.class_word_mask
            names = (self.embed(self.class_word_ids) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            x = x + confidence.unsqueeze(-1) * names[best]
        return x

    def forward(self, prefix: Tensor | None, tokens: Tensor) -> Tensor:
        """Logits ``(B, L, vocab)`` at the text positions (the prefix positions are dropped)."""
        x = self.embed(tokens)
        n_prefix = 0
        if self.project is not None and prefix is not None and prefix.shape[1]:
            x = torch.cat([self.embed_prefix(prefix), x], dim=1)
            n_prefix = prefix.shape[1]
        x = x + self.position(torch.arange(x.shape[1], device=x.device))
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        logits: Tensor = self.norm(x[:, n_prefix:]) @ self.embed.weight.T
        return logits

    @torch.no_grad()
    def generate(self, prefix: Tensor | None, prompts: Tensor, tokenizer: Tokenizer) -> Tensor:
        """Greedy answers ``(B, MAX_ANSWER)`` for right-padded prompts ``<bos> question <sep> <pad>...``."""
        pad, sep, eos = tokenizer.stoi[PAD], tokenizer.stoi[SEP], tokenizer.stoi[EOS]
        batch = prompts.shape[0]
        cursor = (prompts == sep).int().argmax(dim=1)  # the position whose next token is the first answer token
        buffer = torch.cat([prompts, torch.full((batch, MAX_ANSWER), pad, device=prompts.device)], dim=1)
        rows = torch.arange(batch, device=prompts.device)
        answers = torch.full((batch, MAX_ANSWER), eos, dtype=torch.long, device=prompts.device)
        done = torch.zeros(batch, dtype=torch.bool, device=prompts.device)
        for step in range(MAX_ANSWER):
            logits = self(prefix, buffer)
            token = logits[rows, cursor + step].argmax(-1)
            token = torch.where(done, torch.full_like(token, eos), token)
            answers[:, step] = token
            buffer[rows, cursor + step + 1] = token
            done |= token == eos
            if bool(done.all()):
                break
        return answers


def prefix_dim(kind: str, sed_d_model: int, n_classes: int) -> int:
    """Width of one prefix feature of ``kind`` for a SED model of ``sed_d_model`` and ``n_classes``."""
    if kind == "event":
        return sed_d_model + (n_classes + 1) + 3
    if kind == "frame":
        return sed_d_model + n_classes
    if kind == "none":
        return 0
    raise UserError(f"unknown feature kind {kind!r}", where="features", hint=f"one of {', '.join(FEATURE_KINDS)}")


def class_columns(kind: str, sed_d_model: int, n_classes: int) -> tuple[int, int] | None:
    """Columns of a ``kind`` prefix feature that hold the class probabilities (see :func:`sed_features`)."""
    return None if kind == "none" else (sed_d_model, sed_d_model + n_classes)


def sed_features(sed: Any, mel: Tensor, batch_size: int = 64) -> dict[str, Tensor]:
    """The frozen SED's features of clips ``(N, n_mels, T)``: ``frame (N, T', d + C)``, ``event (N, Q, d + C + 4)``."""
    frames, events = [], []
    sed.eval()
    with torch.no_grad():
        for start in range(0, mel.shape[0], batch_size):
            out = sed(mel[start : start + batch_size])
            frames.append(torch.cat([out["frames"], torch.sigmoid(out["frame_logits"])], dim=-1))
            prob = out["logits"].softmax(-1)
            spans, levels = out["spans"], out["levels"].unsqueeze(-1)
            confidence = 1 - prob[..., -1]
            key = torch.where(confidence >= 0.5, spans[..., 0], spans[..., 0] + 2.0)  # events by onset, then the rest
            order = key.argsort(dim=1)
            feature = torch.cat([out["events"], prob, spans, levels], dim=-1)
            events.append(feature.gather(1, order.unsqueeze(-1).expand_as(feature)))
    return {"frame": torch.cat(frames).to(torch.float16), "event": torch.cat(events).to(torch.float16)}


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def cached_features(sed_run: str | Path, split_file: Path, mel: Tensor) -> dict[str, Tensor]:
    """:func:`sed_features` of a split, computed once per (SED checkpoint, split file) and kept in the SED run."""
    from core.files import atomic_path
    from core.train import load_run
    from core.train.checkpoints import resolve_checkpoint

    run = Path(sed_run)
    checkpoint = resolve_checkpoint(run, "best")
    cache = run / "features" / f"{split_file.stem}-{_fingerprint(split_file)}-{_fingerprint(checkpoint)}.pt"
    if cache.is_file():
        features: dict[str, Tensor] = torch.load(cache)
        return features
    log.info("computing SED features of %s with %s", split_file, checkpoint)
    task = load_run(run)
    features = sed_features(task.model, mel)
    cache.parent.mkdir(exist_ok=True)
    with atomic_path(cache) as tmp:
        torch.save(features, tmp)
    return features


def _sed_dims(sed_run: str | Path) -> tuple[int, int]:
    from core.train.run import load_run_config

    model = load_run_config(sed_run).task.model
    return int(model.get("d_model", 96)), int(model.get("n_classes", len(CLASSES)))


class QADataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Questions of one split, each with its clip's prefix features (shared between a clip's questions)."""

    def __init__(self, prefixes: Tensor | None, clip_questions: Sequence[str], tokenizer: Tokenizer, length: int):
        self.prefixes = prefixes
        self.items: list[tuple[int, int, str, str]] = []
        tokens, prompts = [], []
        for clip, text in enumerate(clip_questions):
            for q in json.loads(text):
                self.items.append((clip, QUESTION_TYPES.index(q["type"]), q["text"], q["answer"]))
                tokens.append(tokenizer.example(q["text"], q["answer"], length))
                prompts.append(tokenizer.prompt(q["text"], length))
        self.tokens = torch.tensor(tokens, dtype=torch.long).reshape(-1, length)
        self.prompts = torch.tensor(prompts, dtype=torch.long).reshape(-1, length)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip, qtype, _, _ = self.items[index]
        prefix = self.prefixes[clip].to(torch.float32) if self.prefixes is not None else torch.zeros(0, 0)
        return {
            "prefix": prefix,
            "tokens": self.tokens[index],
            "prompt": self.prompts[index],
            "type": qtype,
            "index": index,
        }


class QADataModule(DataModule):
    """Questions of the make-data splits with the features of a frozen SED run.

    Args:
        data_dir: Folder of ``{train,val,test}.h5``.
        sed_run: The SED run directory (its best checkpoint); not needed for ``features: none``.
        features: ``event``, ``frame`` or ``none``.
        frame_pool: Frames averaged into one prefix position (``frame`` only).
        batch_size: Questions per batch.
        text_length: Token slots for ``<bos> question <sep> answer <eos>``.
    """

    def __init__(
        self,
        data_dir: str,
        sed_run: str | None,
        features: str = "event",
        frame_pool: int = 2,
        batch_size: int = 64,
        text_length: int = 18,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        prefix_dim(features, 0, 0)  # checks the kind
        self.data_dir = Path(data_dir)
        self.sed_run = sed_run
        self.features = features
        self.frame_pool = frame_pool
        self.text_length = text_length
        self.tokenizer = Tokenizer()

    def split(self, name: str) -> QADataset:
        from apps.audioqa.sed import ClipDataset

        path = self.data_dir / f"{name}.h5"
        if not path.is_file():
            raise UserError(
                f"no {name}.h5 in the data folder",
                where=str(self.data_dir),
                hint="run `kakehashi audioqa make-data` first (its out_dir is this data_dir)",
            )
        clips = ClipDataset(path)
        prefixes = None
        if self.features != "none":
            if not self.sed_run:
                raise UserError(
                    "the QA data need a SED run",
                    where="datamodule.sed_run",
                    hint="train one with `kakehashi audioqa train-sed`; give its run directory",
                )
            features = cached_features(self.sed_run, path, clips.mel)
            prefixes = (
                pool_frames(features["frame"], self.frame_pool) if self.features == "frame" else features["event"]
            )
        return QADataset(prefixes, clips.questions, self.tokenizer, self.text_length)

    def setup(self, stage: str) -> None:
        if self.train_dataset is not None:
            return
        self.train_dataset = self.split("train")
        self.val_dataset = self.split("val")
        self.test_dataset = self.split("test")
        self.predict_dataset = self.test_dataset


def pool_frames(frames: Tensor, factor: int) -> Tensor:
    """Mean of every ``factor`` consecutive frames ``(N, T, D) → (N, ceil(T / factor), D)``."""
    if factor <= 1:
        return frames
    pooled = F.avg_pool1d(frames.float().transpose(1, 2), factor, ceil_mode=True)
    return pooled.transpose(1, 2).to(frames.dtype)


class QATask(OptimizerTask):
    """Train an :class:`AudioPrefixLM` on one feature kind; validation and test log exact-match accuracy.

    Args:
        features: ``event``, ``frame`` or ``none`` (must agree with the datamodule's).
        sed_run: The SED run whose features are the prefix (its width comes from the run's config).
        d_model, n_heads, n_layers, dim_feedforward, dropout: The LM's sizes.
        optimizer, schedulers, param_groups: See :class:`~core.train.task.OptimizerTask`.
    """

    def __init__(
        self,
        features: str = "event",
        sed_run: str | None = None,
        d_model: int = 96,
        n_heads: int = 4,
        n_layers: int = 3,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        optimizer: OptimizerFactory | None = None,
        schedulers: Sequence[Any] | None = None,
        param_groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, schedulers=schedulers, param_groups=param_groups)
        self.features = features
        self.sed_run = sed_run
        self.tokenizer = Tokenizer()
        if features != "none" and not sed_run:
            raise UserError(
                "the QA model needs a SED run",
                where="task.sed_run",
                hint="train one with `kakehashi audioqa train-sed`; give its run directory",
            )
        dims = _sed_dims(sed_run) if features != "none" and sed_run else (0, len(CLASSES))
        self.model = AudioPrefixLM(
            len(self.tokenizer),
            prefix_dim(features, *dims),
            d_model,
            n_heads,
            n_layers,
            dim_feedforward,
            dropout,
            class_columns=class_columns(features, *dims),
            class_words=[self.tokenizer.encode(name) for name in CLASSES],
        )
        self._correct: dict[int, list[float]] = {}

    def on_fit_start(self) -> None:
        """Standardize the prefix by the training set's statistics (the same values again on resume)."""
        dataset = getattr(getattr(self.trainer, "datamodule", None), "train_dataset", None)
        if self.model.prefix_dim and isinstance(dataset, QADataset) and dataset.prefixes is not None:
            self.model.set_prefix_statistics(dataset.prefixes)

    def _prefix(self, batch: Mapping[str, Tensor]) -> Tensor | None:
        return batch["prefix"] if self.features != "none" else None

    def loss(self, batch: Mapping[str, Tensor]) -> Tensor:
        tokens = batch["tokens"]
        logits = self.model(self._prefix(batch), tokens[:, :-1])
        targets = tokens[:, 1:].clone()
        sep = self.tokenizer.stoi[SEP]
        after_sep = (tokens[:, :-1] == sep).long().cumsum(dim=1) > 0  # positions that predict the answer and <eos>
        targets[~after_sep | (targets == self.tokenizer.stoi[PAD])] = -100
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["tokens"].shape[0])
        return loss

    def answer(self, batch: Mapping[str, Tensor]) -> list[str]:
        ids = self.model.generate(self._prefix(batch), batch["prompt"], self.tokenizer)
        return [self.tokenizer.decode(row.tolist()) for row in ids]

    def correct(self, batch: Mapping[str, Tensor]) -> Tensor:
        """1.0 where the generated answer equals the true one after :func:`normalize`."""
        predicted = self.answer(batch)
        truth = [self.tokenizer.decode(_answer_ids(row.tolist(), self.tokenizer)) for row in batch["tokens"]]
        return torch.tensor([float(normalize(p) == normalize(t)) for p, t in zip(predicted, truth, strict=True)])

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Mapping[str, Tensor], stage: str) -> None:
        self.log(f"{stage}/loss", self.loss(batch), batch_size=batch["tokens"].shape[0], sync_dist=True)
        for qtype, ok in zip(batch["type"].tolist(), self.correct(batch).tolist(), strict=True):
            self._correct.setdefault(qtype, []).append(ok)

    def on_validation_epoch_end(self) -> None:
        self._log_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._log_accuracy("test")

    def _log_accuracy(self, stage: str) -> None:
        scores = accuracy_by_type(self._correct)
        self._correct = {}
        for name, value in scores.items():
            self.log(f"{stage}/acc" if name == "overall" else f"{stage}/acc_{name}", value, prog_bar=name == "overall")

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> list[str]:
        return self.answer(batch)


def _answer_ids(ids: Sequence[int], tokenizer: Tokenizer) -> list[int]:
    sep = tokenizer.stoi[SEP]
    return list(ids[ids.index(sep) + 1 :]) if sep in ids else []


def accuracy_by_type(correct: Mapping[int, Sequence[float]]) -> dict[str, float]:
    """Mean exact match per question type (keys: type names) and ``overall`` (the mean over types).

    ``overall`` weighs the six types equally, so a split's type mix does not move it.

    Example:
        >>> accuracy_by_type({0: [1.0, 0.0], 1: [1.0]})
        {'existence': 0.5, 'counting': 1.0, 'overall': 0.75}
    """
    scores = {QUESTION_TYPES[t]: sum(v) / len(v) for t, v in sorted(correct.items()) if v}
    scores["overall"] = sum(scores.values()) / len(scores) if scores else 0.0
    return scores


__all__ = [
    "FEATURE_KINDS",
    "AudioPrefixLM",
    "QADataModule",
    "QADataset",
    "QATask",
    "Tokenizer",
    "accuracy_by_type",
    "cached_features",
    "class_columns",
    "normalize",
    "pool_frames",
    "prefix_dim",
    "sed_features",
]
