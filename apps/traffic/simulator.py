"""Run SUMO on a built scenario with parameters θ and return its detector series.

Backends: ``libsumo`` runs SUMO inside this process (fastest; SUMO allows one simulation per process at a
time, so parallel runs must be separate processes); ``traci`` runs the ``sumo`` program as a child process
driven over a socket; ``auto`` (the default) takes libsumo, and falls back to traci when libsumo is missing or
another thread of this process is using it. ``mesoscopic=True`` switches SUMO to its queue-based mesoscopic
model (several times faster, coarser).

Every run works in a temporary folder (route file with θ, detector file, logs) that is removed afterwards,
whatever happens. A run that exceeds ``timeout`` seconds of wall time is stopped — the traci child is killed
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
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
import xml.parsers.expat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.traffic.scenario import BuiltScenario, TrafficScenario, sumo_binary, write_detectors, write_routes

BACKENDS = ("auto", "libsumo", "traci")
_LIBSUMO = threading.Lock()  # libsumo holds one simulation per process


class SimulationError(RuntimeError):
    """SUMO refused or failed a run; the message carries the tail of its error log."""


class SimulationTimeout(SimulationError):
    """A run took longer than its wall-time limit and was stopped."""


@dataclass
class DetectorSeries:
    """Counts and mean speeds (m/s, NaN where no vehicle passed) per detector (rows) and interval (columns)."""

    detectors: list[str]
    interval: float
    counts: np.ndarray
    speeds: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "detectors": list(self.detectors),
            "interval": self.interval,
            "counts": self.counts.tolist(),
            "speeds": [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in self.speeds],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectorSeries:
        speeds = np.array([[np.nan if v is None else v for v in row] for row in data["speeds"]], dtype=float)
        return cls(list(data["detectors"]), float(data["interval"]), np.asarray(data["counts"], dtype=float), speeds)


@dataclass
class RunInfo:
    """What a run cost and did: wall seconds, the backend used, vehicles inserted and teleported."""

    wall_s: float
    backend: str
    inserted: int
    teleports: int


def simulate(
    built: BuiltScenario,
    scenario: TrafficScenario,
    theta: Mapping[str, float],
    seed: int,
    *,
    backend: str = "auto",
    mesoscopic: bool = False,
    timeout: float = 300.0,
    info: list[RunInfo] | None = None,
) -> DetectorSeries:
    """Simulate ``scenario`` (already :func:`~apps.traffic.scenario.build`-t) with θ and SUMO seed ``seed``.

    ``info``, if given, receives one :class:`RunInfo`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    interval = scenario.detectors.interval
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kakehashi-sumo-") as tmp:
        folder = Path(tmp)
        write_routes(built, scenario.demand, theta, folder / "routes.rou.xml", interval)
        write_detectors(built, interval, folder / "loops.xml", folder / "loops.add.xml")
        args = [
            "-n", str(built.net_file), "-r", str(folder / "routes.rou.xml"), "-a", str(folder / "loops.add.xml"),
            "--seed", str(int(seed)), "--begin", "0", "--end", f"{scenario.demand.duration:g}",
            "--time-to-teleport", "300", "--no-step-log", "--no-warnings", "--xml-validation", "never",
            "--duration-log.disable", "--error-log", str(folder / "errors.log"),
            "--statistic-output", str(folder / "statistics.xml"),
        ]  # fmt: skip
        if mesoscopic:
            args += ["--mesosim"]  # queues on edges, signals not modelled: coarse and fast
        used = _run(args, scenario.demand.duration, interval, backend, timeout, folder)
        series = _read_loops(folder / "loops.xml", built, interval, scenario.demand.duration)
        if info is not None:
            inserted, teleports = _read_statistics(folder / "statistics.xml")
            info.append(RunInfo(time.perf_counter() - started, used, inserted, teleports))
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


def _run_traci(args: list[str], end: float, chunk: float, timeout: float, folder: Path) -> None:
    import traci
    from sumolib.miscutils import getFreeSocketPort

    port = getFreeSocketPort()
    command = [sumo_binary("sumo"), *args, "--remote-port", str(port)]
    log = (folder / "sumo.out").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
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
        try:
            now = 0.0
            while now < end:
                now = min(end, now + chunk)
                connection.simulationStep(float(now))  # an int ≥ 1000 makes traci warn that steps are seconds
        finally:
            with contextlib.suppress(Exception):
                connection.close()
        process.wait(timeout=max(1.0, timeout))
    except Exception as exc:
        if killed.is_set():
            raise SimulationTimeout(f"SUMO process killed after {timeout:g} s wall time") from None
        raise SimulationError(_failure("SUMO failed", exc, folder)) from None
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def _connect(traci: Any, port: int, process: subprocess.Popen[bytes], label: str, deadline: float) -> Any:
    """Connect to the SUMO child once it listens. traci.connect prints every retry, and silencing it with
    ``redirect_stdout`` swaps ``sys.stdout`` for the whole process, which concurrent runs in threads get wrong."""

    from traci.connection import Connection

    while True:
        try:
            return Connection("localhost", port, process, None, True, label)
        except OSError:
            if process.poll() is not None:
                raise SimulationError(f"SUMO exited with code {process.returncode} before accepting traci") from None
            if time.monotonic() > deadline:
                raise TimeoutError("SUMO did not accept a traci connection in time") from None
            time.sleep(0.05)


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
        element.clear()
    with np.errstate(invalid="ignore", divide="ignore"):
        speeds = np.where(counts > 0, speed_sum / counts, np.nan)
    return DetectorSeries(list(built.detectors), interval, counts, speeds)


def _read_statistics(path: Path) -> tuple[int, int]:
    if not path.is_file():
        return 0, 0
    root = ET.parse(path).getroot()
    vehicles = root.find("vehicles")
    teleports = root.find("teleports")
    inserted = int(vehicles.get("inserted", "0")) if vehicles is not None else 0
    return inserted, int(teleports.get("total", "0")) if teleports is not None else 0


def dump_series(series: DetectorSeries, path: Path) -> None:
    from core.files import write_atomic

    write_atomic(path, json.dumps(series.to_dict()) + "\n")
