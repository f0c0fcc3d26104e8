"""Keep ROS 2 discovery on this host: ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a domain of one's own.

Two test runs on one machine must not hear each other, and nothing may leave loopback, so every harness and every
node a test starts gets the same environment from :func:`loopback_env`.

Example:
    >>> env = loopback_env(42)
    >>> env["ROS_AUTOMATIC_DISCOVERY_RANGE"], env["ROS_DOMAIN_ID"]
    ('LOCALHOST', '42')
    >>> 1 <= unique_domain_id() <= 100
    True
"""

from __future__ import annotations

import os
import random

# Fast DDS derives its UDP ports from the domain id; above ~101 they can meet Linux's ephemeral port range.
_DOMAIN_RANGE = (1, 100)


def unique_domain_id() -> int:
    """A domain id in 1..100 drawn from the process id and the clock, so parallel test runs rarely share one."""
    rng = random.Random(os.getpid() * 1_000_003 + int.from_bytes(os.urandom(4), "little"))
    return rng.randint(*_DOMAIN_RANGE)


def loopback_env(domain_id: int | None = None) -> dict[str, str]:
    """The variables that confine a ROS 2 process to loopback on ``domain_id`` (a fresh one when ``None``)."""
    domain = unique_domain_id() if domain_id is None else domain_id
    if not 0 <= domain <= 232:
        raise ValueError(f"ROS_DOMAIN_ID must be in 0..232, not {domain}")
    return {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(domain)}


__all__ = ["loopback_env", "unique_domain_id"]
