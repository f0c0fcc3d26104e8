"""The Nelder–Mead state machine in the unit box, free of Optuna.

The algorithm is written as a generator that *asks* for what it needs and is *told* the answers:

* :class:`Need` — the values of some points (``required``); ``speculative`` lists points whose values may be
  needed next, so that idle workers can evaluate them ahead of time;
* :class:`Open` — the start of step ``k``: the answer is the list of outside points (enqueued trials,
  sub-sampler trials, unused speculative candidates) to offer to the simplex before the step.

Every point has a key (``"12:r"``: step 12, reflection), so answers can arrive in any order and from any
process. Because the generator only ever moves on when told, replaying the same answers gives the same
sequence of points; that is what lets the sampler rebuild the simplex from a study's trials.

Example:
    >>> import numpy as np
    >>> from core.hpo.samplers.planner import NelderMeadPlanner, Need, Open
    >>> planner = NelderMeadPlanner(np.array([[0.2, 0.2], [0.4, 0.2], [0.2, 0.4]]), restarts=False)
    >>> program = planner.program()
    >>> request = next(program)
    >>> [slot.key for slot in request.required]
    ['0:v0', '0:v1', '0:v2']
    >>> f = lambda x: float(((x - 0.5) ** 2).sum())
    >>> request = program.send({s.key: f(s.point) for s in request.required})
    >>> isinstance(request, Open)
    True
    >>> request = program.send([])
    >>> request.required[0].key, request.required[0].point.round(12).tolist()
    ('1:r', [0.4, 0.4])
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.errors import ConfigError

Array = npt.NDArray[np.float64]
BoundsHandling = Literal["reject", "clip"]


@dataclass(frozen=True)
class NelderMeadCoefficients:
    """Step coefficients. The defaults are the standard ones (Nelder and Mead 1965).

    Args:
        reflect: reflection (rho), > 0.
        expand: expansion (chi), > 1 and > reflect.
        contract: contraction (psi), in (0, 1).
        shrink: shrink (sigma), in (0, 1).

    Example:
        >>> NelderMeadCoefficients(expand=1.5).expand
        1.5
    """

    reflect: float = 1.0
    expand: float = 2.0
    contract: float = 0.5
    shrink: float = 0.5

    def __post_init__(self) -> None:
        if not self.reflect > 0:
            raise ConfigError(f"reflect coefficient must be > 0, got {self.reflect}", where="coefficients.reflect")
        if not (self.expand > 1 and self.expand > self.reflect):
            raise ConfigError(
                f"expand coefficient must be > 1 and > reflect ({self.reflect}), got {self.expand}",
                where="coefficients.expand",
            )
        for name in ("contract", "shrink"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ConfigError(f"{name} coefficient must lie in (0, 1), got {value}", where=f"coefficients.{name}")


@dataclass(frozen=True)
class Slot:
    """A point the algorithm wants evaluated: ``key`` is ``"<step>:<role>"``, ``point`` lies in the unit box."""

    key: str
    point: Array

    @property
    def step(self) -> int:
        return step_of(self.key)


def step_of(key: str) -> int:
    """The step number of a slot key: ``step_of("12:oc") == 12``."""
    return int(key.split(":", 1)[0])


@dataclass(frozen=True)
class Need:
    """Ask for the values of ``required``; ``speculative`` slots may be needed next (best guess first).

    ``lookahead`` guesses the next step's reflection (key ``"<step + 1>:r"``) under the likely outcomes of this
    step, most likely first. A guess is used only if the next step asks for the same point; otherwise it is
    just an outside point (fed to the simplex only if it beats the best vertex).
    """

    required: tuple[Slot, ...]
    speculative: tuple[Slot, ...] = ()
    lookahead: tuple[Slot, ...] = ()


@dataclass(frozen=True)
class Open:
    """Step ``step`` starts: answer with the outside points (:class:`FeedPoint`) to offer to the simplex."""

    step: int


@dataclass(frozen=True)
class FeedPoint:
    """An evaluated point from outside the step logic (enqueued, sub-sampled or an unused candidate)."""

    number: int
    point: Array
    value: float


Request = Need | Open


@dataclass
class PlannerStats:
    """What happened so far: counts per step kind, restarts, outside points offered and taken."""

    outcomes: dict[str, int] = field(default_factory=lambda: {"r": 0, "e": 0, "oc": 0, "ic": 0, "shrink": 0})
    restarts: int = 0
    incorporated: set[int] = field(default_factory=set)
    fed: int = 0


def regular_simplex(center: Array, edge: float) -> Array:
    """A regular simplex with edge length ``edge`` centred on ``center``, clipped to the unit box.

    Example:
        >>> s = regular_simplex(np.array([0.5, 0.5]), 0.2)
        >>> round(float(np.linalg.norm(s[1] - s[2])), 12), s.mean(axis=0).round(12).tolist()
        (0.2, [0.5, 0.5])
    """
    dim = center.shape[0]
    p = edge / (dim * math.sqrt(2.0)) * (math.sqrt(dim + 1.0) + dim - 1.0)
    q = edge / (dim * math.sqrt(2.0)) * (math.sqrt(dim + 1.0) - 1.0)
    vertices = np.zeros((dim + 1, dim))
    for j in range(dim):
        vertices[j + 1] = q
        vertices[j + 1, j] = p
    vertices += center - vertices.mean(axis=0)
    return np.asarray(np.clip(vertices, 0.0, 1.0), dtype=np.float64)


def axis_simplex(base: Array, step: float) -> Array:
    """``base`` plus ``base ± step·e_j`` for each axis, stepping inward where ``+`` would leave the box.

    Example:
        >>> axis_simplex(np.array([0.1, 0.9]), 0.2).round(12).tolist()
        [[0.1, 0.9], [0.3, 0.9], [0.1, 0.7]]
    """
    dim = base.shape[0]
    vertices = np.repeat(base[None, :], dim + 1, axis=0).astype(np.float64)
    for j in range(dim):
        up = base[j] + step
        vertices[j + 1, j] = up if up <= 1.0 else base[j] - step
    return np.asarray(np.clip(vertices, 0.0, 1.0), dtype=np.float64)


def random_simplex(center: Array, edge: float, rng: np.random.Generator, keep_first: bool = False) -> Array:
    """A regular simplex of edge ``edge`` in a random orientation, centred on ``center`` (or, with
    ``keep_first``, with ``center`` as its first vertex), folded back into the unit box.

    Example:
        >>> s = random_simplex(np.array([0.5, 0.5]), 0.2, np.random.default_rng(0))
        >>> s.shape, round(float(np.linalg.norm(s[1] - s[2])), 12), s.mean(axis=0).round(12).tolist()
        ((3, 2), 0.2, [0.5, 0.5])
    """
    dim = center.shape[0]
    p = edge / (dim * math.sqrt(2.0)) * (math.sqrt(dim + 1.0) + dim - 1.0)
    q = edge / (dim * math.sqrt(2.0)) * (math.sqrt(dim + 1.0) - 1.0)
    base = np.zeros((dim + 1, dim))
    for j in range(dim):
        base[j + 1] = q
        base[j + 1, j] = p
    base -= base.mean(axis=0)
    rotation, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    rotation *= np.sign(np.diag(r))
    vertices = base @ rotation.T
    vertices += center - (vertices[0] if keep_first else 0.0)
    vertices = np.abs(vertices)  # fold, not clip: folded vertices stay distinct
    vertices = np.where(vertices > 1.0, 2.0 - vertices, vertices)
    return np.asarray(np.clip(vertices, 0.0, 1.0), dtype=np.float64)


class NelderMeadPlanner:
    """Nelder–Mead with speculation, feeding and restarts, as a request/answer generator in the unit box.

    Step for step the same as ``scipy.optimize.minimize(method="Nelder-Mead")`` (same formulas, same order of
    checks, same acceptance rules, shrink towards the best vertex), with two extensions: points outside the box
    are either scored ``+inf`` without an evaluation (``"reject"``) or clipped like scipy does with ``bounds``
    (``"clip"``); and at the start of a step outside points may replace the worst vertex and a collapsed or
    stagnant simplex restarts around the best point.

    Args:
        initial_simplex: ``(d + 1, d)`` vertices in the unit box.
        coefficients: step coefficients.
        bounds_handling: ``"reject"`` or ``"clip"``.
        restarts: restart on collapse or stagnation.
        x_tol: the simplex has collapsed when every vertex is within ``x_tol`` (max-norm) of the best.
        f_tol: ... or when the values differ by at most ``f_tol · max(1, |best|)``.
        patience: steps without improving the best value before a restart (default ``20 · (d + 1)``).
        restart_step: axis step of the first restart simplex; it doubles with every restart, up to 0.5.
    """

    def __init__(
        self,
        initial_simplex: Array,
        coefficients: NelderMeadCoefficients | None = None,
        *,
        bounds_handling: BoundsHandling = "reject",
        restarts: bool = True,
        x_tol: float = 1e-9,
        f_tol: float = 1e-12,
        patience: int | None = None,
        restart_step: float = 0.1,
        lookahead: bool = True,
        rng_seed: int | None = None,
    ) -> None:
        simplex = np.asarray(initial_simplex, dtype=np.float64)
        if simplex.ndim != 2 or simplex.shape[0] != simplex.shape[1] + 1:
            raise ConfigError(f"initial simplex must have shape (d + 1, d), got {simplex.shape}")
        if bounds_handling not in ("reject", "clip"):
            raise ConfigError(f"bounds_handling must be 'reject' or 'clip', got {bounds_handling!r}")
        self.initial_simplex = simplex
        self.dim = simplex.shape[1]
        self.coefficients = coefficients or NelderMeadCoefficients()
        self.bounds_handling = bounds_handling
        self.restarts = restarts
        self.x_tol = x_tol
        self.f_tol = f_tol
        self.patience = patience if patience is not None else 20 * (self.dim + 1)
        self.restart_step = restart_step
        self.lookahead = lookahead
        self.rng_seed = rng_seed
        self.stats = PlannerStats()
        self._outside: set[str] = set()  # keys of this step's candidates that lie outside the box
        self.simplex: Array | None = None
        self.values: Array | None = None

    # -- helpers ---------------------------------------------------------------------------------------------

    def _inside(self, x: Array) -> bool:
        return bool(x.min() >= 0.0 and x.max() <= 1.0)

    def _bounded(self, x: Array) -> Array:
        return np.clip(x, 0.0, 1.0) if self.bounds_handling == "clip" else x

    def _sort(self, xs: Array, fs: Array) -> tuple[Array, Array]:
        order = np.argsort(fs, kind="stable")
        return xs[order], fs[order]

    def _evaluate(self, slots: Sequence[Slot]) -> Generator[Request, Any, dict[str, float]]:
        """Values of ``slots``; points outside the box score +inf without an evaluation (reject mode)."""
        virtual = {s.key: math.inf for s in slots if not self._inside(s.point)}
        real = tuple(s for s in slots if s.key not in virtual)
        answer: dict[str, float] = {}
        if real:
            answer = yield Need(real)
        return {**virtual, **answer}

    def _evaluate_one(
        self, slot: Slot, speculative: Sequence[Slot] = (), lookahead: Sequence[Slot] = ()
    ) -> Generator[Request, Any, float]:
        if slot.key in self._outside:
            return math.inf
        answer = yield Need((slot,), tuple(s for s in speculative if s.key not in self._outside), tuple(lookahead))
        return float(answer[slot.key])

    def _lookahead(self, step: int, xs: Array, points: Sequence[Array]) -> list[Slot]:
        """The next step's reflection if ``point`` replaces the worst vertex and the second worst becomes the
        worst (true whenever the new point beats the second worst), for each point in order."""
        rho = self.coefficients.reflect
        n = self.dim
        rest = np.add.reduce(xs[:-2], 0) if n > 1 else np.zeros(n)
        out: list[Slot] = []
        for point in points:
            xbar = (rest + point) / n
            guess = self._bounded((1 + rho) * xbar - rho * xs[-2])
            if self._inside(guess) and not any(np.array_equal(guess, s.point) for s in out):
                out.append(Slot(f"{step + 1}:r", guess))
        return out

    # -- the algorithm -------------------------------------------------------------------------------------

    def program(self) -> Generator[Request, Any, None]:
        """The generator: yields :class:`Need` / :class:`Open`, expects values / feed points back."""
        xs, fs = yield from self._initialize(0, self.initial_simplex, known=None)
        best = fs[0]
        last_improvement = 0
        last_restart = 0
        step = 0
        while True:
            step += 1
            feed: Sequence[FeedPoint] = yield Open(step)
            xs, fs = self._feed(xs, fs, feed)
            if fs[0] < best - 1e-12 * max(1.0, abs(best)) or (math.isinf(best) and fs[0] < best):
                best, last_improvement = fs[0], step
            if (
                self.restarts
                and step - last_restart > self.dim
                and self._should_restart(xs, fs, step, last_improvement)
            ):
                self.stats.restarts += 1
                size = min(0.5, self.restart_step * 2.0 ** (self.stats.restarts - 1))
                if self.rng_seed is None:
                    vertices = axis_simplex(xs[0], size)
                else:  # a randomly rotated simplex, the same in every process (seeded by seed and restart count)
                    rng = np.random.default_rng([self.rng_seed, self.stats.restarts])
                    vertices = random_simplex(xs[0], size, rng, keep_first=True)
                xs, fs = yield from self._initialize(step, vertices, known=float(fs[0]))
                last_restart = last_improvement = step
                best = min(best, fs[0])
                continue
            xs, fs = yield from self._iterate(step, xs, fs)
            self.simplex, self.values = xs, fs

    def _initialize(
        self, step: int, vertices: Array, known: float | None
    ) -> Generator[Request, Any, tuple[Array, Array]]:
        first = 0 if known is None else 1
        slots = [Slot(f"{step}:v{j}", vertices[j]) for j in range(first, self.dim + 1)]
        values = yield from self._evaluate(slots)
        fs = np.array(([known] if known is not None else []) + [values[s.key] for s in slots], dtype=np.float64)
        xs, fs = self._sort(np.array(vertices, dtype=np.float64), fs)
        self.simplex, self.values = xs, fs
        return xs, fs

    def _feed(self, xs: Array, fs: Array, feed: Sequence[FeedPoint]) -> tuple[Array, Array]:
        for point in sorted(feed, key=lambda p: p.number):
            self.stats.incorporated.add(point.number)
            # only a point better than the best vertex enters (replacing the worst): weaker points bend the
            # simplex out of shape without moving it forward (measured on BBOB)
            if point.value < fs[0] and not any(np.array_equal(point.point, x) for x in xs):
                xs, fs = xs.copy(), fs.copy()
                xs[-1], fs[-1] = point.point, point.value
                xs, fs = self._sort(xs, fs)
                self.stats.fed += 1
        self.simplex, self.values = xs, fs
        return xs, fs

    def _should_restart(self, xs: Array, fs: Array, step: int, last_improvement: int) -> bool:
        size = float(np.max(np.abs(xs[1:] - xs[0])))
        spread = float(fs[-1] - fs[0])
        collapsed = size <= self.x_tol or spread <= self.f_tol * max(1.0, abs(float(fs[0])))
        return collapsed or step - last_improvement >= self.patience

    def _speculation_order(self, candidates: Mapping[str, Slot]) -> list[Slot]:
        counts = self.stats.outcomes
        roles = sorted(("oc", "ic", "e"), key=lambda role: -counts[role])  # stable: ties keep oc, ic, e
        return [candidates[role] for role in roles]

    def _iterate(self, step: int, xs: Array, fs: Array) -> Generator[Request, Any, tuple[Array, Array]]:
        c = self.coefficients
        rho, chi, psi, sigma = c.reflect, c.expand, c.contract, c.shrink
        n = self.dim
        # the same expressions as scipy's _minimize_neldermead, so serial runs agree bit for bit
        xbar = np.add.reduce(xs[:-1], 0) / n
        # rows: r = (1 + rho) xbar - rho w, e = (1 + rho chi) xbar - rho chi w, oc = (1 + psi rho) xbar - psi rho w,
        # ic = (1 - psi) xbar + psi w (written as "- (-psi) w", which rounds identically), all in one go
        a = np.array([1 + rho, 1 + rho * chi, 1 + psi * rho, 1 - psi])
        b = np.array([rho, rho * chi, psi * rho, -psi])
        points = self._bounded(a[:, None] * xbar[None, :] - b[:, None] * xs[-1][None, :])
        inside = (points.min(axis=1) >= 0.0) & (points.max(axis=1) <= 1.0)
        candidates = {role: Slot(f"{step}:{role}", points[i]) for i, role in enumerate(("r", "e", "oc", "ic"))}
        self._outside = {candidates[role].key for i, role in enumerate(("r", "e", "oc", "ic")) if not inside[i]}
        xs, fs = xs.copy(), fs.copy()

        counts = self.stats.outcomes
        weights = {"r": counts["r"] + counts["e"], "e": counts["e"], "oc": counts["oc"], "ic": counts["ic"]}
        likely = [candidates[role].point for role in sorted(weights, key=lambda role: -weights[role])]
        likely = [p for p in likely if self._inside(p)]
        guesses = self._lookahead(step, xs, likely) if self.lookahead else []
        fr = yield from self._evaluate_one(candidates["r"], self._speculation_order(candidates), guesses)
        do_shrink = False
        if fr < fs[0]:
            self.stats.outcomes["e"] += 1
            guesses = (
                self._lookahead(step, xs, [candidates["e"].point, candidates["r"].point]) if self.lookahead else []
            )
            fe = yield from self._evaluate_one(candidates["e"], (), guesses)
            if fe < fr:
                xs[-1], fs[-1] = candidates["e"].point, fe
            else:
                xs[-1], fs[-1] = candidates["r"].point, fr
        elif fr < fs[-2]:
            self.stats.outcomes["r"] += 1
            xs[-1], fs[-1] = candidates["r"].point, fr
        elif fr < fs[-1]:
            self.stats.outcomes["oc"] += 1
            guesses = self._lookahead(step, xs, [candidates["oc"].point]) if self.lookahead else []
            fc = yield from self._evaluate_one(candidates["oc"], (), guesses)
            if fc <= fr:
                xs[-1], fs[-1] = candidates["oc"].point, fc
            else:
                do_shrink = True
        else:
            self.stats.outcomes["ic"] += 1
            guesses = self._lookahead(step, xs, [candidates["ic"].point]) if self.lookahead else []
            fcc = yield from self._evaluate_one(candidates["ic"], (), guesses)
            if fcc < fs[-1]:
                xs[-1], fs[-1] = candidates["ic"].point, fcc
            else:
                do_shrink = True
        if do_shrink:
            self.stats.outcomes["shrink"] += 1
            shrink = [Slot(f"{step}:s{j}", self._bounded(xs[0] + sigma * (xs[j] - xs[0]))) for j in range(1, n + 1)]
            values = yield from self._evaluate(shrink)
            for j, slot in enumerate(shrink, start=1):
                xs[j], fs[j] = slot.point, values[slot.key]
        return self._sort(xs, fs)
