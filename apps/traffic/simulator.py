"""Run SUMO on a built scenario with parameters θ and return its detector series.

Backends: ``libsumo`` runs SUMO inside this process (fastest; SUMO allows one simulation per process at a
time, so parallel runs must be separate processes); ``traci`` runs the ``sumo`` program as a child process
driven over a socket; ``auto`` (the default) takes libsumo, and falls back to traci when libsumo is missing or
another thread of this process is using it. ``mesoscopic=True`` switches SUMO to its queue-based mesoscopic
model (several times faster, coarser).

Every run works in a temporary folder (route file with θ, detector file, logs) that is removed afterwards,
whatever happens. SUMO's warnings go to the run's error log (never to the terminal: libsumo's console copy of
them is kept off it) and are read back, with its statistics, into a
:class:`RunInfo` (``series.run``): a run with collisions or mass teleports is ``flagged`` and logged. A run that
exceeds ``timeout`` seconds of wall time is stopped — the traci child is killed
by a watchdog, libsumo is closed between simulation chunks — and raises :class:`SimulationTimeout`; a run SUMO
rejects raises :class:`SimulationError` with the tail of SUMO's error log.

Example:
    >>> import tempfile
    >>> from apps.traffic.scenario import DetectorSpec, NetworkSpec, TrafficScenario, build
    >>> spec = TrafficScenario(network=NetworkSpec(size=3), detectors=DetectorSpec(count=4))
    >>> series = simulate(build(spec, tempfile.mkdtemp()), spec, {"demand_scale": 1.0}, seed=1, mesoscopic=True)
    >>> series.counts.shape
    (4, 12)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import xml.etree.ElementTree as ET
import xml.parsers.expat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.traffic.scenario import BuiltScenario, TrafficScenario, sumo_binary, write_detectors, write_routes

log = logging.getLogger(__name__)
BACKENDS = ("auto", "libsumo", "traci")
_LIBSUMO = threading.Lock()  # libsumo holds one simulation per process
SUMO_MESSAGES = ("Warning: ", "Error: ")  # how SUMO starts each message it writes to the console


class SimulationError(RuntimeError):
    """SUMO refused or failed a run; the message carries the tail of its error log."""


class SimulationTimeout(SimulationError):
    """A run took longer than its wall-time limit and was stopped."""


@dataclass
class DetectorSeries:
    """Per detector (rows) and interval (columns): vehicle counts, mean speeds (m/s), occupancy (% of time a
    vehicle stood over the loop) and queue length (mean of the longest jam on the edge, metres). Speeds are NaN
    where no vehicle passed; occupancy and queue are NaN where the model does not measure them."""

    detectors: list[str]
    interval: float
    counts: np.ndarray
    speeds: np.ndarray
    occupancy: np.ndarray | None = None
    queue: np.ndarray | None = None
    run: RunInfo | None = None  # what the simulation cost and did (not serialised)

    def __post_init__(self) -> None:
        if self.occupancy is None:
            self.occupancy = np.full_like(self.counts, np.nan, dtype=float)
        if self.queue is None:
            self.queue = np.full_like(self.counts, np.nan, dtype=float)

    def to_dict(self) -> dict[str, Any]:
        def rows(values: np.ndarray) -> list[list[float | None]]:
            return [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in values]

        return {
            "detectors": list(self.detectors),
            "interval": self.interval,
            "counts": self.counts.tolist(),
            "speeds": rows(self.speeds),
            "occupancy": rows(self.occupancy),  # type: ignore[arg-type]
            "queue": rows(self.queue),  # type: ignore[arg-type]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectorSeries:
        def array(key: str) -> np.ndarray | None:
            if key not in data:
                return None
            return np.array([[np.nan if v is None else v for v in row] for row in data[key]], dtype=float)

        counts = np.asarray(data["counts"], dtype=float)
        return cls(
            list(data["detectors"]), float(data["interval"]), counts, array("speeds"),  # type: ignore[arg-type]
            array("occupancy"), array("queue"),
        )  # fmt: skip


# a run is flagged (and never silently scored) when vehicles collide, or when more than this share teleports
MASS_TELEPORT_SHARE = 0.05


@dataclass
class RunInfo:
    """What a run cost and did: wall seconds, the backend used, vehicles inserted, teleported and colliding,
    SUMO's warnings (count, and the first few lines), and ``flagged``: why the run is not a faithful simulation
    ("" when it is)."""

    wall_s: float
    backend: str
    inserted: int
    teleports: int
    collisions: int = 0
    warnings: int = 0
    warning_lines: tuple[str, ...] = ()

    @property
    def flagged(self) -> str:
        reasons = []
        if self.collisions:
            reasons.append(f"{self.collisions} collisions")
        if self.teleports > max(2, MASS_TELEPORT_SHARE * self.inserted):
            reasons.append(f"{self.teleports} teleports of {self.inserted} vehicles")
        return "; ".join(reasons)


def mean_series(days: Sequence[DetectorSeries]) -> DetectorSeries:
    """Several runs' (days') series as one: mean counts, occupancy and queue length per cell, and the speeds each
    day measured weighted by its vehicle count (NaN where no vehicle passed on any day). The run info adds up: wall
    seconds, vehicles, teleports, collisions and warnings, so a flagged day stays flagged.

    >>> a = DetectorSeries(["d"], 300.0, np.array([[10.0, 0.0]]), np.array([[10.0, np.nan]]))
    >>> b = DetectorSeries(["d"], 300.0, np.array([[30.0, 0.0]]), np.array([[14.0, np.nan]]))
    >>> m = mean_series([a, b])
    >>> m.counts.tolist(), m.speeds.tolist()
    ([[20.0, 0.0]], [[13.0, nan]])
    """
    if not days:
        raise ValueError("no series to average")
    first = days[0]
    if any(d.detectors != first.detectors or d.counts.shape != first.counts.shape for d in days):
        raise ValueError("the days' series differ in detectors or intervals")
    counts = np.stack([d.counts for d in days])
    speeds = np.stack([d.speeds for d in days])
    weights = np.where(np.isnan(speeds), 0.0, counts)
    with np.errstate(invalid="ignore"):
        speed = np.where(weights.sum(0) > 0, np.nansum(speeds * weights, 0) / weights.sum(0), np.nan)
    with warnings.catch_warnings():  # a cell no day measured stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        occupancy = np.nanmean(np.stack([d.occupancy for d in days if d.occupancy is not None]), 0)
        queue = np.nanmean(np.stack([d.queue for d in days if d.queue is not None]), 0)
    series = DetectorSeries(list(first.detectors), first.interval, counts.mean(0), speed, occupancy, queue)
    runs = [d.run for d in days if d.run is not None]
    if runs:
        series.run = RunInfo(
            sum(r.wall_s for r in runs), runs[0].backend, sum(r.inserted for r in runs), sum(r.teleports for r in runs),
            sum(r.collisions for r in runs), sum(r.warnings for r in runs),
            tuple(line for r in runs for line in r.warning_lines)[:5],
        )  # fmt: skip
    return series


def simulate(
    built: BuiltScenario,
    scenario: TrafficScenario,
    theta: Mapping[str, float],
    seed: int,
    *,
    backend: str = "auto",
    mesoscopic: bool = False,
    junction_control: bool = False,
    timeout: float = 300.0,
    info: list[RunInfo] | None = None,
) -> DetectorSeries:
    """Simulate ``scenario`` (already :func:`~apps.traffic.scenario.build`-t) with θ and SUMO seed ``seed``.

    With ``mesoscopic``, ``junction_control`` makes the mesoscopic model hold vehicles at signals and priority
    junctions (SUMO's ``--meso-junction-control``); its loops' speeds then include those waits, so they read
    lower than microscopic loops mid-edge do.

    ``info``, if given, receives one :class:`RunInfo` (also kept as the series' ``run``).

    Raises:
        ConfigError: If θ asks for a tau below the step length (see :func:`apps.traffic.scenario.check_physics`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    from apps.traffic.scenario import check_physics

    check_physics(dict(theta), scenario.step_length, "params")
    interval = scenario.detectors.interval
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kakehashi-sumo-") as tmp:
        folder = Path(tmp)
        write_routes(built, scenario.demand, theta, folder / "routes.rou.xml", interval)
        # the mesoscopic model has no lanes to measure a jam on: loops only
        area = None if mesoscopic else folder / "areas.xml"
        write_detectors(built, interval, folder / "loops.xml", folder / "loops.add.xml", area)
        # SUMO's warnings (collisions, teleports, a tau below the step) go to errors.log and are read back
        args = [
            "-n", str(built.net_file), "-r", str(folder / "routes.rou.xml"), "-a", str(folder / "loops.add.xml"),
            "--seed", str(int(seed)), "--begin", "0", "--end", f"{scenario.demand.duration:g}",
            "--step-length", f"{scenario.step_length:g}",
            "--time-to-teleport", "300", "--no-step-log", "--xml-validation", "never",
            "--duration-log.disable", "--error-log", str(folder / "errors.log"),
            "--statistic-output", str(folder / "statistics.xml"),
        ]  # fmt: skip
        if mesoscopic:
            args += ["--mesosim"]  # queues on edges, signals not modelled unless junction_control: coarse and fast
            args += ["--meso-junction-control"] if junction_control else []
        used = _run(args, scenario.demand.duration, interval, backend, timeout, folder)
        series = _read_loops(folder / "loops.xml", built, interval, scenario.demand.duration)
        if area is not None:
            series.queue = _read_areas(area, built, interval, scenario.demand.duration)
        inserted, teleports, collisions = _read_statistics(folder / "statistics.xml")
        count, lines = _read_warnings(folder / "errors.log")
        run = RunInfo(time.perf_counter() - started, used, inserted, teleports, collisions, count, lines)
        if run.flagged:
            log.warning("SUMO run flagged (seed %s, θ %s): %s", seed, dict(theta), run.flagged)
        series.run = run
        if info is not None:
            info.append(run)
    return series


def _run(args: list[str], end: float, chunk: float, backend: str, timeout: float, folder: Path) -> str:
    if backend in ("auto", "libsumo"):
        try:
            import libsumo
        except ImportError:
            if backend == "libsumo":
                raise
        else:
            if _LIBSUMO.acquire(blocking=backend == "libsumo"):
                try:
                    _run_libsumo(libsumo, args, end, chunk, timeout, folder)
                finally:
                    _LIBSUMO.release()
                return "libsumo"
    _run_traci(args, end, chunk, timeout, folder)
    return "traci"


def _run_libsumo(libsumo: Any, args: list[str], end: float, chunk: float, timeout: float, folder: Path) -> None:
    deadline = time.monotonic() + timeout
    for flag in ("-n", "-r", "-a"):  # libsumo crashes the whole process on malformed XML: refuse it first
        _check_well_formed(Path(args[args.index(flag) + 1]))
    with _console_to(folder / "console.log"):
        try:
            libsumo.start(["sumo", *args])
        except Exception as exc:  # libsumo raises its own TraCIException / FatalTraCIError
            raise SimulationError(_failure("SUMO did not start", exc, folder)) from None
        try:
            now = 0.0
            while now < end:
                now = min(end, now + chunk)
                libsumo.simulationStep(now)
                if time.monotonic() > deadline:
                    raise SimulationTimeout(f"SUMO run stopped after {timeout:g} s wall time at simulated t={now:g} s")
        except SimulationError:
            raise
        except Exception as exc:
            raise SimulationError(_failure("SUMO failed", exc, folder)) from None
        finally:
            with contextlib.suppress(Exception):
                libsumo.close()


@contextlib.contextmanager
def _console_to(path: Path) -> Iterator[None]:
    """Send this process's standard error (file descriptor 2) to ``path`` while libsumo runs: SUMO writes every
    warning to the console as well as to its error log (a congested run's teleports would fill the terminal).
    Afterwards every captured line that is not one of SUMO's own messages (another thread's log line written
    meanwhile) goes on to the real standard error."""
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to redirect
        yield
        return
    sys.stderr.flush()
    try:
        with path.open("wb") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        rest = [line for line in text.splitlines(keepends=True) if not line.startswith(SUMO_MESSAGES)]
        if rest:  # also when the run failed or was interrupted: nothing another thread wrote is lost
            sys.stderr.write("".join(rest))
            sys.stderr.flush()


PORT_ATTEMPTS = 3  # a free port found by one process can be taken by another before SUMO binds it: try anew


class _PortTaken(Exception):
    """SUMO could not listen on the port it was given (another process bound it first)."""


def _run_traci(args: list[str], end: float, chunk: float, timeout: float, folder: Path) -> None:
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            _run_traci_once(args, end, chunk, timeout, folder)
            return
        except _PortTaken as taken:
            if attempt == PORT_ATTEMPTS:
                raise SimulationError(f"SUMO found its traci port taken {PORT_ATTEMPTS} times: {taken}") from None
            log.info("SUMO's traci port was taken by another process; starting it again on a new one")


def _run_traci_once(args: list[str], end: float, chunk: float, timeout: float, folder: Path) -> None:
    import traci
    from sumolib.miscutils import getFreeSocketPort

    port = getFreeSocketPort()
    command = [sumo_binary("sumo"), *args, "--remote-port", str(port)]
    output = (folder / "sumo.out").open("w")
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=folder)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        process.kill()

    watchdog = threading.Timer(timeout, kill)
    watchdog.daemon = True
    watchdog.start()
    label = f"kakehashi-{port}-{threading.get_ident()}"
    try:
        connection = _connect(traci, port, process, label, deadline=time.monotonic() + timeout)
        if not _ours(connection, folder / "statistics.xml"):  # another run's SUMO listened on the port
            with contextlib.suppress(Exception):  # it served one client, us: that run starts again (_connect)
                connection.close(wait=False)  # this run's own SUMO, still starting, may yet bind and wait
            raise _PortTaken(f"port {port} was answered by another process's SUMO")
        try:
            now = 0.0
            while now < end:
                now = min(end, now + chunk)
                connection.simulationStep(float(now))  # an int ≥ 1000 makes traci warn that steps are seconds
        finally:
            with contextlib.suppress(Exception):
                connection.close()
        process.wait(timeout=max(1.0, timeout))
    except _PortTaken:
        raise
    except Exception as exc:
        if killed.is_set():
            raise SimulationTimeout(f"SUMO process killed after {timeout:g} s wall time") from None
        output.flush()
        if process.poll() is not None and "Address already in use" in (folder / "sumo.out").read_text(errors="replace"):
            raise _PortTaken(f"port {port}") from None
        raise SimulationError(_failure("SUMO failed", exc, folder)) from None
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        output.close()


def _connect(traci: Any, port: int, process: subprocess.Popen[bytes], label: str, deadline: float) -> Any:
    """Connect to the SUMO child once it listens. traci.connect prints every retry, and silencing it with
    ``redirect_stdout`` swaps ``sys.stdout`` for the whole process, which concurrent runs in threads get wrong."""

    from traci.connection import Connection

    while True:
        try:
            return Connection("localhost", port, process, None, True, label)
        except OSError:
            if process.poll() == 0:  # it ran to the end for a client that was not us: another run took the port
                raise _PortTaken(f"port {port}: SUMO served another client") from None
            if process.poll() is not None:
                raise SimulationError(f"SUMO exited with code {process.returncode} before accepting traci") from None
            if time.monotonic() > deadline:
                raise TimeoutError("SUMO did not accept a traci connection in time") from None
            time.sleep(0.05)


def _ours(connection: Any, statistics: Path) -> bool:
    """Whether the SUMO on the other end is the one this run started: its statistic output is this run's file.
    Two processes can be handed the same free port: a client that connects before its own SUMO has bound it
    reaches the other run's SUMO. (A SUMO too old to answer is taken to be ours.)"""
    try:
        answered = str(connection.simulation.getOption("statistic-output"))
    except Exception:
        return True
    return Path(answered).resolve() == statistics.resolve()


def _check_well_formed(path: Path) -> None:
    parser = xml.parsers.expat.ParserCreate()
    try:
        with path.open("rb") as stream:
            parser.ParseFile(stream)
    except (OSError, xml.parsers.expat.ExpatError) as exc:
        raise SimulationError(f"SUMO did not start: {path.name} is not readable XML ({exc})") from None


def _failure(what: str, exc: BaseException, folder: Path) -> str:
    tail = ""
    for name in ("errors.log", "sumo.out"):
        path = folder / name
        if path.is_file():
            tail += " ".join(path.read_text(encoding="utf-8", errors="replace").split())[-400:]
    return f"{what}: {exc}" + (f" — {tail}" if tail else "")


def _read_loops(path: Path, built: BuiltScenario, interval: float, duration: float) -> DetectorSeries:
    """Sum lanes into their edge: counts add up, speeds are count-weighted means."""
    if not path.is_file():
        raise SimulationError(f"SUMO wrote no detector output ({path.name})")
    row = {lane: i for i, edge in enumerate(built.detectors) for lane in built.detector_lanes[edge]}
    n = round(duration / interval)
    counts = np.zeros((len(built.detectors), n))
    speed_sum = np.zeros_like(counts)
    occupancy = np.zeros_like(counts)
    lanes = np.array([len(built.detector_lanes[edge]) for edge in built.detectors], dtype=float)[:, None]
    has_occupancy = False
    for _, element in ET.iterparse(path):
        if element.tag != "interval":
            continue
        lane = element.get("id", "")
        column = int(float(element.get("begin", "0")) // interval)
        if lane not in row or column >= n:
            continue
        # microscopic loops report nVehContrib; mesoscopic ones report the vehicles that entered
        count = float(element.get("nVehContrib") or element.get("entered") or 0)
        speed = float(element.get("speed") or -1)
        counts[row[lane], column] += count
        if count > 0 and speed >= 0:
            speed_sum[row[lane], column] += count * speed
        if element.get("occupancy") is not None:
            has_occupancy = True
            occupancy[row[lane], column] += float(element.get("occupancy") or 0.0)
        element.clear()
    with np.errstate(invalid="ignore", divide="ignore"):
        speeds = np.where(counts > 0, speed_sum / counts, np.nan)
    # occupancy: the mean over the edge's lanes (the mesoscopic loops do not report it)
    occupied = occupancy / lanes if has_occupancy else None
    return DetectorSeries(list(built.detectors), interval, counts, speeds, occupied)


def _read_areas(path: Path, built: BuiltScenario, interval: float, duration: float) -> np.ndarray:
    """Queue length per detector edge: the lanes' mean longest jam (``meanMaxJamLengthInMeters``), summed."""
    if not path.is_file():
        raise SimulationError(f"SUMO wrote no lane-area detector output ({path.name})")
    row = {f"area_{lane}": i for i, edge in enumerate(built.detectors) for lane in built.detector_lanes[edge]}
    queue = np.zeros((len(built.detectors), round(duration / interval)))
    for _, element in ET.iterparse(path):
        if element.tag != "interval":
            continue
        column = int(float(element.get("begin", "0")) // interval)
        name = element.get("id", "")
        if name in row and column < queue.shape[1]:
            queue[row[name], column] += float(element.get("meanMaxJamLengthInMeters") or 0.0)
        element.clear()
    return queue


def _read_warnings(path: Path, keep: int = 5) -> tuple[int, tuple[str, ...]]:
    """How many warnings SUMO wrote to its error log, and the first ``keep`` of them."""
    if not path.is_file():
        return 0, ()
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if "Warning" in line]
    return len(lines), tuple(lines[:keep])


def _read_statistics(path: Path) -> tuple[int, int, int]:
    """Vehicles inserted, teleports and collisions from SUMO's statistic output."""
    if not path.is_file():
        return 0, 0, 0
    root = ET.parse(path).getroot()

    def number(tag: str, attribute: str) -> int:
        node = root.find(tag)
        return int(float(node.get(attribute, "0"))) if node is not None else 0

    return number("vehicles", "inserted"), number("teleports", "total"), number("safety", "collisions")


def dump_series(series: DetectorSeries, path: Path) -> None:
    from core.files import write_atomic

    write_atomic(path, json.dumps(series.to_dict()) + "\n")
