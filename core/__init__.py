"""kakehashi core: config, jobs, HPO, zero-wait HPO simulation, model bridge, data and training."""

__version__ = "0.1.0"
