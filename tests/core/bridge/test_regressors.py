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


def test_shrinkage_weight_is_the_brute_force_minimizer_of_the_blend_error() -> None:
    from core.bridge.regressors import shrinkage_weight

    rng = np.random.default_rng(5)
    for _ in range(20):
        model, mean, target = rng.normal(size=(3, 9))
        grid = np.linspace(0.0, 1.0, 10001)
        errors = [float(np.sum((mean + w * (model - mean) - target) ** 2)) for w in grid]
        assert shrinkage_weight(model, mean, target) == pytest.approx(grid[int(np.argmin(errors))], abs=2e-4)


def test_a_weakly_predictive_output_is_shrunk_toward_the_mean_and_never_scores_worse_than_it() -> None:
    from core.bridge.regressors import BridgeRegressor

    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 1.0, (10, 2))
    y = np.column_stack([x[:, 0] + rng.normal(0.0, 0.5, 10), 3.0 * x[:, 1] + 2.0])  # weak signal; exact line
    h = BridgeRegressor(["linear", "ridge"]).fit(x, y)
    weak, exact = h.shrinkage_
    assert 0.0 < weak < 0.9 and exact > 0.99
    assert h.cv_[0]["shrunk"] <= h.cv_[0]["mean"] and h.cv_[0]["shrunk"] <= min(h.cv_[0]["linear"], h.cv_[0]["ridge"])
    mean, std = h.predict(x)
    unshrunk = BridgeRegressor(["linear", "ridge"], shrink=False).fit(x, y).predict(x)[0]
    np.testing.assert_allclose(mean[:, 0] - y[:, 0].mean(), weak * (unshrunk[:, 0] - y[:, 0].mean()), atol=1e-9)
    np.testing.assert_allclose(mean[:, 1], 3.0 * x[:, 1] + 2.0, atol=1e-6)
    assert float(std[:, 0].min()) >= h.error_[0] > 0.3  # never surer than its cross-validated error


def test_a_prior_closer_to_the_targets_than_their_mean_becomes_the_anchor() -> None:
    from core.bridge.regressors import BridgeRegressor

    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (8, 1))
    y = np.column_stack([rng.normal(0.0, 1.0, 8), rng.normal(0.0, 1.0, 8)])  # neither output depends on x
    y[:, 0] -= y[:, 0].mean()  # centred on the prior 0: its error 1 beats the leave-one-out mean's (8/7)²
    far = float(y[:, 1].mean()) + 3.0
    h = BridgeRegressor(["linear"], prior=[0.0, far]).fit(x, y)
    plain = float(np.mean(((0.0 - y[:, 0]) / y[:, 0].std()) ** 2))
    assert h.cv_[0]["prior"] == pytest.approx(plain) and plain < h.cv_[0]["mean"]  # 0 is the truth's centre
    assert "prior" not in h.cv_[1] and h.anchor_[1] == pytest.approx(y[:, 1].mean())  # a far prior loses
    mean, _ = h.predict(x[:2])
    weights = h.shrinkage_
    model = BridgeRegressor(["linear"], shrink=False).fit(x, y).predict(x[:2])[0]
    np.testing.assert_allclose(mean[:, 0], 0.0 + weights[0] * (model[:, 0] - 0.0), atol=1e-9)
