"""Publish to a node and collect what it sends back, on loopback — for tests and latency benchmarks.

:class:`Loopback` opens its own rclpy context on a fresh domain confined to this host, spins it in a background
thread, and hands out publishers and collecting subscriptions. :func:`start_node` runs a node's command (e.g.
``kakehashi robots frontend-node``) in a subprocess with the same environment; :func:`stop_node` stops it with
SIGINT, then SIGKILL after a grace period.

Example::

    with Loopback() as ros:
        node = start_node(["kakehashi", "avsl", "node", "--model", "run/ckpt"], ros.env)
        replies = ros.collect("/avsl/map", Float32MultiArray)
        audio = ros.publisher("/audio", Float32MultiArray)
        ros.wait_for_subscribers(audio, timeout=20)
        audio.publish(audio_to_message(block, 16000))
        assert ros.wait_for(lambda: replies, timeout=20)
        code, output = stop_node(node)
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.signals import SignalHandlerOptions

from core.ros.loopback import loopback_env, unique_domain_id


class Loopback:
    """An rclpy context of its own on a loopback-only domain, spun in a background thread.

    Args:
        domain_id: The ROS domain; a fresh one when ``None``.
    """

    def __init__(self, domain_id: int | None = None) -> None:
        self.domain_id = unique_domain_id() if domain_id is None else domain_id
        self.env: dict[str, str] = {**os.environ, **loopback_env(self.domain_id)}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._saved_env: dict[str, str | None] = {}
        self._context: Context | None = None
        self._node: Node | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Loopback:
        for key, value in loopback_env(self.domain_id).items():  # discovery range is read from the environment
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self._context = Context()
        rclpy.init(context=self._context, domain_id=self.domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self._node = Node(f"kakehashi_harness_{os.getpid()}", context=self._context)
        executor = SingleThreadedExecutor(context=self._context)
        executor.add_node(self._node)

        def spin() -> None:
            while not self._stop.is_set():
                executor.spin_once(timeout_sec=0.02)
            executor.shutdown()

        self._thread = threading.Thread(target=spin, name="ros-loopback", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._node is not None:
            self._node.destroy_node()
        if self._context is not None and self._context.ok():
            self._context.try_shutdown()
        for key, saved in self._saved_env.items():
            if saved is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = saved

    @property
    def node(self) -> Node:
        if self._node is None:
            raise RuntimeError("use Loopback as a context manager: with Loopback() as ros: ...")
        return self._node

    def publisher(self, topic: str, msg_type: Any, depth: int = 10) -> Publisher[Any]:
        """A publisher on ``topic``."""
        with self._lock:
            return self.node.create_publisher(msg_type, topic, depth)

    def collect(self, topic: str, msg_type: Any, depth: int = 100) -> list[Any]:
        """A list that fills with every message received on ``topic`` (:meth:`collect_timed` adds arrival times)."""
        received: list[Any] = []
        with self._lock:
            self.node.create_subscription(msg_type, topic, received.append, depth)
        return received

    def collect_timed(self, topic: str, msg_type: Any, depth: int = 100) -> list[tuple[float, Any]]:
        """Like :meth:`collect`, each message paired with its arrival time (``time.perf_counter()``)."""
        received: list[tuple[float, Any]] = []

        def keep(message: Any) -> None:
            received.append((time.perf_counter(), message))

        with self._lock:
            self.node.create_subscription(msg_type, topic, keep, depth)
        return received

    def wait_for_subscribers(self, publisher: Publisher[Any], count: int = 1, timeout: float = 30.0) -> bool:
        """Wait until ``count`` subscribers have matched ``publisher`` (a node that has started listening)."""
        return self.wait_for(lambda: publisher.get_subscription_count() >= count, timeout)

    @staticmethod
    def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.02) -> bool:
        """Poll ``predicate`` until it is truthy or ``timeout`` seconds pass; return whether it became truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return bool(predicate())


def start_node(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start a node's command in a process group of its own, with ``env`` (a :class:`Loopback`'s ``env``)."""
    return subprocess.Popen(
        list(argv),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop_node(process: subprocess.Popen[str], grace: float = 10.0) -> tuple[int, str]:
    """Stop a node started by :func:`start_node` (SIGINT, then SIGKILL to its group after ``grace`` seconds);
    return its exit code and everything it printed."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return process.returncode, output or ""


__all__ = ["Loopback", "start_node", "stop_node"]
