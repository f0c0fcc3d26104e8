"""core.hpo: an Optuna study runner whose trials are commands (jobs of any core.jobs backend) or Python callables;
asynchronous, resumable, safe with several runner processes on one storage (see README.md).

Example:
    >>> import tempfile
    >>> from core.hpo import optimize
    >>> result = optimize({"params": {"x": [-1, 1]}, "n_trials": 4, "plots": False},
    ...                   objective=lambda trial: trial.params["x"] ** 2, run_dir=tempfile.mkdtemp(), progress=False)
    >>> result.n_complete
    4
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr

if TYPE_CHECKING:
    from core.hpo.report import write_report
    from core.hpo.runner import OptimizeResult, StudyRunner, optimize

# imported on first use, so that `import core.hpo.samplers` (or the CLI) does not pay for the runner
_LAZY = {
    "optimize": "core.hpo.runner",
    "OptimizeResult": "core.hpo.runner",
    "StudyRunner": "core.hpo.runner",
    "write_report": "core.hpo.report",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["OptimizeResult", "StudyRunner", "optimize", "write_report"]
