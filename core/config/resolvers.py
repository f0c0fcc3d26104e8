"""The resolvers every kakehashi config can use: ``eval``, ``pkg``, ``path`` and ``now``.

``${eval:EXPR}``
    Safe arithmetic: numbers, ``+ - * / // % **``, comparisons, ``and or not``, ``x if c else y``,
    and the functions ``min max abs round``. No names, attributes, imports or other calls, so
    ``${eval:'__import__("os").system("id")'}`` is refused. OmegaConf's grammar wants an expression with
    parentheses quoted: ``${eval:'max(${n}, 2) * 3'}`` (interpolations inside the quotes still resolve).
``${pkg:dotted.module}``
    The folder of an installed package (``${pkg:core.jobs.config}/slurm.yaml``). Trailing parts that are plain
    folders (without ``__init__.py``) are allowed.
``${path:rel}``
    ``rel`` made absolute against the folder of the config file that contains the interpolation
    (against the working directory for configs built in memory).
``${now:FORMAT}``
    The time the config was loaded, as ``strftime(FORMAT)`` (default ``%Y%m%d-%H%M%S``); one value per process.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import operator
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from core.errors import ConfigError

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "abs": abs, "round": round}
MAX_INT_BITS = 4096  # about 1,233 digits: every int eval makes or reads is at most this large
MAX_EXPRESSION_CHARS = 2000
MAX_EXPRESSION_NODES = 500
MAX_ROUND_DIGITS = 400  # round(x, -10**9) would build 10**(10**9)
_HINT = "use numbers, + - * / // % **, comparisons, and min/max/abs/round"


def safe_eval(expression: str) -> int | float | bool:
    """Evaluate an arithmetic expression without executing any code, in bounded time and memory.

    Every int (a literal, an operand, a result) is at most ``MAX_INT_BITS`` bits, ``round`` takes at most
    ``MAX_ROUND_DIGITS`` digits, and the expression is at most ``MAX_EXPRESSION_CHARS`` characters; anything
    larger is refused with one line instead of running for minutes.

    Example:
        >>> safe_eval("2 ** 10 // 3 + max(1, 2.5)")
        343.5
        >>> safe_eval("__import__('os')")
        Traceback (most recent call last):
        ...
        core.errors.ConfigError: eval allows only arithmetic, not a call to '__import__' ...
        >>> safe_eval("round(7, -10**9)")
        Traceback (most recent call last):
        ...
        core.errors.ConfigError: eval refuses round(..., -1000000000): at most 400 digits, in 'round(7, -10**9)' — ...
    """
    text = expression.strip()
    shown = _shown(text)
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ConfigError(
            f"eval expression too long ({len(text)} characters, at most {MAX_EXPRESSION_CHARS})", hint=_HINT
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"eval cannot parse {shown}: {exc.msg}", hint="write plain arithmetic") from None
    except (RecursionError, MemoryError, ValueError):
        raise ConfigError(f"eval cannot parse {shown}: nested too deeply", hint="write plain arithmetic") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_EXPRESSION_NODES:
        raise ConfigError(f"eval expression {shown} has more than {MAX_EXPRESSION_NODES} parts", hint=_HINT)
    try:
        result = _evaluate(tree.body, shown)
    except RecursionError:
        raise ConfigError(f"eval expression {shown} is nested too deeply", hint=_HINT) from None
    if not isinstance(result, int | float | bool):  # pragma: no cover - every allowed node yields a number
        raise ConfigError(f"eval of {shown} gave {type(result).__name__}, not a number")
    return result


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:77] + "...")


def _evaluate(node: ast.AST, source: str) -> Any:
    def refuse(what: str) -> ConfigError:
        return ConfigError(f"eval allows only arithmetic, not {what} in {source}", hint=_HINT)

    if isinstance(node, ast.Constant):
        if isinstance(node.value, int | float | bool):
            return _bounded(node.value, source)
        raise refuse(f"the constant {_shown(str(node.value))}")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, source), _evaluate(node.right, source)
        if isinstance(node.op, ast.Pow) and _power_too_large(left, right):
            raise _too_large(f"a power this large ({_number(left)}**{_number(right)})", source)
        if isinstance(node.op, ast.Mult) and _product_too_large(left, right):
            raise _too_large("a product this large", source)
        try:
            return _bounded(_BINARY[type(node.op)](left, right), source)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise ConfigError(f"eval of {source} failed: {exc}") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, source))
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _evaluate(node.left, source)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, source)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        values = [_evaluate(v, source) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.IfExp):
        branch = node.body if _evaluate(node.test, source) else node.orelse
        return _evaluate(branch, source)
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        if name not in _FUNCTIONS or node.keywords or not isinstance(node.func, ast.Name):
            raise refuse(f"a call to {name!r}")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise refuse("a starred argument")
        args = [_evaluate(arg, source) for arg in node.args]
        if name == "round" and len(args) == 2 and _round_too_large(args[1]):
            raise ConfigError(
                f"eval refuses round(..., {_number(args[1])}): at most {MAX_ROUND_DIGITS} digits, in {source}",
                hint="round to fewer digits",
            )
        try:
            return _bounded(_FUNCTIONS[name](*args), source)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise ConfigError(f"eval of {source} failed: {name}: {exc}") from None
    if isinstance(node, ast.Name):
        raise refuse(f"the name {node.id!r}")
    raise refuse(f"{type(node).__name__!r}")


def _too_large(what: str, source: str) -> ConfigError:
    return ConfigError(
        f"eval refuses {what} in {source}: ints are limited to {MAX_INT_BITS} bits",
        hint="use a float (2.0 ** 5000 is inf) or smaller numbers",
    )


def _bounded(value: Any, source: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise _too_large(f"an int of {value.bit_length()} bits", source)
    return value


def _number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<int of {value.bit_length()} bits>"
    return repr(value)


def _power_too_large(base: Any, exponent: Any) -> bool:
    if not isinstance(base, int | float) or not isinstance(exponent, int | float):
        return False
    if isinstance(base, float) or isinstance(exponent, float):
        return False  # float powers overflow to an OverflowError, they do not hang
    if abs(base) <= 1 or exponent <= 0:
        return False
    return float(exponent) * math.log2(abs(base)) > MAX_INT_BITS


def _product_too_large(left: Any, right: Any) -> bool:
    if not (isinstance(left, int) and isinstance(right, int)):
        return False
    return left.bit_length() + right.bit_length() > MAX_INT_BITS + 1


def _round_too_large(digits: Any) -> bool:
    return isinstance(digits, int) and abs(digits) > MAX_ROUND_DIGITS


def package_dir(dotted: str) -> Path:
    """Folder of ``dotted``: the deepest importable package, then the remaining parts as plain folders.

    Example:
        >>> package_dir("core.config").name
        'config'
    """
    parts = dotted.strip().split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        if spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations)))
        elif spec.origin:
            folder = Path(spec.origin).parent
        else:  # pragma: no cover - builtins have no folder
            continue
        folder = folder.joinpath(*parts[cut:])
        if folder.is_dir():
            return folder
        break
    raise ConfigError(
        f"no package folder for {dotted!r}",
        where="${pkg:" + dotted + "}",
        hint="name an installed package, e.g. ${pkg:core.jobs.config}",
    )


def _resolve_path(*args: Any) -> str:
    # load_config rewrites ${path:rel} to ${path:'<folder of the file>',rel}; in-memory configs pass only rel.
    if len(args) == 2:
        return str((Path(str(args[0])) / str(args[1])).resolve())
    if len(args) == 1:
        return str(Path(str(args[0])).resolve())
    raise ConfigError("path takes one argument", where="${path:...}", hint="write ${path:relative/file}")


_LOADED_AT = datetime.now()


def _now(fmt: str = "%Y%m%d-%H%M%S") -> str:
    return _LOADED_AT.strftime(fmt)


def register_resolvers() -> None:
    """Register ``eval``, ``pkg``, ``path`` and ``now`` with OmegaConf (idempotent)."""
    resolvers: dict[str, Callable[..., Any]] = {
        # OmegaConf splits unquoted resolver arguments at commas: join them back.
        "eval": lambda *args: safe_eval(",".join(str(a) for a in args)),
        "pkg": lambda dotted: str(package_dir(str(dotted))),
        "path": _resolve_path,
        "now": _now,
    }
    for name, function in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
