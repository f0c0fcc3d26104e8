"""The cheap model g(ξ): a spatial queue model of the same network and demand, in numpy (milliseconds a run).

Each edge on a route is a link with a running part and a queue at its downstream end. Vehicles (as a fluid, one
commodity per route position) enter a link, travel its length at the free speed ``speed_limit × free_speed``, join
its exit queue, and leave at most at the link's capacity ``saturation_flow × lanes × green share`` (the green share
of its traffic light, read from the network), shared among the queued commodities in proportion. A link holds at
most ``lanes × length / 7.5 m`` vehicles (its storage): when the next link of a route is full, the vehicles
bound for it wait in the queue, and the queue spills back upstream — the congestion SUMO shows on a busy
network. Vehicles that cannot enter their first link wait at the origin, as SUMO's insertion backlog does. The
demand is :func:`apps.traffic.scenario.route_rates` × ``demand``. The loop is stepped in time (``dt`` seconds),
vectorised over every (route, link) pair.

The detectors see the flow that enters a link, delayed by the free-flow time to the loop; the speed there is the
free speed while the link's queue stays short of the loop and falls towards a crawl as it reaches it; occupancy
is flow × vehicle length / speed; the queue length is the queued vehicles × 7.5 m, plus the queue a signal's red
phase builds up (half the red time's arrivals, on average). So ξ = (``demand``, ``free_speed``,
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
VEHICLE_LENGTH = 5.0  # metres, as in the route files
SIGNAL_CYCLE = 90.0  # seconds: netgenerate's default programs (42 + 3 + 42 + 3)
CRAWL = 0.1  # speed at the loop, as a share of the free speed, once the queue reaches it


class LinkQueueModel:
    """g(ξ) on one built scenario. ``dt``: time step in seconds."""

    def __init__(self, built: BuiltScenario, scenario: TrafficScenario, dt: float = 2.0) -> None:
        self.built = built
        self.scenario = scenario
        self.dt = dt

    def simulate(self, xi: Mapping[str, float]) -> DetectorSeries:
        """Detector counts, speeds, occupancy and queue lengths for ξ (missing entries take their defaults)."""
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

        links = sorted({edge for route in built.routes for edge in route})
        index = {edge: i for i, edge in enumerate(links)}
        table = [built.edges[edge] for edge in links]
        lanes = np.array([t["lanes"] for t in table], dtype=float)
        length = np.array([t["length"] for t in table], dtype=float)
        green = np.array([t["green"] for t in table], dtype=float)
        v_free = np.array([t["speed"] for t in table], dtype=float) * x["free_speed"]
        storage = np.maximum(lanes * length / JAM_SPACING, 1.0)
        capacity = x["saturation_flow"] / 3600.0 * lanes * green * dt  # vehicles per step out of a link's queue
        insertion = x["saturation_flow"] / 3600.0 * lanes * dt  # vehicles per step into a first link

        slot_link: list[int] = []
        slot_next: list[int] = []
        first_slot: list[int] = []
        first_link: list[int] = []
        for route in built.routes:
            start = len(slot_link)
            first_slot.append(start)
            first_link.append(index[route[0]])
            for k, edge in enumerate(route):
                slot_link.append(index[edge])
                slot_next.append(start + k + 1 if k + 1 < len(route) else -1)
        link_of = np.array(slot_link)
        nxt = np.array(slot_next)
        has_next = nxt >= 0
        target = np.where(has_next, link_of[np.maximum(nxt, 0)], 0)
        first = np.array(first_slot)
        origin_link = np.array(first_link)
        n_links, n_slots = len(links), len(link_of)
        travel = np.maximum(1, np.round(length / v_free / dt)).astype(int)[link_of]
        ring = int(travel.max()) + 1
        slots = np.arange(n_slots)

        running = np.zeros((ring, n_slots))  # vehicles that reach their link's queue at step t (mod ring)
        queue = np.zeros(n_slots)
        backlog = np.zeros(len(built.routes))
        on_link = np.zeros(n_links)
        entered = np.zeros((steps, n_links))
        queued = np.zeros((steps, n_links))
        for t in range(steps):
            backlog += demand[:, t]
            queue += running[t % ring]
            running[t % ring] = 0.0
            # sending: each link's capacity shared among its queued commodities; the last link of a route exits
            waiting = np.bincount(link_of, queue, n_links)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(waiting > capacity, capacity / waiting, 1.0)
            send = np.where(has_next, queue * share[link_of], queue)
            # receiving: a link takes no more than its free storage (plus what leaves it this step)
            leaving = np.bincount(link_of, send, n_links)
            room = np.maximum(storage - on_link + leaving, 0.0)
            insert = np.minimum(backlog, insertion[origin_link])
            wanted = np.bincount(target[has_next], send[has_next], n_links) + np.bincount(origin_link, insert, n_links)
            with np.errstate(invalid="ignore", divide="ignore"):
                accept = np.where(wanted > room, room / wanted, 1.0)
            send = np.where(has_next, send * accept[target], send)
            insert = insert * accept[origin_link]
            queue -= send
            backlog -= insert
            entering = np.zeros(n_slots)
            entering[nxt[has_next]] = send[has_next]
            entering[first] += insert
            on_link += np.bincount(link_of, entering, n_links) - np.bincount(link_of, send, n_links)
            running[(t + travel) % ring, slots] += entering
            entered[t] = np.bincount(link_of, entering, n_links)
            queued[t] = np.bincount(link_of, queue, n_links)
        return self._observe(built, index, entered, queued, lanes, length, green, v_free, n_intervals, per_interval)

    def _observe(
        self,
        built: BuiltScenario,
        index: dict[str, int],
        entered: np.ndarray,
        queued: np.ndarray,
        lanes: np.ndarray,
        length: np.ndarray,
        green: np.ndarray,
        v_free: np.ndarray,
        n_intervals: int,
        per_interval: int,
    ) -> DetectorSeries:
        """The detector series: what enters a detector's link, seen at its loop, aggregated per interval."""
        dt = self.dt
        shape = (len(built.detectors), n_intervals)
        counts, speeds, occupancy, queue = (np.zeros(shape) for _ in range(4))
        cells = n_intervals * per_interval
        for row, edge in enumerate(built.detectors):
            i = index[edge]
            position = built.detector_positions[edge]
            lag = round(position / v_free[i] / dt)
            passing = _delay(entered[:, i], lag)[:cells]
            jam = queued[:, i] * JAM_SPACING / lanes[i]  # metres of queue per lane
            reach = np.clip(jam / max(length[i] - position, 1.0), 0.0, 1.0)[:cells]
            speed = v_free[i] * (1.0 - (1.0 - CRAWL) * reach)
            count = passing.reshape(n_intervals, -1).sum(axis=1)
            counts[row] = count
            with np.errstate(invalid="ignore", divide="ignore"):
                speeds[row] = np.where(
                    count > 1e-6, (passing * speed).reshape(n_intervals, -1).sum(axis=1) / count, np.nan
                )
            # occupancy: time share over the loop (flow × length / speed) per lane, in %
            rate = passing / dt / lanes[i]
            occupied = np.clip(rate * VEHICLE_LENGTH / speed, 0.0, 1.0)
            occupancy[row] = 100.0 * occupied.reshape(n_intervals, -1).mean(axis=1)
            # queue: the spilled queue plus half a red phase's arrivals at a signal (lane-area detector, summed)
            red_queue = (1.0 - green[i]) * SIGNAL_CYCLE * rate * lanes[i] / 2.0 * JAM_SPACING if green[i] < 1 else 0.0
            queue[row] = (jam[:cells] * lanes[i] + red_queue).reshape(n_intervals, -1).mean(axis=1)
        return DetectorSeries(list(built.detectors), self.scenario.detectors.interval, counts, speeds, occupancy, queue)


def _delay(series: np.ndarray, steps: int) -> np.ndarray:
    """``series`` shifted ``steps`` later (zeros first), same length."""
    if steps <= 0:
        return series
    return np.concatenate((np.zeros(min(steps, len(series))), series[: max(len(series) - steps, 0)]))
