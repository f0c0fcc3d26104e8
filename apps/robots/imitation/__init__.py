"""apps.robots.imitation: few-shot imitation for a multi-robot box-pushing team with an LSTM mixture of experts.

See README.md. Modules: ``env`` (pymunk arena), ``operators`` (scripted operator), ``teleop`` (keyboard),
``demos`` (recording, rounds, HDF5 format), ``policy`` (LSTM mixture of experts, single-LSTM baseline),
``task`` and ``data`` (the core.train task and datamodule), ``team`` (controllers), ``evaluation``,
``render`` (PNG, GIF), ``pipeline`` (the verbs as functions), ``cli``.
"""
