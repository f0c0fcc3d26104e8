"""The SUMO wrapper: libsumo and traci agree, mesoscopic runs, temp files go, failures and hangs are reported."""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from apps.traffic.scenario import BuiltScenario, TrafficScenario
from apps.traffic.simulator import RunInfo, SimulationError, SimulationTimeout, simulate

pytestmark = pytest.mark.sumo
Tiny = tuple[TrafficScenario, BuiltScenario]


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary-files folder of this test alone, so other SUMO runs on the machine do not count."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]


def test_libsumo_and_the_sumo_process_give_the_same_series(tiny: Tiny, private_tmp: Path) -> None:
    spec, built = tiny
    info: list[RunInfo] = []
    in_process = simulate(built, spec, spec.theta_star, seed=5, backend="libsumo", info=info)
    child = simulate(built, spec, spec.theta_star, seed=5, backend="traci", info=info)
    assert [i.backend for i in info] == ["libsumo", "traci"]
    assert in_process.counts.shape == (len(built.detectors), 4)
    assert in_process.counts.sum() > 50 and info[0].inserted > 100
    np.testing.assert_array_equal(in_process.counts, child.counts)
    np.testing.assert_allclose(in_process.speeds, child.speeds, equal_nan=True)
    assert np.nanmin(in_process.speeds) > 0 and np.nanmax(in_process.speeds) < 14.0 * 1.2
    other_seed = simulate(built, spec, spec.theta_star, seed=6)
    assert not np.array_equal(other_seed.counts, in_process.counts)  # the seed is SUMO's noise
    assert _leftovers(private_tmp) == []  # temporary folders removed


def test_mesoscopic_mode_sees_the_same_traffic(tiny: Tiny) -> None:
    spec, built = tiny
    micro = simulate(built, spec, spec.theta_star, seed=5)
    meso = simulate(built, spec, spec.theta_star, seed=5, mesoscopic=True)
    assert meso.counts.sum() == pytest.approx(micro.counts.sum(), rel=0.15)
    assert np.nanmean(meso.speeds) == pytest.approx(np.nanmean(micro.speeds), rel=0.2)


def test_mesoscopic_junction_control_holds_vehicles_at_signals(tiny: Tiny) -> None:
    """With junction control the mesoscopic loops see the waits at the signals: the same vehicles, slower."""
    spec, built = tiny
    meso = simulate(built, spec, spec.theta_star, seed=5, mesoscopic=True)
    held = simulate(built, spec, spec.theta_star, seed=5, mesoscopic=True, junction_control=True)
    assert held.counts.sum() == pytest.approx(meso.counts.sum(), rel=0.15)
    assert np.nanmean(held.speeds) < 0.8 * np.nanmean(meso.speeds)
    assert np.isnan(held.queue).all()  # loops only, as without it: no queue is measured


def test_theta_moves_counts_and_speeds_the_expected_way(tiny: Tiny) -> None:
    spec, built = tiny
    base = simulate(built, spec, {"demand_scale": 1.0, "speed_factor": 1.0}, seed=5)
    busier = simulate(built, spec, {"demand_scale": 1.4, "speed_factor": 1.0}, seed=5)
    slower = simulate(built, spec, {"demand_scale": 1.0, "speed_factor": 0.8}, seed=5)
    assert busier.counts.sum() > 1.25 * base.counts.sum()
    assert np.nanmean(slower.speeds) < 0.9 * np.nanmean(base.speeds)


def test_parallel_threads_use_libsumo_once_and_sumo_processes_beside_it(tiny: Tiny) -> None:
    spec, built = tiny
    infos: list[list[RunInfo]] = [[], []]
    results: list[np.ndarray] = [np.zeros(0), np.zeros(0)]

    def run(i: int) -> None:
        results[i] = simulate(built, spec, spec.theta_star, seed=9, info=infos[i]).counts

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(i) == 1 for i in infos)
    np.testing.assert_array_equal(results[0], results[1])


def test_concurrent_sumo_processes_leave_stdout_alone(tiny: Tiny) -> None:
    """Runs in the HPO runner's threads each start a SUMO child; none may swap the process's sys.stdout."""
    import sys

    spec, built = tiny
    stdout = sys.stdout
    counts: list[float] = []
    threads = [
        threading.Thread(target=lambda: counts.append(simulate(built, spec, {}, seed=3, backend="traci").counts.sum()))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sys.stdout is stdout and len(counts) == 3 and len(set(counts)) == 1


def test_a_traci_port_another_process_took_first_is_given_up_for_a_new_one(
    tiny: Tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between finding a free port and SUMO binding it, another process can take it: SUMO then quits with
    "Address already in use". The run starts again on a new port (3 tries), and only then is it an error."""
    import socket

    import sumolib.miscutils

    spec, built = tiny
    busy = socket.socket()  # bound, not listening: SUMO cannot bind it, and a client is refused at once
    busy.bind(("localhost", 0))
    taken = busy.getsockname()[1]
    free = sumolib.miscutils.getFreeSocketPort
    ports = iter([taken, taken])
    monkeypatch.setattr(sumolib.miscutils, "getFreeSocketPort", lambda: next(ports, None) or free())
    try:
        after_two = simulate(built, spec, {}, seed=3, backend="traci")
        assert next(ports, None) is None  # both taken ports were tried
        assert after_two.counts.sum() == simulate(built, spec, {}, seed=3, backend="traci").counts.sum()
        monkeypatch.setattr(sumolib.miscutils, "getFreeSocketPort", lambda: taken)
        with pytest.raises(SimulationError, match="port taken 3 times"):
            simulate(built, spec, {}, seed=3, backend="traci")
    finally:
        busy.close()


def test_a_traci_port_another_runs_sumo_answers_is_given_up_for_a_new_one(
    tiny: Tiny, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two processes handed the same port: the other run's SUMO listens on it and this run's SUMO cannot bind it.
    This run's client reaches the other SUMO first; it sees that SUMO is not its own (its statistic output is
    another file), lets it go and starts again on a new port."""
    import subprocess
    import time

    import sumolib.miscutils

    from apps.traffic.scenario import sumo_binary

    spec, built = tiny
    taken = sumolib.miscutils.getFreeSocketPort()
    other = subprocess.Popen(
        [sumo_binary("sumo"), "-n", str(built.net_file), "--end", "10", "--remote-port", str(taken),
         "--statistic-output", str(tmp_path / "other.xml"), "--no-step-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _listening(taken):  # the other SUMO is listening before this run starts its own
        assert other.poll() is None and time.monotonic() < deadline, "the other SUMO did not start listening"
        time.sleep(0.05)
    free = sumolib.miscutils.getFreeSocketPort
    ports = iter([taken])
    monkeypatch.setattr(sumolib.miscutils, "getFreeSocketPort", lambda: next(ports, None) or free())
    try:
        series = simulate(built, spec, {}, seed=3, backend="traci")
        assert next(ports, None) is None  # the taken port was tried first
        assert series.counts.sum() == simulate(built, spec, {}, seed=3, backend="traci").counts.sum()
        assert other.wait(timeout=30) == 0  # the other SUMO served this run's client and was closed by it
    finally:
        other.kill()
        other.wait()


def test_a_sumo_that_ended_before_its_own_client_connected_counts_as_a_taken_port() -> None:
    """The other side of a shared port: a SUMO that served another run's client to its end exits 0 before this
    run's client reached it. That is a taken port (the run starts again on a new one), not a failed simulation."""
    import subprocess
    import sys
    import time

    import sumolib.miscutils
    import traci

    from apps.traffic.simulator import _connect, _PortTaken

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    with pytest.raises(_PortTaken, match="served another client"):
        _connect(traci, sumolib.miscutils.getFreeSocketPort(), ended, "t", deadline=time.monotonic() + 10)
    failed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    failed.wait()
    with pytest.raises(SimulationError, match="exited with code 3"):
        _connect(traci, sumolib.miscutils.getFreeSocketPort(), failed, "t", deadline=time.monotonic() + 10)


def _listening(port: int) -> bool:
    """Whether a socket listens on ``port`` (Linux: /proc/net/tcp*, state 0A), found without connecting to it."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                if int(local.rsplit(":", 1)[1], 16) == port and state == "0A":
                    return True
    return False


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_a_run_sumo_rejects_is_reported_with_its_log(tiny: Tiny, backend: str, private_tmp: Path) -> None:
    spec, built = tiny
    bad = dataclasses.replace(built, routes=[["no_such_edge", *built.routes[0][1:]], *built.routes[1:]])
    with pytest.raises(SimulationError, match="no_such_edge"):
        simulate(bad, spec, spec.theta_star, seed=1, backend=backend)
    assert simulate(built, spec, spec.theta_star, seed=1, backend=backend).counts.sum() > 0  # usable afterwards
    assert _leftovers(private_tmp) == []


def test_malformed_network_is_refused_before_libsumo_can_crash_the_process(tiny: Tiny, tmp_path: Path) -> None:
    spec, built = tiny
    broken = tmp_path / "broken.net.xml"
    broken.write_text("<net><edge id='x'></net>")
    with pytest.raises(SimulationError, match=r"broken\.net\.xml is not readable XML"):
        simulate(dataclasses.replace(built, net_file=broken), spec, spec.theta_star, seed=1, backend="libsumo")


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_a_run_past_its_time_limit_is_stopped(tiny: Tiny, backend: str) -> None:
    spec, built = tiny
    with pytest.raises(SimulationTimeout):
        simulate(built, spec, spec.theta_star, seed=1, backend=backend, timeout=0.01)
    assert simulate(built, spec, spec.theta_star, seed=1, backend=backend).counts.sum() > 0


def test_unknown_parameter_is_a_config_error(tiny: Tiny) -> None:
    from core.errors import ConfigError

    spec, built = tiny
    with pytest.raises(ConfigError, match="unknown traffic parameter"):
        simulate(built, spec, {"reaction": 1.0}, seed=1)


def test_collisions_and_teleports_are_read_back_and_flag_the_run(
    tiny: Tiny, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """tau below the step length is refused; forced through anyway (the check switched off), SUMO's vehicles
    collide and teleport, and the run says so instead of being scored silently."""
    import apps.traffic.scenario
    from core.errors import ConfigError

    spec, built = tiny
    with pytest.raises(ConfigError, match="below SUMO's step length"):
        simulate(built, spec, {"tau": 0.5}, seed=1)
    monkeypatch.setattr(apps.traffic.scenario, "check_physics", lambda *args: None)
    info: list[RunInfo] = []
    with caplog.at_level("WARNING", logger="apps.traffic.simulator"):
        series = simulate(built, spec, {"tau": 0.5, "demand_scale": 1.3}, seed=1, backend="traci", info=info)
    run = info[0]
    assert series.run is run and run.collisions > 0 and run.teleports > 0 and run.warnings >= run.collisions
    assert "collisions" in run.flagged and any("collision" in line for line in run.warning_lines)
    assert any("flagged" in r.getMessage() for r in caplog.records)
    clean = simulate(built, spec, spec.theta_star, seed=1, backend="traci")
    assert clean.run is not None and clean.run.collisions == 0 and clean.run.flagged == ""


def test_libsumo_keeps_sumos_warnings_off_the_console_and_lets_other_output_through(
    tiny: Tiny, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """libsumo writes every warning to the process's standard error as well as to the run's error log: a run
    with collisions counts them, prints none of them, and a line written to standard error during the run (another
    thread's log) still reaches it."""
    import os

    import apps.traffic.scenario
    import apps.traffic.simulator as simulator

    spec, built = tiny
    monkeypatch.setattr(apps.traffic.scenario, "check_physics", lambda *args: None)
    start = simulator._run_libsumo

    def run_and_write(libsumo: Any, *args: Any) -> None:  # libsumo, writing a line before each step
        def step(*step_args: Any) -> None:
            os.write(2, b"another thread's line\n")
            libsumo.simulationStep(*step_args)

        start(types.SimpleNamespace(start=libsumo.start, simulationStep=step, close=libsumo.close), *args)

    monkeypatch.setattr(simulator, "_run_libsumo", run_and_write)
    series = simulate(built, spec, {"tau": 0.5, "demand_scale": 1.3}, seed=1, backend="libsumo")
    assert series.run is not None and series.run.backend == "libsumo" and series.run.warnings > 0
    err = capfd.readouterr().err
    assert "another thread's line" in err and "Warning:" not in err


def test_lane_area_queues_and_loop_occupancy_grow_with_demand(tiny: Tiny) -> None:
    spec, built = tiny
    light = simulate(built, spec, {"demand_scale": 0.6}, seed=2)
    heavy = simulate(built, spec, {"demand_scale": 1.4, "tau": 2.0}, seed=2)
    assert light.queue is not None and heavy.queue is not None and light.occupancy is not None
    assert np.isfinite(light.queue).all() and np.isfinite(light.occupancy).all()
    assert heavy.queue.sum() > light.queue.sum() and heavy.occupancy.sum() > light.occupancy.sum()  # type: ignore[union-attr]
    again = type(light).from_dict(light.to_dict())
    np.testing.assert_allclose(again.queue, np.round(light.queue, 4))
