"""core.hpo.benchmarks: analytic multi-fidelity test functions with runtime models, and tabular benchmarks.

Example:
    >>> from core.hpo.benchmarks import BENCHMARKS
    >>> bench = BENCHMARKS["mf_branin"]()
    >>> sorted(bench.search_space), bench.fidelities[-1]
    (['x0', 'x1'], 100)
"""

from core.hpo.benchmarks.analytic import (
    BENCHMARKS,
    AnalyticBenchmark,
    Borehole,
    Currin,
    Forrester,
    MFBranin,
    MFHartmann,
    Park91a,
    Park91b,
)
from core.hpo.benchmarks.base import Benchmark, BenchmarkResult, suggest
from core.hpo.benchmarks.tabular import TabularBenchmark, read_table

__all__ = [
    "BENCHMARKS",
    "AnalyticBenchmark",
    "Benchmark",
    "BenchmarkResult",
    "Borehole",
    "Currin",
    "Forrester",
    "MFBranin",
    "MFHartmann",
    "Park91a",
    "Park91b",
    "TabularBenchmark",
    "read_table",
    "suggest",
]
