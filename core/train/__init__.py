"""Config-driven Lightning training that runs the same on a laptop, under DDP and under HPO. See README.md.

Heavy dependencies (torch, lightning) load only when a name that needs them is first used, so
``import core.train`` is cheap.

- :func:`fit`, :func:`evaluate`, :func:`load_run`: train from a config; validate / test / predict; reload a run.
- :class:`OptimizerTask`, :class:`SequentialLR`: optimizer, schedulers and parameter groups from the config.
- :class:`SaveMetric`, :class:`LoadPretrained`, :class:`PrintUnusedParams`: callbacks.
- :func:`merge_top_k`: average the N best checkpoints that ``ModelCheckpoint`` recorded.
- :class:`SGEEnvironment`, :class:`PBSEnvironment`, :class:`OpenMPIEnvironment`: cluster environments.
- :func:`linear_sum_assignment`, :func:`sinusoidal_embedding`: batched tensor utilities.
- :class:`InferencePipeline`: ``one SRC DST`` / ``batch SRC_LIST DST_DIR`` sharded by array task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr

_EXPORTS = {
    "FitResult": "core.train.run",
    "fit": "core.train.run",
    "evaluate": "core.train.run",
    "load_run": "core.train.run",
    "load_run_config": "core.train.run",
    "OptimizerTask": "core.train.task",
    "ClassificationTask": "core.train.tasks",
    "SequentialLR": "core.train.schedulers",
    "SaveMetric": "core.train.callbacks",
    "LastCheckpoint": "core.train.callbacks",
    "LoadPretrained": "core.train.callbacks",
    "PrintUnusedParams": "core.train.callbacks",
    "load_pretrained": "core.train.callbacks",
    "merge_top_k": "core.train.checkpoints",
    "resolve_checkpoint": "core.train.checkpoints",
    "SGEEnvironment": "core.train.cluster",
    "PBSEnvironment": "core.train.cluster",
    "OpenMPIEnvironment": "core.train.cluster",
    "detect_cluster_environment": "core.train.cluster",
    "linear_sum_assignment": "core.train.functional",
    "sinusoidal_embedding": "core.train.functional",
    "MLP": "core.train.modules",
    "SinusoidalPositionalEmbedding": "core.train.modules",
    "InferencePipeline": "core.train.inference",
    "RunPipeline": "core.train.inference",
    "DigitsDataModule": "core.train.digits",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from core.train.callbacks import LastCheckpoint as LastCheckpoint
    from core.train.callbacks import LoadPretrained as LoadPretrained
    from core.train.callbacks import PrintUnusedParams as PrintUnusedParams
    from core.train.callbacks import SaveMetric as SaveMetric
    from core.train.callbacks import load_pretrained as load_pretrained
    from core.train.checkpoints import merge_top_k as merge_top_k
    from core.train.checkpoints import resolve_checkpoint as resolve_checkpoint
    from core.train.cluster import OpenMPIEnvironment as OpenMPIEnvironment
    from core.train.cluster import PBSEnvironment as PBSEnvironment
    from core.train.cluster import SGEEnvironment as SGEEnvironment
    from core.train.cluster import detect_cluster_environment as detect_cluster_environment
    from core.train.digits import DigitsDataModule as DigitsDataModule
    from core.train.functional import linear_sum_assignment as linear_sum_assignment
    from core.train.functional import sinusoidal_embedding as sinusoidal_embedding
    from core.train.inference import InferencePipeline as InferencePipeline
    from core.train.inference import RunPipeline as RunPipeline
    from core.train.modules import MLP as MLP
    from core.train.modules import SinusoidalPositionalEmbedding as SinusoidalPositionalEmbedding
    from core.train.run import FitResult as FitResult
    from core.train.run import evaluate as evaluate
    from core.train.run import fit as fit
    from core.train.run import load_run as load_run
    from core.train.run import load_run_config as load_run_config
    from core.train.schedulers import SequentialLR as SequentialLR
    from core.train.task import OptimizerTask as OptimizerTask
    from core.train.tasks import ClassificationTask as ClassificationTask


__getattr__ = lazy_getattr(__name__, _EXPORTS)
