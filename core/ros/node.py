"""Run a ROS 2 node until Ctrl-C or SIGTERM, and keep it running through malformed messages.

A node the CLI starts (``kakehashi robots frontend-node``, ``kakehashi avsl node``) is built by a factory and run
by :func:`spin_node`; it stops cleanly on SIGINT or SIGTERM (the node's ``destroy_node`` runs, the context is shut
down) and returns 0. A subscription callback wrapped by :func:`guarded` logs one line for a message that does not
follow the convention (``ValueError``) and keeps serving the next one.

Example (the factory gets the context to create the node in)::

    from rclpy.node import Node
    spin_node(lambda context: Node("echo", context=context))
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

log = logging.getLogger(__name__)

MessageT = TypeVar("MessageT")


def guarded(node: Node, callback: Callable[[MessageT], None]) -> Callable[[MessageT], None]:
    """``callback`` for a subscription, turning a ``ValueError`` (a malformed message) into one error log line.

    Only ``ValueError`` is caught: it is what the readers of :mod:`core.ros.messages` and a node's own checks (wrong
    channel count, wrong rate) raise. Anything else is a bug and propagates.
    """

    def safe(message: MessageT) -> None:
        try:
            callback(message)
        except ValueError as exc:
            node.get_logger().error(f"dropped a message: {exc}")

    return safe


def spin_node(
    make_node: Callable[[Context], Node], *, domain_id: int | None = None, duration: float | None = None
) -> int:
    """Create the node with ``make_node(context)`` and spin it until SIGINT/SIGTERM; return 0 after a clean stop.

    Args:
        make_node: Builds the node in the given context (raise :class:`core.errors.UserError` there for a bad
            parameter or a missing model file: the CLI prints it as one line and exits 2).
        domain_id: ROS domain; ``None`` takes ``ROS_DOMAIN_ID`` from the environment.
        duration: Stop cleanly after this many seconds (demos, examples); ``None``: until a signal.
    """
    stop = threading.Event()
    context = Context()
    rclpy.init(context=context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, request_stop)
    node: Node | None = None
    try:
        node = make_node(context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        log.info(
            "node %s running (domain %s); Ctrl-C stops it", node.get_fully_qualified_name(), context.get_domain_id()
        )
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set() and context.ok() and (deadline is None or time.monotonic() < deadline):
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        return 0
    finally:
        if node is not None:
            node.destroy_node()
        if context.ok():
            context.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def declare(node: Node, name: str, default: Any) -> Any:
    """Declare the ROS parameter ``name`` with ``default`` and return its value (as set on the command line or
    in a parameter file, ``--ros-args -p name:=value``)."""
    return node.declare_parameter(name, default).value


__all__ = ["declare", "guarded", "spin_node"]
