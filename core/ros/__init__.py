"""core.ros: the rclpy glue the robot apps share (see README.md).

- :mod:`core.ros.loopback` — environment that keeps ROS 2 traffic on this host (tests, benchmarks).
- :mod:`core.ros.messages` — the multichannel-audio, image and float-array message conventions.
- :mod:`core.ros.node` — run a node until Ctrl-C/SIGTERM; callbacks that survive malformed messages.
- :mod:`core.ros.harness` — publish to a running node and collect what comes back, on loopback.

Only :mod:`core.ros.loopback` imports without rclpy; the others need the ``robots`` (or ``avsl``) extra.
"""
