"""The regression models a bridge can learn h: ξ̂ → θ̂ with, and model choice by cross-validation.

Every candidate scales its inputs; scores are mean squared errors on standardized targets, so each parameter
counts the same whatever its units. The Gaussian process tunes its kernel (constant × anisotropic RBF + white
noise) by maximizing the marginal likelihood with restarts, and gives a standard deviation with its prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from core.errors import UserError

MODELS = ("linear", "ridge", "polynomial", "gp", "random_forest", "mlp")


def _quiet_gp_fits() -> Any:
    """A ``warnings.catch_warnings`` that silences what the GP's hyperparameter search reports routinely: an ARD
    length scale at its bound (the input does not matter to that output) and an L-BFGS restart that stopped early
    (another restart, or the initial kernel, is kept). Only these two messages, only sklearn's ConvergenceWarning."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    context = warnings.catch_warnings()
    context.__enter__()
    warnings.filterwarnings(
        "ignore", message=r".*close to the specified (upper|lower) bound", category=ConvergenceWarning
    )
    warnings.filterwarnings("ignore", message=r"lbfgs failed to converge", category=ConvergenceWarning)
    return context


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
    from sklearn.model_selection import KFold, LeaveOneOut

    x = np.asarray(inputs, dtype=float)
    y = np.asarray(targets, dtype=float)
    scale = y.std(axis=0)
    scale[scale == 0] = 1.0
    z = (y - y.mean(axis=0)) / scale
    splitter: Any = LeaveOneOut() if len(x) <= 20 else KFold(10, shuffle=True, random_state=seed)
    scores = {}
    quiet = _quiet_gp_fits()
    try:
        for name in names:
            scores[name] = _cv_score(name, x, z, splitter, seed)
    finally:
        quiet.__exit__(None, None, None)
    return scores


def _cv_score(name: str, x: Any, z: Any, splitter: Any, seed: int) -> float:
    """The mean squared error of ``name`` over the splitter's held-out folds (targets standardized)."""
    import numpy as np
    from sklearn.base import clone

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
        target = z[train] if z.shape[1] > 1 else z[train].ravel()  # one output: 1-D, as estimators expect
        model = clone(template).fit(x[train], target)
        errors.append(float(np.mean((model.predict(x[held_out]).reshape(len(held_out), -1) - z[held_out]) ** 2)))
    return float(np.mean(errors))


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


MEAN = "mean"  # the fallback of an output for which no candidate beats its training mean in cross-validation
PRIOR = "prior"  # a fixed anchor given by the caller (e.g. the centre of the search box), scored like the mean


class BridgeRegressor:
    """h: ξ̂ → θ̂ with the model chosen **per output** by cross-validation, and an uncertainty per prediction.

    For each output (a column of θ̂) every candidate is cross-validated (:func:`cross_validate`, standardized
    MSE) and the best one is kept. With ``shrink`` (the default) its prediction is then pulled toward the training
    mean, ``mean + w · (model − mean)``, with the weight ``w`` in [0, 1] that minimizes the leave-one-out error of
    the blend (:func:`shrinkage_weight`, on the same out-of-fold predictions): with few, noisy pairs a model that
    tracks the target only partly is trusted only partly, and since ``w = 0`` is the mean itself, the blend never
    does worse than the mean in cross-validation. When ``w`` is 0 (or, without ``shrink``, when the best candidate
    does not beat the mean) the output falls back to the mean, with a warning in ``warnings`` (the inputs do not
    predict it). ``predict`` returns the mean and a standard deviation per output: the Gaussian process's own,
    else the spread of ``n_bootstrap`` copies of the chosen model fitted on bootstrap resamples, times ``w``, and
    never below the blend's cross-validated error (for the mean: the training standard deviation). ``prior``, one
    value per output or ``None`` for none (e.g. the centre of the search box, the prior mean of the scenarios'
    parameters), competes
    with the training mean as the anchor: a constant fits nothing, so its error on the training targets is its
    cross-validated error, and it replaces the mean where that is lower (a mean of a few noisy calibrations can be
    a worse estimate of the scenarios' centre than the centre itself).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.uniform(0, 1, (20, 2))
        >>> y = np.column_stack([2 * x[:, 0] + 1, rng.normal(0, 1, 20)])  # the 2nd output ignores x
        >>> h = BridgeRegressor(["linear", "ridge"]).fit(x, y)
        >>> h.chosen_[0] in ("linear", "ridge"), h.chosen_[1]
        (True, 'mean')
        >>> mean, std = h.predict(x[:3])
        >>> mean.shape, std.shape, bool(std[0, 0] < std[0, 1])
        ((3, 2), (3, 2), True)
    """

    def __init__(
        self,
        candidates: Sequence[str] = ("linear", "ridge", "gp"),
        seed: int = 0,
        n_bootstrap: int = 16,
        shrink: bool = True,
        prior: Sequence[float | None] | None = None,
    ):
        self.candidates = list(candidates)
        self.seed = seed
        self.n_bootstrap = n_bootstrap
        self.shrink = shrink
        self.prior = prior

    def fit(self, inputs: Any, targets: Any) -> BridgeRegressor:
        """Choose and fit a model per output; ``cv_`` holds every candidate's score per output (and the blend's,
        as ``shrunk``), ``shrinkage_`` the weight of the model against the mean per output (1 without ``shrink``,
        0 for the mean), ``error_`` the cross-validated RMSE of each output's prediction in its own units,
        ``anchor_`` the point each output is shrunk toward (the training mean, or ``prior``'s value where that
        scores better: ``cv_`` then holds it as ``prior``), ``anchor_kind_`` which of the two (``mean``/``prior``)."""
        import numpy as np

        x = np.asarray(inputs, dtype=float)
        y = np.asarray(targets, dtype=float).reshape(len(x), -1)
        usable = [n for n in self.candidates if len(x) >= min_pairs(n, x.shape[1])] or self.candidates
        self.cv_: list[dict[str, float]] = []
        self.chosen_: list[str] = []
        self.models_: list[Any] = []
        self.ensembles_: list[list[Any]] = []
        self.shrinkage_: list[float] = []
        self.error_: list[float] = []
        self.mean_ = y.mean(axis=0)
        self.anchor_ = self.mean_.copy()
        self.anchor_kind_: list[str] = []  # per output: "mean" (the training mean) or "prior"
        self.std_ = y.std(axis=0, ddof=1) if len(y) > 1 else np.zeros(y.shape[1])
        self.warnings: list[str] = []
        rng = np.random.default_rng(self.seed)
        quiet = _quiet_gp_fits()
        try:
            self._fit_outputs(x, y, usable, rng)
        finally:
            quiet.__exit__(None, None, None)
        return self

    def _fit_outputs(self, x: Any, y: Any, usable: list[str], rng: Any) -> None:
        import numpy as np
        from sklearn.base import clone

        for j in range(y.shape[1]):
            scores = cross_validate(usable, x, y[:, j : j + 1], seed=self.seed) if y[:, j].std() > 0 else {}
            scores[MEAN] = _mean_cv(y[:, j], self.seed)
            anchor = None
            given = self.prior[j] if self.prior is not None else None
            if given is not None:  # a constant fits nothing: its cross-validated error is its plain error
                scale = float(y[:, j].std()) or 1.0
                prior_score = float(np.mean(((float(given) - y[:, j]) / scale) ** 2))
                if prior_score < scores[MEAN]:
                    anchor, scores[PRIOR] = float(given), prior_score
                    self.anchor_[j] = anchor
            best = min(scores, key=scores.__getitem__)
            if best == PRIOR:
                best = MEAN  # the constant prediction, at the anchor
            weight = 1.0
            constants = (MEAN, PRIOR)
            if self.shrink and all(k in constants for k in scores):  # a constant output, scored like the others
                scores["shrunk"] = min(scores.values())
            elif self.shrink:
                best = min((k for k in scores if k not in constants), key=scores.__getitem__)
                weight, scores["shrunk"] = _shrink(best, x, y[:, j], self.seed, anchor)
                if weight == 0.0:
                    best = MEAN
            if best == MEAN:
                models = min((v for k, v in scores.items() if k not in (MEAN, PRIOR, "shrunk")), default=math.nan)
                constant = "prior" if anchor is not None else "training mean"
                self.warnings.append(
                    f"output {j}: no model beats the {constant} in cross-validation "
                    f"(best {models:.3g} vs {constant} {scores[PRIOR if anchor is not None else MEAN]:.3g}); "
                    f"predicting the {constant}"
                )
            self.cv_.append(scores)
            self.chosen_.append(best)
            self.anchor_kind_.append(MEAN if anchor is None else PRIOR)
            scale = float(y[:, j].std()) or 1.0
            self.error_.append(math.sqrt(scores.get("shrunk", scores.get(PRIOR, scores[best]))) * scale)
            self.shrinkage_.append(0.0 if best == MEAN else weight)
            if best == MEAN:
                self.models_.append(None)
                self.ensembles_.append([])
                continue
            template = make_model(best, x.shape[1], self.seed)
            self.models_.append(clone(template).fit(x, y[:, j]))
            ensemble = []
            if best != "gp":
                for _ in range(self.n_bootstrap):
                    rows = rng.integers(0, len(x), len(x))
                    if len(set(rows.tolist())) < min_pairs(best, x.shape[1]):
                        continue
                    ensemble.append(clone(template).fit(x[rows], y[rows, j]))
            self.ensembles_.append(ensemble)

    def predict(self, inputs: Any) -> tuple[Any, Any]:
        """(mean, std), each of shape (n, outputs)."""
        import numpy as np

        x = np.asarray(inputs, dtype=float)
        means, stds = [], []
        for j, model in enumerate(self.models_):
            if model is None:
                means.append(np.full(len(x), self.anchor_[j]))
                stds.append(np.full(len(x), self.std_[j]))
                continue
            mean, std = predict_with_std(model, x)
            if std is None:
                spread = [np.asarray(m.predict(x)).ravel() for m in self.ensembles_[j]]
                std = np.std(spread, axis=0) if len(spread) > 1 else np.zeros(len(x))
            weight = self.shrinkage_[j]
            means.append(self.anchor_[j] + weight * (np.asarray(mean).ravel() - self.anchor_[j]))
            std = weight * np.asarray(std).ravel()
            stds.append(np.maximum(std, self.error_[j]) if self.shrink else std)
        return np.column_stack(means), np.column_stack(stds)


def _mean_cv(y: Any, seed: int) -> float:
    """The cross-validated standardized MSE of predicting the training mean (the folds of :func:`cross_validate`)."""
    import numpy as np
    from sklearn.model_selection import KFold, LeaveOneOut

    scale = float(y.std()) or 1.0
    z = (y - y.mean()) / scale
    splitter: Any = LeaveOneOut() if len(y) <= 20 else KFold(10, shuffle=True, random_state=seed)
    errors = [float(np.mean((z[test] - z[train].mean()) ** 2)) for train, test in splitter.split(z.reshape(-1, 1))]
    return float(np.mean(errors))


def shrinkage_weight(model_predictions: Any, mean_predictions: Any, targets: Any) -> float:
    """The weight ``w`` in [0, 1] that minimizes ``Σ (mean + w · (model − mean) − target)²`` over out-of-fold
    predictions: the least-squares slope of the residual of the mean on the model's departure from it, clipped.

    >>> shrinkage_weight([1.0, -1.0], [0.0, 0.0], [0.5, -0.5])
    0.5
    >>> shrinkage_weight([1.0, -1.0], [0.0, 0.0], [-0.5, 0.5])  # the model points the wrong way: the mean
    0.0
    """
    import numpy as np

    departure = np.asarray(model_predictions, dtype=float) - np.asarray(mean_predictions, dtype=float)
    residual = np.asarray(targets, dtype=float) - np.asarray(mean_predictions, dtype=float)
    power = float(departure @ departure)
    if power == 0.0:
        return 0.0
    return float(min(1.0, max(0.0, float(departure @ residual) / power)))


def _shrink(name: str, x: Any, y: Any, seed: int, anchor: float | None = None) -> tuple[float, float]:
    """(w, standardized cross-validated MSE of ``a + w · (model − a)``) for the model ``name`` on one output;
    the folds of :func:`cross_validate`; ``a`` is ``anchor`` or else each fold's mean over its training part."""
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import KFold, LeaveOneOut

    scale = float(y.std()) or 1.0
    z = (y - y.mean()) / scale
    splitter: Any = LeaveOneOut() if len(x) <= 20 else KFold(10, shuffle=True, random_state=seed)
    template = make_model(name, x.shape[1], seed)
    model_out, mean_out = np.empty(len(z)), np.empty(len(z))
    for train, held_out in splitter.split(x):
        model_out[held_out] = np.asarray(clone(template).fit(x[train], z[train]).predict(x[held_out])).ravel()
        mean_out[held_out] = z[train].mean() if anchor is None else (anchor - y.mean()) / scale
    weight = shrinkage_weight(model_out, mean_out, z)
    return weight, float(np.mean((mean_out + weight * (model_out - mean_out) - z) ** 2))
