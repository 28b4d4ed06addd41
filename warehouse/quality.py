"""Data quality gate: every batch is validated with great-expectations before it is inserted.

One expectation suite per table lives in `warehouse/expectations/<table>.json`, in the format
great-expectations writes (`ExpectationSuiteSchema`, GE 1.x); the suite's name is the table
name. Adding a table to the gate is adding such a file. A suite's `meta.citycam` may hold

- `derived_columns`: `{name: expression}`, pandas `DataFrame.eval` expressions (python
  engine) computed over the batch before validation, for checks across columns that GE has no
  row-level expectation for (`abs(pcu - detections * pcu_factor)`); `now` is the validation
  time. Expectations then refer to the derived column by name. A derived value is NaN only
  where an input is null (or 0/0); those rows fail the inputs' own expectations instead.
- `parameters`: default values for the suite's `{"$PARAMETER": name}` arguments, which
  `QualityGate(parameters=...)` may override (the configured vehicle classes, say).

`QualityGate.split` validates a table's rows and returns the rows that pass, in order, and a
`QuarantinedRow` for each row that failed, naming every expectation it failed. Row-level
(map) expectations are attributed to rows through `unexpected_index_list` over a synthetic
row-number column; a failed table-level expectation (row count, column set, aggregates) is
logged and counted but quarantines no row. A row-level expectation that cannot be evaluated
(it raised) fails every row of the batch as `<expectation>: error`: unvalidated rows are
quarantined, not loaded. A batch whose columns lack one the suite needs is a programming error
(ValueError).

Metrics: `citycam_quality_rows_total{table, outcome}` with outcome `validated` (rows checked
against a suite), `quarantined` (rows that failed) and `loaded` (counted by the caller through
`record_loaded` after its insert succeeded). Rows of a table without a suite pass through
untouched and are not counted as validated; `record_loaded` counts any table it is given.

great-expectations takes ~3 s to import, so it is imported when a gate is created; create one
gate per process and reuse it (the context, data source, batch and validation definitions are
built once). A validation run costs ~20 ms per expectation whatever the batch size (GE builds
its metric graph each run). So each batch gets a pass/fail run first (`BOOLEAN_ONLY`, ~35%
cheaper), and the run that says which rows failed what only if something failed
(`citycam_quality_validation_runs_total` counts both). All of it is Python holding the GIL:
`QualityGate(isolated=True)`, as the sink uses it, runs great-expectations in a child process
of its own (which ends with its parent), so the caller keeps reading while a batch is
validated.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

SUITES_DIR = Path(__file__).parent / "expectations"
ROW_NUMBER_COLUMN = "__citycam_row__"  # synthetic index column for row-level attribution

ROWS = Counter(
    "citycam_quality_rows",
    "Rows through the quality gate by outcome: validated against a suite, quarantined, "
    "loaded (reported by the caller after its insert)",
    ["table", "outcome"],
)
EXPECTATION_FAILURES = Counter(
    "citycam_quality_expectation_failures",
    "Rows failing a row-level expectation (a row may fail several)",
    ["table", "expectation"],
)
TABLE_FAILURES = Counter(
    "citycam_quality_table_expectation_failures",
    "Batches failing a table-level expectation (no row is quarantined for it)",
    ["table", "expectation"],
)
VALIDATION_SECONDS = Histogram(
    "citycam_quality_validation_seconds",
    "Time to validate one batch of a table",
    ["table"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

VALIDATION_RUNS = Counter(
    "citycam_quality_validation_runs",
    "great-expectations runs by result format: BOOLEAN_ONLY for every batch, COMPLETE (which "
    "rows failed what) only for a batch that failed something",
    ["table", "result_format"],
)

QUARANTINE_COLUMNS = [
    "table_name",
    "failed_expectations",
    "row_json",
    "source_topic",
    "source_partition",
    "source_offset",
    "quarantined_at",
]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list", "column_set")


@dataclass(frozen=True)
class QuarantinedRow:
    table: str
    row: dict[str, Any]  # JSON-able: datetimes as ISO strings
    failed_expectations: tuple[str, ...]  # e.g. "expect_column_values_to_be_between(frames)"
    # position of the row in the rows given to `split`: map it back to its source message
    index: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class Verdict:
    """A suite's outcome over one batch, before accounting."""

    failed_rows: dict[int, tuple[str, ...]]  # row index -> expectations failed, suite order
    failed_table_expectations: list[tuple[str, Any]]  # (expectation, observed value)
    result_formats: tuple[str, ...] = ()  # of the great-expectations runs it took


def quarantine_row(
    q: QuarantinedRow,
    topic: str,
    partition: int,
    offset: int,
    quarantined_at: datetime | None = None,
) -> list[Any]:
    """A row of the `quarantine` table (columns `QUARANTINE_COLUMNS`) for a failed row."""
    return [
        q.table,
        list(q.failed_expectations),
        json.dumps(q.row, ensure_ascii=False, separators=(",", ":")),
        topic,
        partition,
        offset,
        quarantined_at or datetime.now(UTC),
    ]


def expectation_name(type_: str, kwargs: Mapping[str, Any]) -> str:
    """`type(columns)`, the name a quarantined row gives for a failed expectation."""
    columns = [str(kwargs[k]) for k in _COLUMN_KWARGS if kwargs.get(k) is not None]
    for key in _COLUMN_LIST_KWARGS:
        if isinstance(kwargs.get(key), list | tuple):
            columns.extend(str(c) for c in kwargs[key])
    return f"{type_}({','.join(columns)})"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | dt_time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _times_in_utc(frame: Any) -> Any:
    """Columns of aware datetimes as UTC times, however each value's zone is written.

    pandas makes a time column only of values with one and the same tzinfo; anything else
    (UTC from two libraries, a producer's +07:00) stays a column of objects, on which
    every time expression fails, and a whole batch was quarantined for it."""
    import pandas as pd

    for column in frame.select_dtypes(include="object").columns:
        values = frame[column].dropna()
        if len(values) and isinstance(values.iloc[0], datetime):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _raised(exception_info: Any) -> bool:
    """Whether a validation result records an exception (GE nests it per metric at times)."""
    if not isinstance(exception_info, dict):
        return False
    if "raised_exception" in exception_info:
        return bool(exception_info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in exception_info.values())


@dataclass
class _Suite:
    table: str
    validation: Any  # great_expectations.ValidationDefinition
    names: list[str]  # expectation names in suite order
    row_level: dict[str, bool]
    derived: dict[str, str]
    parameters: dict[str, Any]
    required_columns: set[str]


class QualityGate:
    """Validates batches of rows against the suites in `suites_dir`; build once per process."""

    def __init__(
        self,
        suites_dir: Path = SUITES_DIR,
        parameters: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        isolated: bool = False,
    ) -> None:
        """`parameters` override the suites' `$PARAMETER` defaults (meta.citycam.parameters)
        by name, in every suite; `clock` gives `now` for derived columns.

        `isolated`: run great-expectations in a child process of its own. Validation is pure
        Python and holds the GIL for its whole run; in its own process it runs beside the
        caller's other work (the sink reads the next batch meanwhile) and on another core.
        The child loads great-expectations and the suites in the background (~7 s), so the
        caller can start up meanwhile; `tables()` waits for it and raises a suite's error.
        Call `close` when done."""
        self._clock = clock
        self._lock = threading.Lock()
        self._suites: dict[str, _Suite] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._remote_tables: Future[set[str]] | None = None  # the child's, once it has loaded
        if isolated:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_child,
                initargs=(os.getpid(),),
            )
            self._remote_tables = self._pool.submit(
                _child_load, suites_dir, dict(parameters) if parameters else None
            )
            return
        self._load_suites(suites_dir, parameters)

    def _load_suites(self, suites_dir: Path, parameters: Mapping[str, Any] | None) -> None:
        os.environ["GX_ANALYTICS_ENABLED"] = "false"  # never phone home
        # GE logs hundreds of INFO lines at start-up; keep a stage's log readable
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.core.expectation_suite import ExpectationSuiteSchema
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.expectation import (
            ColumnMapExpectation,
            ColumnPairMapExpectation,
            MulticolumnMapExpectation,
        )

        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self._context.data_sources.add_pandas("citycam_quality")
        row_level_types = (
            ColumnMapExpectation,
            ColumnPairMapExpectation,
            MulticolumnMapExpectation,
        )
        for path in sorted(suites_dir.glob("*.json")):
            loaded = ExpectationSuiteSchema().loads(path.read_text())
            suite = gx.ExpectationSuite(**loaded)
            if suite.name != path.stem:
                raise ValueError(f"{path}: suite name {suite.name!r} must be the file name")
            citycam = (suite.meta or {}).get("citycam", {})
            derived: dict[str, str] = dict(citycam.get("derived_columns", {}))
            for name in derived:
                if not _IDENTIFIER.match(name) or name == ROW_NUMBER_COLUMN:
                    raise ValueError(f"{path}: bad derived column name {name!r}")
            suite_parameters = dict(citycam.get("parameters", {}))
            names: list[str] = []
            row_level: dict[str, bool] = {}
            required: set[str] = set()
            wanted: set[str] = set()
            for expectation in suite.expectations:
                config = expectation.configuration
                name = expectation_name(config.type, config.kwargs)
                if name in row_level:
                    raise ValueError(f"{path}: two expectations are named {name}; merge them")
                names.append(name)
                row_level[name] = isinstance(expectation, row_level_types)
                for key in _COLUMN_KWARGS:
                    if isinstance(config.kwargs.get(key), str):
                        required.add(config.kwargs[key])
                for key in _COLUMN_LIST_KWARGS:
                    if isinstance(config.kwargs.get(key), list) and row_level[name]:
                        required.update(config.kwargs[key])
                wanted.update(
                    v["$PARAMETER"]
                    for v in config.kwargs.values()
                    if isinstance(v, dict) and "$PARAMETER" in v
                )
            if parameters:
                suite_parameters.update({k: v for k, v in parameters.items() if k in wanted})
            missing = wanted - set(suite_parameters)
            if missing:
                raise ValueError(f"{path}: no value for suite parameters {sorted(missing)}")
            suite = self._context.suites.add(suite)
            asset = source.add_dataframe_asset(suite.name)
            batch = asset.add_batch_definition_whole_dataframe("batch")
            validation = self._context.validation_definitions.add(
                gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
            )
            self._suites[suite.name] = _Suite(
                table=suite.name,
                validation=validation,
                names=names,
                row_level=row_level,
                derived=derived,
                parameters=suite_parameters,
                required_columns=required - set(derived),
            )

    def tables(self) -> set[str]:
        """Tables that have a suite (and so are validated). An isolated gate's first call
        waits until its process has loaded the suites, and raises their error if any."""
        if self._remote_tables is not None:
            return set(self._remote_tables.result())
        return set(self._suites)

    def close(self) -> None:
        """Stop the validation process, if any (idempotent)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def split(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]
    ) -> tuple[list[Any], list[QuarantinedRow]]:
        """The rows that pass the table's suite (same objects, same order) and the rest, each
        with every expectation it failed and its `index` in `rows` (to find its source
        message). A table without a suite passes through whole. Validate a batch once, before
        any insert retry loop: `now` (derived columns) is read per call."""
        if table not in self.tables() or not rows:
            return list(rows), []
        started = time.perf_counter()
        if self._pool is not None:
            verdict = self._pool.submit(
                _child_verdict, table, rows, columns, self._clock()
            ).result()
        else:
            verdict = self.verdict(table, rows, columns, self._clock())
        VALIDATION_SECONDS.labels(table).observe(time.perf_counter() - started)
        for result_format in verdict.result_formats:
            VALIDATION_RUNS.labels(table, result_format).inc()
        for name, observed in verdict.failed_table_expectations:
            TABLE_FAILURES.labels(table, name).inc()
            log.warning(
                "%s: table-level expectation %s failed (observed %r); no row quarantined",
                table,
                name,
                observed,
            )
        valid: list[Any] = []
        quarantined: list[QuarantinedRow] = []
        for i, row in enumerate(rows):
            names = verdict.failed_rows.get(i)
            if not names:
                valid.append(row)
                continue
            record = {c: _jsonable(v) for c, v in zip(columns, row, strict=True)}
            quarantined.append(QuarantinedRow(table, record, names, index=i))
            for name in names:
                EXPECTATION_FAILURES.labels(table, name).inc()
        ROWS.labels(table, "validated").inc(len(rows))
        if quarantined:
            ROWS.labels(table, "quarantined").inc(len(quarantined))
            log.warning("%s: %d of %d rows quarantined", table, len(quarantined), len(rows))
        return valid, quarantined

    def record_loaded(self, table: str, n: int) -> None:
        """Count rows of `table` the caller inserted (after the insert succeeded)."""
        if n:
            ROWS.labels(table, "loaded").inc(n)

    def verdict(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], now: datetime
    ) -> Verdict:
        """Run the table's suite over `rows` here (no metrics): what `split` acts on."""
        suite = self._suites[table]
        missing = suite.required_columns - set(columns)
        if missing:
            raise ValueError(f"{table}: the suite needs columns {sorted(missing)}")
        clash = (set(suite.derived) | {ROW_NUMBER_COLUMN}) & set(columns)
        if clash:
            raise ValueError(f"{table}: columns {sorted(clash)} clash with derived columns")
        with self._lock:
            failures, table_failures, runs = self._failures(suite, rows, columns, now)
        order = {name: i for i, name in enumerate(suite.names)}
        return Verdict(
            failed_rows={
                i: tuple(sorted(set(names), key=lambda n: (order.get(n.split(":")[0], -1), n)))
                for i, names in failures.items()
            },
            failed_table_expectations=table_failures,
            result_formats=runs,
        )

    def _failures(
        self, suite: _Suite, rows: Sequence[Sequence[Any]], columns: Sequence[str], now: datetime
    ) -> tuple[dict[int, list[str]], list[tuple[str, Any]], tuple[str, ...]]:
        import pandas as pd
        from pandas.errors import UndefinedVariableError

        everyone = range(len(rows))
        failures: dict[int, list[str]] = {}
        table_failures: list[tuple[str, Any]] = []

        def fail_all(name: str) -> None:
            for i in everyone:
                failures.setdefault(i, []).append(name)

        frame = _times_in_utc(pd.DataFrame([list(r) for r in rows], columns=list(columns)))
        now_column = pd.Series(pd.Timestamp(now), index=frame.index)
        for name, expression in suite.derived.items():
            try:
                resolvers = [{"now": now_column}]
                frame[name] = frame.eval(expression, engine="python", resolvers=resolvers)
            except UndefinedVariableError as exc:
                raise ValueError(f"{suite.table}: derived column {name}: {exc}") from exc
            except Exception:
                log.exception("%s: derived column %s could not be computed", suite.table, name)
                frame[name] = float("nan")
                fail_all(f"derived_column({name}): error")
        frame[ROW_NUMBER_COLUMN] = everyone

        if self._run(suite, frame, {"result_format": "BOOLEAN_ONLY"}).success:
            return failures, table_failures, ("BOOLEAN_ONLY",)
        # something failed: run again for the rows and values (a clean batch, the common
        # case, costs ~35% less without them)
        result = self._run(
            suite,
            frame,
            {
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [ROW_NUMBER_COLUMN],
                "return_unexpected_index_query": False,
            },
        )
        for outcome in result.results:
            if outcome.success:
                continue
            config = outcome.expectation_config
            name = expectation_name(config.type, config.kwargs)
            if not suite.row_level.get(name, False):
                table_failures.append((name, _jsonable(outcome.result.get("observed_value"))))
                continue
            unexpected = outcome.result.get("unexpected_index_list")
            if _raised(outcome.exception_info) or unexpected is None:
                log.error(
                    "%s: expectation %s could not be evaluated; the batch is quarantined: %s",
                    suite.table,
                    name,
                    outcome.exception_info,
                )
                fail_all(f"{name}: error")
                continue
            for entry in unexpected:
                index = entry[ROW_NUMBER_COLUMN] if isinstance(entry, dict) else entry
                failures.setdefault(int(index), []).append(name)
        return failures, table_failures, ("BOOLEAN_ONLY", "COMPLETE")

    def _run(self, suite: _Suite, frame: Any, result_format: dict[str, Any]) -> Any:
        result = suite.validation.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=suite.parameters,
            result_format=result_format,
        )
        forget_stored_results(self._context)
        return result


def forget_stored_results(context: Any) -> None:
    """`ValidationDefinition.run` also keeps every result in the context's results store,
    which for an ephemeral context is memory that is never freed: ~13 KB per pass/fail run of
    the gate, over 1 GB a day for a sink storing a batch every 2 s. Call it after each run by
    a long-lived process that hands results on and needs none of them later."""
    store = context.validation_results_store
    for key in store.list_keys():
        store.store_backend.remove_key(store.key_to_tuple(key))


# -- validation in a process of its own --------------------------------------------------------

_child_gate: QualityGate | None = None


def _start_child(parent: int) -> None:
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this process once its parent is gone (killed, say): it would wait for work forever
    otherwise, as it holds both ends of its task queue's pipe."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _child_load(suites_dir: Path, parameters: dict[str, Any] | None) -> set[str]:
    """Build this process's gate (a task, not the initializer: its errors reach the caller)."""
    global _child_gate
    _child_gate = QualityGate(suites_dir, parameters)
    return _child_gate.tables()


def _child_verdict(
    table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], now: datetime
) -> Verdict:
    assert _child_gate is not None
    return _child_gate.verdict(table, rows, columns, now)
