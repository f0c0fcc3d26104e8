"""The study's sampler, built from ``study.sampler`` in the config, with a seed of its own per runner.

Several runners on one study (or a resumed one) with the same seeded sampler would propose the same points again.
The first runner of a study uses the config's seed as written (a single run stays reproducible); the runner that
joins as the k-th (k ≥ 1, counted in the storage under the budget lock) uses a seed derived from the config's seed
and k.

Example:
    >>> derive_seed(0, 0), derive_seed(0, 1) == derive_seed(0, 1), derive_seed(0, 1) != derive_seed(0, 2)
    (0, True, True)
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from typing import Any

from core.hpo.params import distributions
from core.hpo.settings import HpoSettings


def derive_seed(seed: int, runner_ordinal: int) -> int:
    """``seed`` for the first runner of a study; a stable, well-mixed 31-bit seed for each later one."""
    if runner_ordinal == 0:
        return seed
    digest = hashlib.sha256(f"kakehashi-runner:{seed}:{runner_ordinal}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def make_sampler(settings: HpoSettings, runner_ordinal: int = 0) -> Any:
    """The configured sampler (None: Optuna's default). One that takes a ``search_space`` (NelderMeadSampler) gets
    the config's params, so it need not spend trials discovering them; a ``seed`` is derived per runner."""
    from core.config import instantiate, locate

    node = settings.cfg.study.get("sampler")
    if not node:
        return None
    extra: dict[str, Any] = {}
    seed = node.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        extra["seed"] = derive_seed(seed, runner_ordinal)
    target = node.get("_target_")
    if isinstance(target, str) and "search_space" not in node:
        takes_space = False
        with contextlib.suppress(ImportError, AttributeError, TypeError, ValueError):
            takes_space = "search_space" in inspect.signature(locate(target)).parameters
        space = distributions(settings.space) if takes_space else {}
        if space:
            extra["search_space"] = space
    return instantiate(node, **extra)
