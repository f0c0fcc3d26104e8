"""Samplers of our own (see README.md): the parallel, fault-tolerant :class:`NelderMeadSampler`."""

from core.hpo.samplers.nelder_mead import NelderMeadSampler
from core.hpo.samplers.planner import NelderMeadCoefficients, NelderMeadPlanner

__all__ = ["NelderMeadCoefficients", "NelderMeadPlanner", "NelderMeadSampler"]
