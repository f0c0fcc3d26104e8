"""Traffic scenarios: a road network, its demand, induction-loop detectors and a hidden ground truth θ*.

A :class:`TrafficScenario` is a plain description (JSON round-trip, so it travels to trial processes inside a
bridge scenario's ``context``). :func:`build` turns it into files once: the network (from ``netgenerate``, or a
user's ``.net.xml``), the routes the demand follows, the detector edges and what the cheap model needs to know
about each edge (length, lanes, speed limit, green share of its traffic light). The build is deterministic and
cached under ``workdir/<key>/``, so any process can rebuild it and two processes building at once do no harm.

The demand is a set of routes between fringe edges, each with a weight, whose total rate
``vehicles_per_hour`` follows a one-peak time profile over ``duration`` seconds; θ's ``demand_scale``
multiplies it. Both the microscopic simulator and the cheap model read the rates from :func:`route_rates`, so
they load the same demand on the same paths.

Example:
    >>> import tempfile
    >>> spec = TrafficScenario(name="tiny", network=NetworkSpec(size=3), detectors=DetectorSpec(count=4))
    >>> built = build(spec, tempfile.mkdtemp())
    >>> len(built.detectors), route_rates(built, spec.demand, 1.0).shape
    (4, (12, 12))
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError, DependencyError, UserError

NETWORK_KINDS = ("grid", "spider", "random", "file")
JAM_SPACING = 7.5  # metres of lane per stopped vehicle (length 5 m + minGap 2.5 m)
# day k ≥ 1 of the observations: observation seed + offset + k (never a calibration, fresh or replicate seed)
OBSERVATION_DAY_OFFSET = 500_009
MAX_OBSERVATION_DAYS = 100


@dataclass(frozen=True)
class Parameter:
    """One calibrated parameter of the microscopic model: its name, bounds and SUMO meaning."""

    name: str
    low: float
    high: float
    default: float
    meaning: str


# θ: chosen so each leaves its own mark on the observations: demand_scale moves counts, speed_factor moves
# free-flow speeds, tau (the driver's headway) moves saturation flow and so queues, occupancy and congested speeds.
# tau's lower bound is SUMO's default step length (1 s): below the step, Krauss drivers collide and teleport.
THETA = {
    p.name: p
    for p in (
        Parameter("demand_scale", 0.6, 1.4, 1.0, "multiplies every route's flow"),
        Parameter("speed_factor", 0.8, 1.2, 1.0, "mean desired speed / speed limit (vType speedFactor)"),
        Parameter("tau", 1.0, 2.5, 1.2, "desired time headway in s (Krauss tau; >= the step length)"),
        Parameter("accel", 1.0, 4.0, 2.6, "maximum acceleration in m/s² (weakly identifiable; off by default)"),
        Parameter("sigma", 0.0, 1.0, 0.5, "driver imperfection (Krauss sigma; off by default)"),
        Parameter("min_gap", 1.0, 4.0, 2.5, "standstill gap in m (vType minGap; off by default)"),
    )
}
DEFAULT_THETA = ("demand_scale", "speed_factor", "tau")


@dataclass(frozen=True)
class NetworkSpec:
    """The road network. ``size``: junctions per side (grid), arms (spider: ``rings`` circles ``length`` apart, no
    centre junction) or growth iterations (random)."""

    kind: str = "grid"
    size: int = 4
    length: float = 200.0
    lanes: int = 1
    speed: float = 13.89
    rings: int = 3
    traffic_lights: bool = True
    path: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class DemandSpec:
    """Routes between fringe edges and their time profile (mean rate ``vehicles_per_hour`` at demand_scale 1).

    ``arrivals``: ``regular`` departs a route's vehicles evenly spaced at its rate (the demand is known; SUMO's seed
    varies the drivers), ``random`` draws a departure each second (counts vary with the seed like Poisson counts).
    """

    vehicles_per_hour: float = 1600.0
    n_routes: int = 12
    duration: float = 3600.0
    peak_time: float = 0.5
    peak_width: float = 0.25
    peak_amplitude: float = 1.0
    seed: int = 0
    arrivals: str = "regular"


@dataclass(frozen=True)
class DetectorSpec:
    """Induction loops on ``count`` edges (or named ``edges``) at ``position`` × length, read every ``interval`` s."""

    count: int = 12
    position: float = 0.5
    interval: float = 300.0
    edges: tuple[str, ...] | None = None
    seed: int = 0


@dataclass(frozen=True)
class TrafficScenario:
    """One scenario: what the road looks like, what drives on it, where it is observed, and the hidden θ*.

    ``observation_seed`` is SUMO's seed for the observations Y; ``calibration_seed`` the one a calibration
    simulates with (another seed, so that θ* itself scores the noise floor, not zero). ``observation_days`` > 1
    makes Y the mean of that many runs of θ* (days), each on a seed of its own (:func:`observation_seeds`), as
    traffic counts are usually averaged over several weekdays; a calibration still simulates one day. ``step_length``
    is SUMO's time step in seconds; every tau simulated must be at least that long (see :func:`check_physics`).
    """

    name: str = "scenario"
    network: NetworkSpec = field(default_factory=NetworkSpec)
    demand: DemandSpec = field(default_factory=DemandSpec)
    detectors: DetectorSpec = field(default_factory=DetectorSpec)
    theta_star: Mapping[str, float] = field(
        default_factory=lambda: {"demand_scale": 1.1, "speed_factor": 0.92, "tau": 1.3}
    )
    observation_seed: int = 1
    calibration_seed: int = 2
    observation_days: int = 1
    step_length: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["theta_star"] = dict(self.theta_star)
        if self.detectors.edges is not None:
            data["detectors"]["edges"] = list(self.detectors.edges)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "scenario") -> TrafficScenario:
        """Read a scenario from plain data (a config node or JSON); unknown keys are one ``ConfigError``."""
        data = dict(data)
        parts: dict[str, Any] = {}
        for key, part in (("network", NetworkSpec), ("demand", DemandSpec), ("detectors", DetectorSpec)):
            node = dict(data.pop(key, None) or {})
            if key == "detectors" and node.get("edges") is not None:
                node["edges"] = tuple(str(e) for e in node["edges"])
            parts[key] = _make(part, node, f"{where}.{key}")
        theta = {str(k): float(v) for k, v in dict(data.pop("theta_star", None) or {}).items()}
        check_theta(theta, f"{where}.theta_star")
        scenario: TrafficScenario = _make(cls, {**data, **parts, "theta_star": theta}, where)
        validate(scenario, where)
        return scenario

    def key(self) -> str:
        """Hash of everything the built files depend on (not θ* and not the seeds of the simulations)."""
        data = self.to_dict()
        built = {k: data[k] for k in ("network", "demand", "detectors")}
        if self.network.kind == "file" and self.network.path:
            built["net_sha1"] = hashlib.sha1(Path(self.network.path).read_bytes()).hexdigest()
        return hashlib.sha1(json.dumps(built, sort_keys=True).encode()).hexdigest()[:16]


_PLAIN = {"int": int, "float": float, "bool": bool, "str": str}


def _make(cls: Any, node: Mapping[str, Any], where: str) -> Any:
    """``cls(**node)``, refusing unknown keys (naming the nearest known one) and values of the wrong type.

    >>> _make(NetworkSpec, {"size": 3}, "scenario.network").size
    3
    >>> for bad in ({"sise": 3}, {"size": "big"}):
    ...     try:
    ...         _make(NetworkSpec, bad, "scenario.network")
    ...     except ConfigError as error:
    ...         print(error)
    unknown key 'sise' (scenario.network.sise) — did you mean size?
    'big' is not an int (scenario.network.size) — give a whole number
    """
    import difflib

    known = [f.name for f in fields(cls)]
    for key in node:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {near[0]}?" if near else f"known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"unknown key {key!r}", where=f"{where}.{key}", hint=hint)
    types = {f.name: str(f.type) for f in fields(cls)}
    checked = dict(node)
    for key, value in node.items():
        kind = _PLAIN.get(types[key].removesuffix(" | None"))
        if kind is None or (value is None and types[key].endswith("| None")):
            continue
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            checked[key] = float(value)
        elif kind is int and isinstance(value, float) and value.is_integer():
            checked[key] = int(value)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            words = {int: "an int", float: "a number", bool: "true or false", str: "a string"}[kind]
            hint = {int: "give a whole number", float: "give a number"}.get(kind, f"give {words}")
            raise ConfigError(f"{value!r} is not {words}", where=f"{where}.{key}", hint=hint)
    try:
        return cls(**checked)
    except TypeError as exc:
        raise ConfigError(str(exc), where=where) from None


def check_theta(theta: Mapping[str, Any], where: str) -> None:
    """Every name must be a known θ parameter (see :data:`THETA`)."""
    for name in theta:
        if name not in THETA:
            raise ConfigError(f"unknown traffic parameter {name!r}", where=where, hint=f"known: {', '.join(THETA)}")


def check_physics(space: Mapping[str, Any], step_length: float, where: str) -> None:
    """Refuse a θ (a value or a ``[low, high]`` range per name) that SUMO cannot simulate faithfully.

    A Krauss driver whose headway ``tau`` is shorter than the simulation step collides with its leader (SUMO
    teleports it away), so tau must be at least ``step_length``.

    >>> check_physics({"tau": [1.0, 2.0]}, 1.0, "params")
    >>> try:
    ...     check_physics({"tau": 0.5}, 1.0, "params")
    ... except ConfigError as error:
    ...     print(str(error).split(":")[0])
    tau 0.5 is below SUMO's step length 1 s
    """
    value = space.get("tau")
    if value is None:
        return
    low = min(float(v) for v in value) if isinstance(value, list | tuple) else float(value)
    if low < step_length - 1e-9:
        raise ConfigError(
            f"tau {low:g} is below SUMO's step length {step_length:g} s: vehicles would collide and teleport",
            where=f"{where}.tau",
            hint=f"search tau >= {step_length:g}, or set a smaller step_length",
        )


def validate(scenario: TrafficScenario, where: str = "scenario") -> None:
    """Reject values SUMO would choke on, naming the key."""
    net, demand, det = scenario.network, scenario.demand, scenario.detectors
    if not 0.05 <= scenario.step_length <= 1.0:
        raise ConfigError("step_length must be in [0.05, 1] s", where=f"{where}.step_length")
    if not 1 <= scenario.observation_days <= MAX_OBSERVATION_DAYS:
        raise ConfigError(f"observation_days must be in [1, {MAX_OBSERVATION_DAYS}]", where=f"{where}.observation_days")
    check_physics(dict(scenario.theta_star), scenario.step_length, f"{where}.theta_star")
    if net.kind not in NETWORK_KINDS:
        raise ConfigError(
            f"unknown network kind {net.kind!r}",
            where=f"{where}.network.kind",
            hint=f"one of {', '.join(NETWORK_KINDS)}",
        )
    if net.kind == "file" and (not net.path or not Path(net.path).is_file()):
        raise UserError(
            "network file not found", where=f"{where}.network.path={net.path}", hint="give the path of a SUMO .net.xml"
        )
    if net.kind != "file" and (net.size < 2 or net.length <= 10 or net.lanes < 1):
        raise ConfigError("network too small: size >= 2, length > 10 m, lanes >= 1", where=f"{where}.network")
    if demand.duration < det.interval or demand.vehicles_per_hour <= 0 or demand.n_routes < 1:
        raise ConfigError(
            "demand needs duration >= detectors.interval, vehicles_per_hour > 0, n_routes >= 1", where=f"{where}.demand"
        )
    if demand.arrivals not in ("regular", "random"):
        raise ConfigError("arrivals must be regular or random", where=f"{where}.demand.arrivals")
    if not 0.0 < det.position < 1.0 or det.count < 1:
        raise ConfigError("detectors need 0 < position < 1 and count >= 1", where=f"{where}.detectors")


def observation_seeds(scenario: TrafficScenario) -> list[int]:
    """SUMO's seeds of the observations' days: the observation seed, then one of its own per further day.

    >>> observation_seeds(TrafficScenario(observation_seed=7, observation_days=3))
    [7, 500017, 500018]
    """
    rest = range(1, scenario.observation_days)
    return [scenario.observation_seed, *(scenario.observation_seed + OBSERVATION_DAY_OFFSET + k for k in rest)]


# ----------------------------------------------------------------------------------------------------------- SUMO


def sumo_home() -> Path:
    """SUMO's installation folder (``bin/`` and ``tools/``), from the ``eclipse-sumo`` wheel or ``SUMO_HOME``."""
    try:
        import sumo

        home = Path(sumo.SUMO_HOME)
    except ImportError:
        if not os.environ.get("SUMO_HOME"):
            raise DependencyError("SUMO is not installed", hint="pip install 'kakehashi[traffic]'") from None
        home = Path(os.environ["SUMO_HOME"])
    os.environ.setdefault("SUMO_HOME", str(home))  # sumolib and the binaries look for their data files there
    return home


def sumo_binary(name: str) -> str:
    path = sumo_home() / "bin" / name
    if not path.exists():
        raise DependencyError(f"SUMO program {name!r} not found", where=str(path), hint="reinstall eclipse-sumo")
    return str(path)


# ---------------------------------------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuiltScenario:
    """The files and tables of a built scenario (see :func:`build`)."""

    folder: Path
    net_file: Path
    routes: list[list[str]]  # edge ids of each route
    route_weights: list[float]  # share of the demand on each route (sums to 1)
    detectors: list[str]  # detector ids = the edge they watch
    detector_lanes: dict[str, list[str]]
    detector_positions: dict[str, float]  # metres from the start of the edge
    edges: dict[str, dict[str, float]]  # id -> length, lanes, speed, green (share of the cycle), sink (0/1)

    @classmethod
    def load(cls, folder: Path) -> BuiltScenario:
        data = json.loads((folder / "built.json").read_text(encoding="utf-8"))
        return cls(folder=folder, net_file=folder / "net.net.xml", **data)


def build(scenario: TrafficScenario, workdir: str | Path) -> BuiltScenario:
    """Build (or reuse) the scenario's files under ``workdir/<key>/`` and return their tables."""
    folder = Path(workdir).resolve() / scenario.key()  # absolute: SUMO child processes run in a folder of their own
    if (folder / "built.json").is_file():
        return BuiltScenario.load(folder)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{scenario.key()}.", dir=workdir))
    try:
        _generate_network(scenario.network, staging / "net.net.xml")
        tables = _tables(scenario, staging / "net.net.xml")
        (staging / "built.json").write_text(json.dumps(tables, indent=1) + "\n", encoding="utf-8")
        (staging / "scenario.json").write_text(json.dumps(scenario.to_dict(), indent=1) + "\n", encoding="utf-8")
        try:
            os.rename(staging, folder)
        except OSError:  # the folder exists: built by another process, or holding observations but no build
            if not (folder / "built.json").is_file():
                for name in ("net.net.xml", "scenario.json", "built.json"):  # built.json last: it marks "done"
                    os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BuiltScenario.load(folder)


def _generate_network(spec: NetworkSpec, out: Path) -> None:
    if spec.kind == "file":
        shutil.copyfile(str(spec.path), out)
        return
    attach = f"{0.75 * spec.length:g}"
    shape = {
        "grid": [
            "--grid",
            f"--grid.number={spec.size}",
            f"--grid.length={spec.length:g}",
            f"--grid.attach-length={attach}",
        ],
        "spider": [  # no centre: netgenerate leaves it unregulated, and vehicles collide there; no attached
            "--spider",  # streets: SUMO 1.28 builds them 0.2 m long, and vehicles inserted on them collide
            f"--spider.arm-number={spec.size}",
            f"--spider.circle-number={spec.rings}",
            f"--spider.space-radius={spec.length:g}",
            "--spider.omit-center",
        ],
        "random": [
            "--rand",
            f"--rand.iterations={spec.size * 10}",
            f"--rand.min-distance={0.6 * spec.length:g}",
            f"--rand.max-distance={1.4 * spec.length:g}",
            f"--seed={spec.seed}",
        ],
    }[spec.kind]
    command = [
        sumo_binary("netgenerate"), *shape,
        f"--default.lanenumber={spec.lanes}", f"--default.speed={spec.speed:g}",
        f"--default-junction-type={'traffic_light' if spec.traffic_lights else 'priority'}",
        "--no-turnarounds", "--no-warnings", "--xml-validation=never", "-o", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not out.is_file():
        raise UserError("netgenerate failed", where=f"network {spec.kind}", hint=done.stderr.strip()[-300:])


def _tables(scenario: TrafficScenario, net_file: Path) -> dict[str, Any]:
    sumo_home()
    import sumolib

    net = sumolib.net.readNet(str(net_file), withPrograms=True)
    edges = [e for e in net.getEdges() if e.getFunction() != "internal" and e.allows("passenger")]
    if len(edges) < 2:
        raise UserError("the network has fewer than two drivable edges", where=str(scenario.network.path or "network"))
    sources = [e for e in edges if _dead_end(e.getFromNode())]
    sinks = [e for e in edges if _dead_end(e.getToNode())]
    if len(sources) < 2 or len(sinks) < 2:  # no fringe (a random or spider net): any edge may start or end a trip
        sources, sinks = edges, edges
    sources = [e for e in sources if e.getLength() >= JAM_SPACING]  # a car inserted on a shorter edge collides
    if len(sources) < 2:
        raise UserError(
            f"the network has fewer than two edges of at least {JAM_SPACING:g} m to insert vehicles on",
            where=str(scenario.network.path or "network"),
        )
    routes = _sample_routes(net, sources, sinks, scenario.demand)
    rng = np.random.default_rng(scenario.demand.seed)
    weights = rng.uniform(0.5, 1.5, len(routes))
    weights = (weights / weights.sum()).round(9)
    flow: dict[str, float] = {}
    for route, weight in zip(routes, weights, strict=True):
        for edge in route:
            flow[edge] = flow.get(edge, 0.0) + float(weight)
    detectors = _choose_detectors(scenario.detectors, flow, {e.getID() for e in sources} | {e.getID() for e in sinks})
    green = _green_shares(net)
    table: dict[str, dict[str, float]] = {}
    for edge_id in sorted(flow):
        edge = net.getEdge(edge_id)
        table[edge_id] = {
            "length": round(edge.getLength(), 3),
            "lanes": edge.getLaneNumber(),
            "speed": round(edge.getSpeed(), 3),
            "green": round(green.get(edge_id, 1.0), 4),
            "sink": float(_dead_end(edge.getToNode())),
        }
    lanes = {d: [lane.getID() for lane in net.getEdge(d).getLanes()] for d in detectors}
    positions = {d: round(scenario.detectors.position * net.getEdge(d).getLength(), 2) for d in detectors}
    return {
        "routes": routes,
        "route_weights": [float(w) for w in weights],
        "detectors": detectors,
        "detector_lanes": lanes,
        "detector_positions": positions,
        "edges": table,
    }


def _dead_end(node: Any) -> bool:
    neighbours = {e.getFromNode().getID() for e in node.getIncoming()} | {
        e.getToNode().getID() for e in node.getOutgoing()
    }
    return len(neighbours) <= 1


def _sample_routes(net: Any, sources: list[Any], sinks: list[Any], demand: DemandSpec) -> list[list[str]]:
    rng = np.random.default_rng(demand.seed)
    routes: list[list[str]] = []
    seen: set[tuple[str, str]] = set()
    pairs = [(o, d) for o in sources for d in sinks if o.getFromNode() != d.getToNode() and o != d]
    for index in rng.permutation(len(pairs)):
        origin, destination = pairs[int(index)]
        if (origin.getID(), destination.getID()) in seen:
            continue
        path, _ = net.getShortestPath(origin, destination, vClass="passenger")
        if not path or len(path) < 3:
            continue
        seen.add((origin.getID(), destination.getID()))
        routes.append([e.getID() for e in path])
        if len(routes) == demand.n_routes:
            break
    if not routes:
        raise UserError(
            "no route between the network's fringe edges",
            where="scenario.network",
            hint="use a larger or connected network",
        )
    return routes


def _choose_detectors(spec: DetectorSpec, flow: Mapping[str, float], fringe: set[str]) -> list[str]:
    if spec.edges is not None:
        missing = [e for e in spec.edges if e not in flow]
        if missing:
            raise ConfigError(
                f"detector edge {missing[0]!r} carries no route",
                where="scenario.detectors.edges",
                hint="name edges on the demand's routes, or give detectors.count instead",
            )
        return list(spec.edges)
    inner = sorted(e for e in flow if e not in fringe) or sorted(flow)
    count = min(spec.count, len(inner))
    share = np.array([flow[e] for e in inner])
    chosen = np.random.default_rng(spec.seed).choice(len(inner), size=count, replace=False, p=share / share.sum())
    return sorted(inner[int(i)] for i in chosen)


def _green_shares(net: Any) -> dict[str, float]:
    """Share of the signal cycle in which an edge's movements have green (mean over its controlled links)."""
    shares: dict[str, list[float]] = {}
    for tls in net.getTrafficLights():
        programs = tls.getPrograms()
        if not programs:
            continue
        phases = next(iter(programs.values())).getPhases()
        cycle = sum(p.duration for p in phases)
        if cycle <= 0:
            continue
        for in_lane, _, index in tls.getConnections():
            green = sum(p.duration for p in phases if index < len(p.state) and p.state[index] in "Gg") / cycle
            shares.setdefault(in_lane.getEdge().getID(), []).append(green)
    return {edge: float(np.mean(values)) for edge, values in shares.items()}


# --------------------------------------------------------------------------------------------------------- demand


def profile(demand: DemandSpec, interval: float) -> np.ndarray:
    """Relative demand per interval (mean 1): a base plus a Gaussian peak at ``peak_time`` × duration."""
    n = round(demand.duration / interval)
    centres = (np.arange(n) + 0.5) * interval / demand.duration
    shape = 1.0 + demand.peak_amplitude * np.exp(-0.5 * ((centres - demand.peak_time) / demand.peak_width) ** 2)
    return np.asarray(shape / shape.mean())


def route_rates(built: BuiltScenario, demand: DemandSpec, demand_scale: float, interval: float = 300.0) -> np.ndarray:
    """Vehicles per second on each route in each interval: shape (routes, intervals)."""
    weights = np.asarray(built.route_weights)
    return np.asarray(np.outer(weights, profile(demand, interval)) * demand.vehicles_per_hour * demand_scale / 3600.0)


def full_theta(theta: Mapping[str, float]) -> dict[str, float]:
    """θ with every parameter not given at its default."""
    check_theta(theta, "params")
    return {name: float(theta.get(name, p.default)) for name, p in THETA.items()}


def write_routes(
    built: BuiltScenario, demand: DemandSpec, theta: Mapping[str, float], path: Path, interval: float = 300.0
) -> None:
    """The SUMO route file for θ: one vehicle type carrying θ, the routes, one flow per route and interval."""
    t = full_theta(theta)
    rates = route_rates(built, demand, t["demand_scale"], interval)
    lines = [
        "<routes>",
        f'  <vType id="car" speedFactor="normc({t["speed_factor"]:.6g},0.1,0.2,2)" tau="{t["tau"]:.6g}" '
        f'accel="{t["accel"]:.6g}" decel="4.5" sigma="{t["sigma"]:.6g}" minGap="{t["min_gap"]:.6g}" length="5"/>',
    ]
    lines += [f'  <route id="r{i}" edges="{" ".join(edges)}"/>' for i, edges in enumerate(built.routes)]
    for block in range(rates.shape[1]):
        begin, end = block * interval, (block + 1) * interval
        for route in range(rates.shape[0]):
            rate = float(rates[route, block])  # vehicles per second
            if rate <= 0:
                continue
            # random: a Bernoulli draw each second (Poisson-like counts); regular: evenly spaced departures
            spacing = (
                f'probability="{min(1.0, rate):.6g}"'
                if demand.arrivals == "random"
                else f'vehsPerHour="{3600 * rate:.6g}"'
            )
            lines.append(
                f'  <flow id="f{route}_{block}" type="car" route="r{route}" begin="{begin:g}" end="{end:g}" '
                f'{spacing} departLane="best" departSpeed="max"/>'
            )
    lines.append("</routes>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_detectors(
    built: BuiltScenario, interval: float, output: Path, path: Path, area_output: Path | None = None
) -> None:
    """The SUMO additional file: one induction loop per lane of every detector edge (counts, speeds, occupancy)
    and, with ``area_output``, one lane-area detector over the whole lane (queue length)."""
    lines = ["<additional>"]
    for edge in built.detectors:
        for lane in built.detector_lanes[edge]:
            lines.append(
                f'  <inductionLoop id="{lane}" lane="{lane}" pos="{built.detector_positions[edge]:g}" '
                f'period="{interval:g}" file="{output}"/>'
            )
            if area_output is not None:
                length = built.edges[edge]["length"]
                lines.append(
                    f'  <laneAreaDetector id="area_{lane}" lane="{lane}" pos="0" endPos="{length - 0.1:g}" '
                    f'period="{interval:g}" file="{area_output}"/>'
                )
    lines.append("</additional>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def with_theta_star(scenario: TrafficScenario, theta_star: Mapping[str, float]) -> TrafficScenario:
    check_theta(theta_star, "theta_star")
    return replace(scenario, theta_star=dict(theta_star))
