"""core.config: YAML configs with ``_base_`` inheritance, safe resolvers, overrides, ``instantiate`` and provenance.

Example:
    >>> from core.config import instantiate, load_config
    >>> from core.config.resolvers import package_dir
    >>> cfg = load_config(package_dir("core.config") / "examples" / "demo.yaml", ["data.n_samples=100"])
    >>> type(instantiate(cfg.models.ridge)).__name__
    'Ridge'
"""

from core.config.instantiate import check_targets, instantiate, iter_targets, locate
from core.config.loader import apply_overrides, load_config
from core.config.nodes import as_dict
from core.config.provenance import RepoState, check_git, collect_provenance, save_run_config
from core.config.resolvers import package_dir, register_resolvers, safe_eval
from core.config.schema import Problem, bounds, check_config, option, schema_problems

__all__ = [
    "Problem",
    "RepoState",
    "apply_overrides",
    "as_dict",
    "bounds",
    "check_config",
    "check_git",
    "check_targets",
    "collect_provenance",
    "instantiate",
    "iter_targets",
    "load_config",
    "locate",
    "option",
    "package_dir",
    "register_resolvers",
    "safe_eval",
    "save_run_config",
    "schema_problems",
]
