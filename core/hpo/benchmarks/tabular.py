"""A tabular benchmark: precomputed results (config → metric per fidelity + runtime) read from a table.

The table has one row per (configuration, fidelity): the configuration columns, a fidelity column (e.g. epoch),
one metric column per objective, and a runtime column. The search space is categorical over the values each
configuration column takes; the fidelity levels are the distinct fidelities. Formats: ``.csv`` (standard
library), ``.parquet`` (needs ``pyarrow``), ``.h5``/``.hdf5`` (needs ``h5py``: one 1-D dataset per column in the
file's root or in ``group``, or one compound dataset named ``group``).

``runtime_column`` holds the time to reach that fidelity from scratch (``cumulative_runtime=True``, default),
or the time of that fidelity level alone (``False``: summed over the levels up to it).

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> _ = path.write_text("lr,depth,epoch,loss,seconds\\n0.1,2,1,0.9,10\\n0.1,2,2,0.7,20\\n"
    ...                     "0.01,2,1,0.8,10\\n0.01,2,2,0.5,20\\n")
    >>> bench = TabularBenchmark(path, ["lr", "depth"], "epoch", ["loss"], "seconds")
    >>> bench.fidelities, bench.evaluate({"lr": 0.01, "depth": 2}, 2)
    ((1, 2), BenchmarkResult(values=(0.5,), runtime=20.0, constraints=None))
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, DependencyError, UserError
from core.hpo.benchmarks.base import BenchmarkResult

if TYPE_CHECKING:
    import optuna


class TabularBenchmark:
    """Lookup of precomputed results; see the module docstring for the table's layout."""

    def __init__(
        self,
        path: str | Path,
        config_columns: Sequence[str],
        fidelity_column: str,
        metric_columns: Sequence[str],
        runtime_column: str,
        directions: Sequence[str] | None = None,
        constraint_columns: Sequence[str] = (),
        cumulative_runtime: bool = True,
        group: str | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.config_columns = list(config_columns)
        self.metric_columns = list(metric_columns)
        self.constraint_columns = list(constraint_columns)
        self._directions = list(directions) if directions is not None else ["minimize"] * len(self.metric_columns)
        if len(self._directions) != len(self.metric_columns) or any(
            d not in ("minimize", "maximize") for d in self._directions
        ):
            raise ConfigError(
                f"directions {self._directions} do not fit metric_columns {self.metric_columns}",
                where=str(self.path),
                hint="one 'minimize' or 'maximize' per metric column",
            )
        columns = read_table(self.path, group)
        needed = [*self.config_columns, fidelity_column, *self.metric_columns, runtime_column, *self.constraint_columns]
        missing = [c for c in needed if c not in columns]
        if missing:
            raise ConfigError(
                f"the table has no column {missing[0]!r}",
                where=str(self.path),
                hint=f"its columns are: {', '.join(columns)}",
            )
        n_rows = len(columns[fidelity_column])
        rows: dict[tuple[Any, ...], dict[Any, tuple[tuple[float, ...], float, tuple[float, ...]]]] = {}
        for i in range(n_rows):
            key = tuple(columns[c][i] for c in self.config_columns)
            fidelity = columns[fidelity_column][i]
            if fidelity in rows.setdefault(key, {}):
                raise UserError(
                    f"two rows for configuration {key} at fidelity {fidelity}", where=str(self.path), hint="dedupe"
                )
            rows[key][fidelity] = (
                tuple(float(columns[c][i]) for c in self.metric_columns),
                float(columns[runtime_column][i]),
                tuple(float(columns[c][i]) for c in self.constraint_columns),
            )
        if not cumulative_runtime:
            for levels in rows.values():
                total = 0.0
                for fidelity in sorted(levels):
                    values, runtime, constraints = levels[fidelity]
                    total += runtime
                    levels[fidelity] = (values, total, constraints)
        self._rows = rows
        self._fidelities = tuple(sorted({f for levels in rows.values() for f in levels}))
        self._choices = {
            c: tuple(sorted({key[j] for key in rows}, key=_sort_key)) for j, c in enumerate(self.config_columns)
        }

    @property
    def directions(self) -> Sequence[str]:
        return tuple(self._directions)

    @property
    def search_space(self) -> dict[str, optuna.distributions.BaseDistribution]:
        from optuna.distributions import CategoricalDistribution

        return {c: CategoricalDistribution(list(choices)) for c, choices in self._choices.items()}

    @property
    def fidelities(self) -> Sequence[Any]:
        return self._fidelities

    def evaluate(self, params: Mapping[str, Any], fidelity: Any) -> BenchmarkResult:
        key = tuple(params[c] for c in self.config_columns)
        levels = self._rows.get(key)
        if levels is None:
            raise UserError(
                f"configuration {dict(zip(self.config_columns, key, strict=True))} is not in the table",
                where=str(self.path),
            )
        if fidelity not in levels:
            raise UserError(
                f"configuration {key} has no row at fidelity {fidelity}",
                where=str(self.path),
                hint=f"its fidelities are {sorted(levels, key=_sort_key)}",
            )
        values, runtime, constraints = levels[fidelity]
        return BenchmarkResult(values=values, runtime=runtime, constraints=constraints or None)


def read_table(path: Path, group: str | None = None) -> dict[str, list[Any]]:
    """Columns of a CSV, Parquet or HDF5 table, numbers parsed (ints stay ints), by column name."""
    if not path.is_file():
        raise UserError("table file not found", where=str(path), hint="check the path")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise UserError("the table is empty", where=str(path))
            data: list[list[Any]] = [[] for _ in header]
            for row in reader:
                for column, cell in zip(data, row, strict=True):
                    column.append(_parse(cell))
        return dict(zip(header, data, strict=True))
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise DependencyError(
                "reading Parquet tables needs pyarrow", where=str(path), hint="pip install pyarrow"
            ) from None
        return {name: list(values) for name, values in pq.read_table(path).to_pydict().items()}
    if suffix in (".h5", ".hdf5"):
        return _read_hdf5(path, group)
    raise UserError(f"unknown table format {suffix!r}", where=str(path), hint="use .csv, .parquet, .h5 or .hdf5")


def _read_hdf5(path: Path, group: str | None) -> dict[str, list[Any]]:
    try:
        import h5py
    except ImportError:
        raise DependencyError("reading HDF5 tables needs h5py", where=str(path), hint="pip install h5py") from None
    with h5py.File(path, "r", locking=False) as handle:
        node = handle[group] if group else handle
        if isinstance(node, h5py.Dataset):
            names = node.dtype.names or ()
            array = node[()]
            return {name: [_plain(v) for v in array[name]] for name in names}
        return {name: [_plain(v) for v in node[name][()]] for name in node if isinstance(node[name], h5py.Dataset)}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if hasattr(value, "item") else value


def _parse(cell: str) -> Any:
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


__all__ = ["TabularBenchmark", "read_table"]
