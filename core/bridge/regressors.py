"""The regression models a bridge can learn h: ξ̂ → θ̂ with, and model choice by cross-validation.

Every candidate scales its inputs; scores are mean squared errors on standardized targets, so each parameter
counts the same whatever its units. The Gaussian process tunes its kernel (constant × anisotropic RBF + white
noise) by maximizing the marginal likelihood with restarts, and gives a standard deviation with its prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import UserError

MODELS = ("linear", "ridge", "polynomial", "gp", "random_forest", "mlp")


def make_model(name: str, n_inputs: int, seed: int = 0) -> Any:
    """A fresh, unfitted scikit-learn regressor (inputs scaled) for ``name``."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.linear_model import LinearRegression, RidgeCV
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    alphas = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    if name == "linear":
        regressor: Any = LinearRegression()
    elif name == "ridge":
        regressor = RidgeCV(alphas=alphas)
    elif name == "polynomial":
        return make_pipeline(StandardScaler(), PolynomialFeatures(degree=2), StandardScaler(), RidgeCV(alphas=alphas))
    elif name == "gp":
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF([1.0] * n_inputs, (1e-2, 1e2)) + WhiteKernel(1e-3, (1e-8, 1))
        regressor = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=1, random_state=seed)
    elif name == "random_forest":
        regressor = RandomForestRegressor(n_estimators=60, random_state=seed)
    elif name == "mlp":
        mlp = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=400, alpha=1e-2, random_state=seed)
        regressor = TransformedTargetRegressor(regressor=mlp, transformer=StandardScaler())
    else:
        raise UserError(
            f"unknown regression model {name!r}", where="fit.models", hint=f"choose from {', '.join(MODELS)}"
        )
    return make_pipeline(StandardScaler(), regressor)


def min_pairs(name: str, n_inputs: int) -> int:
    """The fewest (ξ̂, θ̂) pairs with which ``name`` can be fitted and cross-validated meaningfully."""
    if name == "linear":
        return n_inputs + 2
    if name == "polynomial":
        return (n_inputs + 1) * (n_inputs + 2) // 2 + 1
    return 4


def cross_validate(names: Sequence[str], inputs: Any, targets: Any, seed: int = 0) -> dict[str, float]:
    """Leave-one-out (up to 20 pairs) or 10-fold mean squared error of each model on standardized targets.

    Raises:
        UserError: If there are too few pairs for a model.
    """
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import KFold, LeaveOneOut

    x = np.asarray(inputs, dtype=float)
    y = np.asarray(targets, dtype=float)
    scale = y.std(axis=0)
    scale[scale == 0] = 1.0
    z = (y - y.mean(axis=0)) / scale
    splitter: Any = LeaveOneOut() if len(x) <= 20 else KFold(10, shuffle=True, random_state=seed)
    scores = {}
    for name in names:
        needed = min_pairs(name, x.shape[1])
        if len(x) < needed:
            raise UserError(
                f"{len(x)} scenario pairs are too few for the {name} model (it needs {needed})",
                where="fit.models",
                hint=f"add training scenarios, or list models that need fewer (linear needs {x.shape[1] + 2}, "
                "ridge and gp 4)",
            )
        errors = []
        template = make_model(name, x.shape[1], seed)
        for train, held_out in splitter.split(x):
            model = clone(template).fit(x[train], z[train])
            errors.append(float(np.mean((model.predict(x[held_out]).reshape(len(held_out), -1) - z[held_out]) ** 2)))
        scores[name] = float(np.mean(errors))
    return scores


def predict_with_std(model: Any, inputs: Any) -> tuple[Any, Any | None]:
    """Predictions and, for a Gaussian process, their standard deviations (else ``None``)."""
    import numpy as np

    x = np.asarray(inputs, dtype=float)
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    if type(last).__name__ == "GaussianProcessRegressor":
        mean, std = model[:-1].transform(x), None
        mean, std = last.predict(mean, return_std=True)
        return np.asarray(mean).reshape(len(x), -1), np.asarray(std).reshape(len(x), -1)
    return np.asarray(model.predict(x)).reshape(len(x), -1), None
