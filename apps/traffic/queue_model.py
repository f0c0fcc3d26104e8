"""The cheap model g(ξ): a link queue model of the same network and demand, in numpy (milliseconds a run).

Each edge on a route is a link with a free-flow part and a queue at its downstream end. Vehicles (as a fluid,
one commodity per route) enter a link, travel its length at the free speed ``speed_limit × free_speed``, join
its exit queue, and leave at most at the link's capacity ``saturation_flow × lanes × green share`` (the green
share of its traffic light, read from the network) into the next link of their route, if that link has room
(storage: one vehicle per 7.5 m of lane). Vehicles that cannot enter their first link wait at the origin, as
SUMO's insertion backlog does. The demand is :func:`apps.traffic.scenario.route_rates` × ``demand``.

The detectors see the flow that enters a link, delayed by the free-flow time to the loop; their speed is the
Greenshields speed of the link's density, v_free (1 − k / k_jam). So ξ = (``demand``, ``free_speed``,
``saturation_flow``) is a coarse, biased cousin of θ: the bridge learns the map between them.

Example:
    >>> import tempfile
    >>> from apps.traffic.scenario import DetectorSpec, NetworkSpec, TrafficScenario, build
    >>> spec = TrafficScenario(network=NetworkSpec(size=3), detectors=DetectorSpec(count=4))
    >>> model = LinkQueueModel(build(spec, tempfile.mkdtemp()), spec)
    >>> model.simulate({"demand": 1.0, "free_speed": 0.9, "saturation_flow": 1800}).counts.shape
    (4, 12)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from apps.traffic.scenario import JAM_SPACING, BuiltScenario, Parameter, TrafficScenario, route_rates
from apps.traffic.simulator import DetectorSeries
from core.errors import ConfigError

XI = {
    p.name: p
    for p in (
        Parameter("demand", 0.5, 1.6, 1.0, "multiplies every route's flow"),
        Parameter("free_speed", 0.6, 1.3, 0.9, "free-flow speed / speed limit"),
        Parameter("saturation_flow", 600.0, 2400.0, 1800.0, "discharge rate of a queue in veh/h/lane of green"),
    )
}


class LinkQueueModel:
    """g(ξ) on one built scenario. ``dt``: time step in seconds."""

    def __init__(self, built: BuiltScenario, scenario: TrafficScenario, dt: float = 2.0) -> None:
        self.built = built
        self.scenario = scenario
        self.dt = dt

    def simulate(self, xi: Mapping[str, float]) -> DetectorSeries:
        """Detector counts and speeds for ξ (missing entries take their defaults)."""
        unknown = sorted(set(xi) - set(XI))
        if unknown:
            raise ConfigError(
                f"unknown cheap-model parameter {unknown[0]!r}", where="params", hint=f"known: {', '.join(XI)}"
            )
        x = {name: float(xi.get(name, p.default)) for name, p in XI.items()}
        built, dt = self.built, self.dt
        interval = self.scenario.detectors.interval
        steps = round(self.scenario.demand.duration / dt)
        n_intervals = round(self.scenario.demand.duration / interval)
        per_interval = round(interval / dt)
        rates = route_rates(built, self.scenario.demand, x["demand"], interval)  # veh/s per route and interval
        demand = np.repeat(rates * dt, per_interval, axis=1)[:, :steps]  # vehicles per step and route

        links: dict[str, list[tuple[int, int]]] = {}  # link -> (route, position on the route)
        for r, route in enumerate(built.routes):
            for k, edge in enumerate(route):
                links.setdefault(edge, []).append((r, k))
        order, acyclic = _upstream_first(built.routes)
        ramp = np.arange(1, steps + 1) * 1e-9  # makes cumulative arrivals strictly increasing for interp
        exits: dict[tuple[int, int], np.ndarray] = {}  # (route, position) -> vehicles leaving the link per step
        entered: dict[str, np.ndarray] = {}  # link -> vehicles entering it per step
        on_link: dict[str, np.ndarray] = {}  # link -> vehicles on it (running and queued) per step
        for _ in range(1 if acyclic else _SWEEPS):
            for edge in order:
                table = built.edges[edge]
                v_free = table["speed"] * x["free_speed"]
                travel = max(1, round(table["length"] / v_free / dt))
                capacity = (
                    np.inf if table["sink"] else x["saturation_flow"] / 3600.0 * table["lanes"] * table["green"] * dt
                )
                flows = [demand[r] if k == 0 else exits.get((r, k - 1), np.zeros(steps)) for r, k in links[edge]]
                inflow = np.sum(flows, axis=0)
                arrive_each = np.cumsum(np.stack([_delay(f, travel) for f in flows]), axis=1)
                arrived = arrive_each.sum(axis=0)
                departed = queue_departures(arrived, capacity)
                for (r, k), arrive_r in zip(links[edge], arrive_each, strict=True):
                    # FIFO: who leaves at t arrived when the total arrivals equalled the total departures at t
                    exits[(r, k)] = np.diff(np.interp(departed, arrived + ramp, arrive_r), prepend=0.0)
                entered[edge] = inflow
                on_link[edge] = np.cumsum(inflow) - departed

        counts = np.zeros((len(built.detectors), n_intervals))
        speed_sum = np.zeros_like(counts)
        for row, edge in enumerate(built.detectors):
            table = built.edges[edge]
            v_free = table["speed"] * x["free_speed"]
            lag = round(built.detector_positions[edge] / v_free / dt)
            passing = _delay(entered[edge], lag)
            storage = max(table["lanes"] * table["length"] / JAM_SPACING, 1.0)
            speed = v_free * (1.0 - np.minimum(_delay(on_link[edge], lag) / storage, 0.95))
            counts[row] = passing[: n_intervals * per_interval].reshape(n_intervals, -1).sum(axis=1)
            speed_sum[row] = (passing * speed)[: n_intervals * per_interval].reshape(n_intervals, -1).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            speeds = np.where(counts > 1e-6, speed_sum / counts, np.nan)
        return DetectorSeries(list(built.detectors), interval, counts, speeds)


_SWEEPS = 4  # passes over the links when routes make their upstream relation cyclic


def queue_departures(arrived: np.ndarray, capacity: float) -> np.ndarray:
    """Cumulative departures of a FIFO queue served at most ``capacity`` per step, from cumulative arrivals.

    Lindley's recursion Q_t = max(0, Q_{t−1} + a_t − c), solved in one pass: with S_t = Σ_{s≤t} (a_s − c),
    Q_t = S_t − min(0, min_{s≤t} S_s); departures are arrivals minus the queue.
    """
    if np.isinf(capacity):
        return arrived
    slack = np.cumsum(np.diff(arrived, prepend=0.0) - capacity)
    return np.asarray(arrived - (slack - np.minimum(0.0, np.minimum.accumulate(slack))))


def _delay(series: np.ndarray, steps: int) -> np.ndarray:
    """``series`` shifted ``steps`` later (zeros first), same length."""
    if steps <= 0:
        return series
    return np.concatenate((np.zeros(min(steps, len(series))), series[: max(len(series) - steps, 0)]))


def _upstream_first(routes: list[list[str]]) -> tuple[list[str], bool]:
    """Links ordered so each comes after every link that feeds it on some route; False if no such order exists."""
    from graphlib import CycleError, TopologicalSorter

    graph: dict[str, set[str]] = {}
    for route in routes:
        for k, edge in enumerate(route):
            graph.setdefault(edge, set())
            if k:
                graph[edge].add(route[k - 1])
    try:
        return list(TopologicalSorter(graph).static_order()), True
    except CycleError:
        mean_position: dict[str, list[float]] = {}
        for route in routes:
            for k, edge in enumerate(route):
                mean_position.setdefault(edge, []).append(k / len(route))
        return sorted(graph, key=lambda e: (float(np.mean(mean_position[e])), e)), False
