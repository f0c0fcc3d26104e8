"""The function the demo config runs: cross-validated R² of several regressors on one synthetic problem."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import ConfigError


def compare_models(
    models: Mapping[str, Any], data: Mapping[str, Any], folds: int = 5, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Score each model by ``folds``-fold cross-validated R² on ``make_regression(**data)``.

    A shuffled-target baseline is scored with the first model, so a reader sees what chance looks like.

    Example:
        >>> from sklearn.linear_model import Ridge
        >>> scores = compare_models({"ridge": Ridge()}, {"n_samples": 60, "n_features": 3, "noise": 1.0}, 3)
        >>> scores["ridge"]["r2_mean"] > 0.9 > scores["shuffled-target baseline"]["r2_mean"]
        True
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds must be an int of at least 2, not {folds!r}", where="run.folds", hint="e.g. folds=5")
    import numpy as np
    from sklearn.base import clone
    from sklearn.datasets import make_regression
    from sklearn.model_selection import KFold, cross_val_score

    features, target = make_regression(**dict(data), random_state=seed)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = {}
    for name, model in models.items():
        r2 = cross_val_score(clone(model), features, target, cv=splitter, scoring="r2")
        scores[name] = {"r2_mean": float(r2.mean()), "r2_std": float(r2.std())}
    baseline = next(iter(models.values()))
    shuffled = np.random.default_rng(seed).permutation(target)
    r2 = cross_val_score(clone(baseline), features, shuffled, cv=splitter, scoring="r2")
    scores["shuffled-target baseline"] = {"r2_mean": float(r2.mean()), "r2_std": float(r2.std())}
    return scores
