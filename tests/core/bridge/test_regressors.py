from __future__ import annotations

import numpy as np
import pytest

from core.bridge.analytic import cheap_optimum
from core.bridge.regressors import MODELS, cross_validate, make_model, predict_with_std
from core.errors import UserError


def _pairs(mapping: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    theta = np.random.default_rng(seed).uniform(-1.5, 1.5, (n, 2))
    xi = np.array([cheap_optimum(list(t), mapping) for t in theta])  # type: ignore[arg-type]
    return xi, theta


def test_every_model_fits_and_predicts() -> None:
    x, y = _pairs("linear", 15)
    for name in MODELS:
        model = make_model(name, 2).fit(x, y)
        assert model.predict(x).shape == (15, 2)


def test_linear_truth_is_learned_almost_exactly_by_linear_models() -> None:
    x, y = _pairs("linear", 12)
    scores = cross_validate(["linear", "random_forest"], x, y)
    assert scores["linear"] < 1e-6 < scores["random_forest"]


def test_nonlinear_truth_needs_a_flexible_model() -> None:
    x, y = _pairs("nonlinear", 30)
    scores = cross_validate(["linear", "gp"], x, y)
    assert scores["gp"] < 0.5 * scores["linear"]


def test_gp_gives_uncertainty_that_grows_away_from_data() -> None:
    x, y = _pairs("linear", 12)
    model = make_model("gp", 2).fit(x, y)
    mean, std = predict_with_std(model, np.array([[0.0, 0.0], [25.0, -25.0]]))
    assert mean.shape == (2, 2) and std is not None
    assert float(std[1].mean()) > 3 * float(std[0].mean())
    _, none = predict_with_std(make_model("ridge", 2).fit(x, y), x)
    assert none is None


def test_too_few_pairs_is_a_clear_error() -> None:
    x, y = _pairs("linear", 5)
    with pytest.raises(UserError, match=r"5 scenario pairs are too few for the polynomial model \(it needs 7\)"):
        cross_validate(["polynomial"], x, y)


def test_unknown_model_name() -> None:
    with pytest.raises(UserError, match="unknown regression model 'svm'"):
        make_model("svm", 2)


def test_each_output_gets_its_own_model_and_an_unpredictable_one_the_mean() -> None:
    from core.bridge.regressors import BridgeRegressor

    x, y = _pairs("nonlinear", 30)
    noise = np.random.default_rng(3).normal(0.0, 1.0, 30)  # an output the inputs say nothing about
    h = BridgeRegressor(["linear", "gp"]).fit(x, np.column_stack([y[:, 0], noise]))
    assert h.chosen_[0] == "gp" and h.chosen_[1] == "mean"
    assert h.cv_[0]["gp"] < h.cv_[0]["mean"] and min(h.cv_[1].values()) == h.cv_[1]["mean"]
    assert len(h.warnings) == 1 and "output 1" in h.warnings[0]
    mean, std = h.predict(x[:4])
    np.testing.assert_allclose(mean[:, 1], noise.mean())
    np.testing.assert_allclose(std[:, 1], noise.std(ddof=1))
    far = h.predict(np.array([[40.0, -40.0]]))[1]
    assert far[0, 0] > 3 * std[:, 0].mean()  # the GP is less sure far from its data
