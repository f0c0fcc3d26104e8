"""``NelderMeadSampler``: parallel, fault-tolerant Nelder–Mead as an Optuna sampler.

How the pieces fit:

* :class:`~core.hpo.samplers.planner.NelderMeadPlanner` is the algorithm: it asks for the values of keyed points
  (``"12:r"``) and is told them.
* Every trial this sampler hands out carries its role in the system attribute ``nelder_mead``
  (``{"key": "12:r", "x": [...]}``, or ``{"role": "sub" | "enqueued" | "probe"}``). The first trial of a step
  also records which outside points were offered to the simplex at that step (``"feed"``).
* At each ask the sampler reads the study's trials, answers the planner from the finished ones (a failed or
  pruned trial scores ``+inf``) and hands the asking trial the first wanted point nobody holds yet:
  the initial or shrink vertices, the reflection, then a quadratic model's minimizer near the best vertex,
  speculative expansion/contraction candidates, guesses of the next reflection, and a local point near the
  best vertex (a ``sub_sampler`` point before the first simplex is evaluated). Nothing blocks.
* Trials decide in trial-number order: an ask waits (milliseconds) until every lower-numbered running trial
  has its role, so processes sharing a storage never hand out the same point twice, and a new process, or a
  resumed study, replays the same decisions from the same trials.

Example:
    >>> import optuna
    >>> from core.hpo.samplers import NelderMeadSampler
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> space = {"x": optuna.distributions.FloatDistribution(-5, 5),
    ...          "y": optuna.distributions.FloatDistribution(-5, 5)}
    >>> study = optuna.create_study(sampler=NelderMeadSampler(space, seed=0))
    >>> study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2 + t.suggest_float("y", -5, 5) ** 2,
    ...                n_trials=120)
    >>> study.best_value < 1e-6
    True
"""

from __future__ import annotations

import datetime
import math
import threading
import time
import zlib
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from core.errors import ConfigError, UserError
from core.hpo.samplers.planner import (
    Array,
    BoundsHandling,
    FeedPoint,
    Need,
    NelderMeadCoefficients,
    NelderMeadPlanner,
    Open,
    Request,
    Slot,
    axis_simplex,
    random_simplex,
    regular_simplex,
    step_of,
)
from core.hpo.samplers.space import UnitBox, is_box_distribution

ATTR = "nelder_mead"
_LOCAL_SCALE = 0.25  # local points: N(best, (0.25 x simplex size)^2) per coordinate (tuned on BBOB instance 1)
_GUESS_TOL = 1e-9  # a lookahead point serves a slot this close to it (unit box, max norm)
_MODEL_POINTS = 2  # a quadratic model is fitted to this many times as many points as it has coefficients
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


@dataclass
class _StudyLog:
    """What this process has read from one study's trials (finished trials never change, so it only grows)."""

    claims: dict[str, int] = field(default_factory=dict)  # slot key -> lowest trial number holding it
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)  # trial number -> role attribute
    openers: dict[int, list[int]] = field(default_factory=dict)  # step -> feed trial numbers
    finished: set[int] = field(default_factory=set)
    watermark: int = 0  # every trial numbered below is finished and read
    values: dict[str, float] = field(default_factory=dict)  # slot key -> value of its holder
    feedable: dict[int, FeedPoint] = field(default_factory=dict)  # finished outside points
    guesses: dict[str, list[tuple[int, Array]]] = field(default_factory=dict)  # slot key -> lookahead trials
    guess_values: dict[int, float] = field(default_factory=dict)  # finished lookahead trial -> value
    evaluated: dict[int, tuple[Array, float]] = field(default_factory=dict)  # finished trial -> (point, value)


def _tail(trials: Sequence[FrozenTrial], start: int) -> Sequence[FrozenTrial]:
    """``trials`` from number ``start`` on (storages list a study's trials by number, 0, 1, ...)."""
    if 0 < start < len(trials) and trials[start].number == start:
        return trials[start:]
    return trials if start < len(trials) else ()


def _least_squares(design: Array, target: Array) -> Array:
    """``argmin ||design @ c - target||``: by QR (a third of an SVD's time) when ``design`` has full column rank,
    else by ``lstsq``'s minimum-norm solution."""
    q, r = np.linalg.qr(design)
    diagonal = np.abs(np.diag(r))
    if diagonal.size and diagonal.min() > 1e-10 * diagonal.max():
        return np.asarray(np.linalg.solve(r, q.T @ target), dtype=np.float64)
    return np.asarray(np.linalg.lstsq(design, target, rcond=None)[0], dtype=np.float64)


class SingleObjectiveError(UserError, ValueError):
    """A multi-objective study (a ``ValueError`` too, as Optuna's single-objective samplers raise)."""


def _check_single_objective(study: Study) -> None:
    if len(study.directions) != 1:
        raise SingleObjectiveError(
            f"NelderMeadSampler optimizes one objective, this study has {len(study.directions)}",
            where=f"study {study.study_name!r}",
            hint="create the study with a single direction, or use a multi-objective sampler such as NSGAII",
        )


class _Run:
    """The planner of one study in this process, advanced as far as the study's finished trials allow."""

    def __init__(self, box: UnitBox, planner: NelderMeadPlanner) -> None:
        self.box = box
        self.planner = planner
        self.program: Generator[Request, Any, None] = planner.program()
        self.request: Request = next(self.program)
        self.log = _StudyLog()

    def send(self, answer: Any) -> None:
        self.request = self.program.send(answer)

    def advance(self) -> None:
        while True:
            request = self.request
            if isinstance(request, Open):
                numbers = self.log.openers.get(request.step)
                if numbers is None:
                    return
                self.send([self.log.feedable[n] for n in numbers])
            else:
                self.match_guesses(request)
                keys = [slot.key for slot in request.required]
                if not all(key in self.log.values for key in keys):
                    return
                self.send({key: self.log.values[key] for key in keys})

    def match_guesses(self, request: Need) -> None:
        """A lookahead trial at (within 1e-9 of) a slot's point holds that slot, as if handed it."""
        log = self.log
        for slot in (*request.required, *request.speculative):
            if slot.key in log.claims:
                continue
            for number, x in log.guesses.get(slot.key, ()):
                if float(np.max(np.abs(x - slot.point), initial=0.0)) <= _GUESS_TOL:
                    log.claims[slot.key] = number
                    if number in log.guess_values:
                        log.values[slot.key] = log.guess_values[number]
                    log.feedable.pop(number, None)
                    break

    def guessed(self, slot: Slot) -> bool:
        return any(
            float(np.max(np.abs(x - slot.point), initial=0.0)) <= _GUESS_TOL
            for _, x in self.log.guesses.get(slot.key, ())
        )

    def open_step(self) -> list[int]:
        """Open the pending step with every finished outside point not offered yet; returns their numbers."""
        assert isinstance(self.request, Open)
        step = self.request.step
        numbers = sorted(n for n in self.log.feedable if n not in self.planner.stats.incorporated)
        self.log.openers[step] = numbers
        self.send([self.log.feedable[n] for n in numbers])
        self.advance()
        return numbers

    def wanted(self) -> list[Slot]:
        request = self.request
        assert isinstance(request, Need)
        return [s for s in (*request.required, *request.speculative) if s.key not in self.log.claims]


class NelderMeadSampler(BaseSampler):
    """Nelder–Mead over the numeric parameters; parallel, fault-tolerant, state kept in the study.

    Args:
        search_space: the numeric parameters (``FloatDistribution`` / ``IntDistribution``) in the order of the
            simplex coordinates. ``None``: taken from the first completed trial (the first trial is a probe at
            the centre of the box) — the objective must then suggest the same numeric parameters every time.
            Categorical parameters here are ignored (they go to ``sub_sampler``).
        x0: a start point (parameter values); the initial simplex is ``x0`` plus one step of ``initial_step``
            along each axis of the unit box. Default: a regular simplex of edge ``initial_step`` centred in the
            box.
        initial_simplex: explicit start vertices (``d + 1`` mappings of parameter values); overrides ``x0``.
        initial_step: size of the initial simplex in the unit box (0 < step <= 1).
        coefficients: reflect / expand / contract / shrink (standard 1, 2, 0.5, 0.5 by default).
        bounds_handling: ``"reject"``: a candidate outside the box scores ``+inf`` without being evaluated;
            ``"clip"``: it is clipped to the box (scipy's behaviour with ``bounds``).
        restarts: restart around the best point when the simplex collapses (``x_tol``, ``f_tol``) or the best
            value has not improved for ``patience`` steps; restart simplices start at ``restart_step`` and
            double each time (up to half the box).
        speculate: hand idle workers candidates that may be needed: the step's expansion and contractions,
            then guesses of the next step's reflection under the step's likely outcomes (used only if the next
            step asks for that very point, otherwise an outside point like any other).
        local: when nothing of the above is left, hand an idle worker a point near the best vertex at the
            simplex's scale (seeded by ``seed`` and the trial number) instead of a ``sub_sampler`` point; it
            enters the simplex only if it beats the best vertex. Serial runs never reach this.
        model: hand an idle worker, before the step's speculative candidates, the minimizer of a quadratic
            fitted (least squares) to the evaluated points nearest the best vertex, within the region they span,
            when the fit is convex and its minimizer is new; like a local point, it enters the simplex only if
            it beats the best vertex. Serial runs never reach this.
        random_start: a randomly oriented initial simplex (around ``x0`` or the centre of the box) and random
            restart simplices, seeded by ``seed``: runs with different seeds differ, also serial ones.
        sub_sampler: samples categorical parameters, parameters outside ``search_space``, enqueued trials'
            missing parameters, and whole trials when no simplex point is wanted. Default: Optuna's
            ``RandomSampler`` seeded from ``seed`` and the trial number (reproducible across processes).
        seed: seed of the default ``sub_sampler``, of ``local`` points and of ``random_start``. Without
            ``random_start`` a serial run does not depend on it.
        settle_timeout: seconds an ask waits for a lower-numbered trial to take its role before assuming its
            process died.
    """

    def __init__(
        self,
        search_space: Mapping[str, BaseDistribution] | None = None,
        *,
        x0: Mapping[str, float] | None = None,
        initial_simplex: Sequence[Mapping[str, float]] | None = None,
        initial_step: float = 0.5,
        coefficients: NelderMeadCoefficients | None = None,
        bounds_handling: BoundsHandling = "reject",
        restarts: bool = True,
        x_tol: float = 1e-9,
        f_tol: float = 1e-12,
        patience: int | None = None,
        restart_step: float = 0.1,
        speculate: bool = True,
        local: bool = True,
        model: bool = True,
        random_start: bool = False,
        sub_sampler: BaseSampler | None = None,
        seed: int | None = None,
        settle_timeout: float = 30.0,
    ) -> None:
        if not 0 < initial_step <= 1:
            raise ConfigError(f"initial_step must lie in (0, 1], got {initial_step}", where="initial_step")
        if bounds_handling not in ("reject", "clip"):
            raise ConfigError(
                f"bounds_handling must be 'reject' or 'clip', got {bounds_handling!r}", where="bounds_handling"
            )
        self._search_space = dict(search_space) if search_space is not None else None
        if self._search_space is not None and not any(map(is_box_distribution, self._search_space.values())):
            raise ConfigError("search_space has no numeric parameter with low < high", where="search_space")
        self._x0 = dict(x0) if x0 is not None else None
        self._initial_simplex = [dict(v) for v in initial_simplex] if initial_simplex is not None else None
        self._initial_step = initial_step
        self._coefficients = coefficients or NelderMeadCoefficients()
        self._planner_options: dict[str, Any] = {
            "bounds_handling": bounds_handling,
            "restarts": restarts,
            "x_tol": x_tol,
            "f_tol": f_tol,
            "patience": patience,
            "restart_step": restart_step,
        }
        self._speculate = speculate
        self._local = local
        self._model = model
        self._random_start = random_start
        self._sub_sampler = sub_sampler
        self._seed = seed if seed is not None else 0
        self._settle_timeout = settle_timeout
        self._lock = threading.Lock()
        self._runs: dict[tuple[int, int], _Run] = {}
        self._roles: dict[int, dict[str, Any]] = {}  # trial id -> role, for trials asked in this process
        self._trial_samplers: dict[int, BaseSampler] = {}  # trial id -> default sub-sampler of that trial

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_runs"], state["_roles"], state["_trial_samplers"] = {}, {}, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- setup ---------------------------------------------------------------------------------------------

    def _make_run(self, box: UnitBox) -> _Run:
        if self._initial_simplex is not None:
            points = [box.to_unit(v) for v in self._initial_simplex]
            if len(points) != box.dim + 1 or any(p is None for p in points):
                raise ConfigError(
                    f"initial_simplex needs {box.dim + 1} vertices, each with values inside the ranges of "
                    f"{', '.join(box.names)}",
                    where="initial_simplex",
                )
            vertices = np.array(points, dtype=np.float64)
        elif self._x0 is not None:
            base = box.to_unit(self._x0)
            if base is None:
                raise ConfigError(f"x0 needs values inside the ranges of {', '.join(box.names)}", where="x0")
            if self._random_start:
                vertices = random_simplex(base, self._initial_step, np.random.default_rng([self._seed, 0]), True)
            else:
                vertices = axis_simplex(base, self._initial_step)
        elif self._random_start:
            vertices = random_simplex(np.full(box.dim, 0.5), self._initial_step, np.random.default_rng([self._seed, 0]))
        else:
            vertices = regular_simplex(np.full(box.dim, 0.5), self._initial_step)
        planner = NelderMeadPlanner(
            vertices,
            self._coefficients,
            rng_seed=self._seed if self._random_start else None,
            lookahead=self._speculate,
            **self._planner_options,
        )
        return _Run(box, planner)

    def _run_for(self, study: Study, trials: Sequence[FrozenTrial]) -> _Run | None:
        key = (id(study._storage), study._study_id)
        run = self._runs.get(key)
        if run is None:
            if self._search_space is not None:
                box = UnitBox(self._search_space)
            else:
                # the first finished trial with a numeric parameter (low < high) sets the box; until there is
                # one (an objective with only categorical or fixed parameters), every trial runs on the sub-sampler
                box = UnitBox({})
                for t in trials:
                    if t.state == TrialState.COMPLETE:
                        box = UnitBox({name: t.distributions[name] for name in sorted(t.distributions)})
                        if box.dim:
                            break
                if box.dim == 0:
                    return None
            run = self._make_run(box)
            self._runs[key] = run
        return run

    # -- reading the study ---------------------------------------------------------------------------------

    def _ingest(self, run: _Run, trials: Sequence[FrozenTrial], sign: float) -> None:
        log = run.log
        contiguous = True
        for t in _tail(trials, log.watermark):
            number = t.number
            role = t.system_attrs.get(ATTR)
            if role is not None and number not in log.roles:
                log.roles[number] = role
                key = role.get("key")
                if key is not None and role.get("guess"):
                    holders = log.guesses.setdefault(key, [])
                    holders.append((number, np.asarray(role["x"], dtype=np.float64)))
                    holders.sort(key=lambda h: h[0])
                elif key is not None and (key not in log.claims or number < log.claims[key]):
                    log.claims[key] = number
                if "feed" in role and key is not None:  # one step opened by this trial's ask (its own step)
                    log.openers[step_of(key)] = [int(n) for n in role["feed"]]
                for opened, numbers in role.get("feeds", {}).items():  # steps opened by this trial's ask
                    log.openers[int(opened)] = [int(n) for n in numbers]
            if number in log.finished:
                contiguous = contiguous and number == log.watermark
                if contiguous:
                    log.watermark = number + 1
                continue
            if t.state not in _FINISHED:
                contiguous = False
                continue
            log.finished.add(number)
            if contiguous and number == log.watermark:
                log.watermark = number + 1
            else:
                contiguous = False
            value = sign * float(t.value) if t.state == TrialState.COMPLETE and t.value is not None else math.inf
            key = role.get("key") if role is not None else None
            point = run.box.to_unit(t.params)
            if point is not None and math.isfinite(value):
                log.evaluated[number] = (point, value)
            if key is not None and log.claims.get(key) == number:
                log.values[key] = value
                continue
            if role is not None and role.get("guess"):
                log.guess_values[number] = value
            # sub-sampled, enqueued, probe, foreign or duplicate: an outside point that may feed the simplex
            if point is not None and math.isfinite(value):
                log.feedable[number] = FeedPoint(number, point, value)

    def _unsettled(self, trials: Sequence[FrozenTrial], number: int, start: int) -> bool:
        """Whether a lower-numbered trial is still choosing its role (and its process looks alive)."""
        now = datetime.datetime.now()
        for t in _tail(trials, start):
            if t.state != TrialState.RUNNING or t.number >= number:
                continue
            if ATTR in t.system_attrs or "fixed_params" in t.system_attrs:
                continue
            started = t.datetime_start
            if started is None or (now - started).total_seconds() < self._settle_timeout:
                return True
        return False

    # -- Optuna's sampler protocol -------------------------------------------------------------------------

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if len(study.directions) != 1:
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            _check_single_objective(study)
        if self._sub_sampler is not None:
            self._sub_sampler.before_trial(study, trial)
        if "fixed_params" in trial.system_attrs:
            self._assign(study, trial, {"role": "enqueued"})
            return
        delay = 0.0005
        while True:
            with self._lock:
                trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
                run = self._runs.get((id(study._storage), study._study_id))
                if not self._unsettled(trials, trial.number, run.log.watermark if run is not None else 0):
                    try:
                        role = self._choose(study, trials, trial.number)
                    except BaseException:
                        # never leave a RUNNING trial without a role: later asks would wait for it
                        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                        raise
                    self._assign(study, trial, role)
                    return
            time.sleep(delay)
            delay = min(2 * delay, 0.05)

    def _choose(self, study: Study, trials: Sequence[FrozenTrial], number: int) -> dict[str, Any]:
        run = self._run_for(study, trials)
        if run is None:
            probing = any(
                t.system_attrs.get(ATTR, {}).get("role") == "probe" and t.state == TrialState.RUNNING for t in trials
            )
            return {"role": "sub" if probing else "probe"}
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        key = (id(study._storage), study._study_id)
        try:
            self._ingest(run, trials, sign)
            run.advance()
            feeds: dict[str, list[int]] = {}
            while isinstance(run.request, Open):  # a step can complete at once from lookahead trials
                opened = run.request.step
                feeds[str(opened)] = run.open_step()
            wanted = run.wanted()
            if not self._speculate and isinstance(run.request, Need):
                required = {s.key for s in run.request.required}
                wanted = [s for s in wanted if s.key in required]
            role: dict[str, Any] = {"role": "sub"}
            request = run.request
            if isinstance(request, Need):
                required = {s.key for s in request.required}
                lookahead = request.lookahead if self._speculate else ()
                guesses = [s for s in lookahead if not run.guessed(s) and s.key not in run.log.claims]
                # the step's own points first (required, then its speculative candidates, most needed first),
                # then guesses of the next reflection; a guess is used only if the next step asks for its point
                # the step's required points first; then the minimizer of a quadratic model (when there is a
                # new one); then the step's speculative candidates (most needed first); then guesses of the next
                # reflection (used only if the next step asks for that very point); then a local point
                order = [(s, False) for s in wanted if s.key in required]
                model = None
                if not order and self._model and run.planner.simplex is not None:
                    model = self._model_point(run)
                order += [(s, False) for s in wanted if s.key not in required] + [(s, True) for s in guesses]
                if model is not None:
                    role = {"role": "local", "x": model, "model": True}
                elif order:
                    slot, guess = order[0]
                    role = {"key": slot.key, "x": [float(u) for u in slot.point]}
                    if guess:
                        role["guess"] = True
                elif self._local and run.planner.simplex is not None:
                    role = {"role": "local", "x": self._local_point(run, number)}
            if feeds:
                role["feeds"] = feeds
            return role
        except BaseException:
            self._runs.pop(key, None)  # never keep a planner that may disagree with the storage
            raise

    def _model_point(self, run: _Run) -> list[float] | None:
        """The minimizer of a quadratic fitted to the evaluated points nearest the best vertex, inside the
        region those points span; ``None`` without enough points, without a convex fit, or when a trial
        already holds (or held) that point."""
        simplex = run.planner.simplex
        assert simplex is not None
        log = run.log
        dim = run.box.dim
        n_features = 1 + dim + dim * (dim + 1) // 2
        if len(log.evaluated) < n_features + 1:
            return None
        best = simplex[0]
        points = np.array([p for p, _ in log.evaluated.values()])
        values = np.array([v for _, v in log.evaluated.values()])
        distance = np.linalg.norm(points - best, axis=1)
        nearest = np.argsort(distance, kind="stable")[: min(len(points), _MODEL_POINTS * n_features)]
        radius = float(distance[nearest].max())
        if not radius > 0:
            return None
        z = (points[nearest] - best) / radius
        rows, cols = np.triu_indices(dim)
        design = np.hstack([np.ones((len(z), 1)), z, z[:, rows] * z[:, cols]])
        coef = _least_squares(design, values[nearest] - values[nearest].min())
        gradient = coef[1 : 1 + dim]
        hessian = np.zeros((dim, dim))
        hessian[rows, cols] = coef[1 + dim :]
        hessian = hessian + hessian.T  # diagonal doubled: d2/dz2 of c z^2 is 2c
        if not np.all(np.isfinite(hessian)) or np.linalg.eigvalsh(hessian).min() <= 1e-12 * max(
            1.0, float(np.abs(hessian).max())
        ):
            return None
        step = -np.linalg.solve(hessian, gradient)
        norm = float(np.linalg.norm(step))
        if norm > 1.0:
            step /= norm
        point = np.clip(best + radius * step, 0.0, 1.0)
        tol = 1e-6 * radius
        taken = [np.asarray(r["x"]) for r in log.roles.values() if r.get("model")]
        if any(float(np.max(np.abs(point - x))) <= tol for x in (*taken, *points[nearest[:1]])):
            return None
        return [float(u) for u in point]

    def _local_point(self, run: _Run, number: int) -> list[float]:
        """A point near the best vertex, at the simplex's scale: an idle worker's most useful guess."""
        simplex = run.planner.simplex
        assert simplex is not None
        scale = _LOCAL_SCALE * max(float(np.max(np.abs(simplex[1:] - simplex[0]))), 1e-12)
        rng = np.random.default_rng([self._seed, number])
        point = np.clip(simplex[0] + scale * rng.standard_normal(run.box.dim), 0.0, 1.0)
        return [float(u) for u in point]

    def _assign(self, study: Study, trial: FrozenTrial, role: dict[str, Any]) -> None:
        try:
            study._storage.set_trial_system_attr(trial._trial_id, ATTR, role)
        except BaseException:
            self._runs.pop((id(study._storage), study._study_id), None)
            raise
        self._roles[trial._trial_id] = role
        key = role.get("key")
        run = self._runs.get((id(study._storage), study._study_id))
        if key is not None and run is not None:
            if role.get("guess"):
                run.log.guesses.setdefault(key, []).append((trial.number, np.asarray(role["x"], dtype=np.float64)))
            else:
                run.log.claims.setdefault(key, trial.number)
            run.log.roles[trial.number] = role

    def _role(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        role = self._roles.get(trial._trial_id)
        if role is None:
            role = study._storage.get_trial_system_attrs(trial._trial_id).get(ATTR, {"role": "sub"})
        return role

    def _default_sub_sampler(self, trial: FrozenTrial) -> BaseSampler:
        # one generator per trial, seeded by the trial number: the same values in any process, on any resume
        sampler = self._trial_samplers.get(trial._trial_id)
        if sampler is None:
            sampler = RandomSampler(seed=zlib.crc32(f"{self._seed}/{trial.number}".encode()))
            self._trial_samplers[trial._trial_id] = sampler
        return sampler

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        _check_single_objective(study)
        role = self._role(study, trial)
        if "x" in role:
            run = self._runs.get((id(study._storage), study._study_id))
            if run is not None:
                return dict(run.box.distributions)
            if self._search_space is not None:
                return dict(UnitBox(self._search_space).distributions)
            return {}
        if role.get("role") == "sub" and self._sub_sampler is not None:
            return self._sub_sampler.infer_relative_search_space(study, trial)
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        _check_single_objective(study)
        role = self._role(study, trial)
        if "x" in role:
            run = self._runs.get((id(study._storage), study._study_id))
            box = run.box if run is not None and run.box.distributions == search_space else UnitBox(search_space)
            point: Array = np.asarray(role["x"], dtype=np.float64)
            if box.dim != point.shape[0]:
                return {}
            return box.to_params(point)
        if role.get("role") == "sub" and self._sub_sampler is not None and search_space:
            return self._sub_sampler.sample_relative(study, trial, search_space)
        # a trial that never passed through ``before_trial`` (a direct call): every parameter from the sub-sampler
        sampler = self._sub_sampler or self._default_sub_sampler(trial)
        return {name: sampler.sample_independent(study, trial, name, d) for name, d in search_space.items()}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        _check_single_objective(study)
        role = self._role(study, trial)
        if role.get("role") == "probe" and is_box_distribution(param_distribution):
            return UnitBox({param_name: param_distribution}).value(param_name, 0.5)
        sampler = self._sub_sampler or self._default_sub_sampler(trial)
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        if values is not None and len(values) != 1:
            raise UserError(
                f"NelderMeadSampler optimizes one objective, trial {trial.number} returned {len(values)} values",
                hint="return a single float from the objective",
            )
        self._roles.pop(trial._trial_id, None)
        self._trial_samplers.pop(trial._trial_id, None)
        if self._sub_sampler is not None:
            self._sub_sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        if self._sub_sampler is not None:
            self._sub_sampler.reseed_rng()

    # -- inspection ----------------------------------------------------------------------------------------

    def simplex(self, study: Study) -> tuple[list[dict[str, Any]], list[float]] | None:
        """The current simplex of ``study`` as parameters and values (best first), as this process sees it."""
        run = self._runs.get((id(study._storage), study._study_id))
        if run is None or run.planner.simplex is None or run.planner.values is None:
            return None
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        params = [run.box.to_params(x) for x in run.planner.simplex]
        return params, [sign * float(v) for v in run.planner.values]


__all__ = ["NelderMeadCoefficients", "NelderMeadSampler"]
