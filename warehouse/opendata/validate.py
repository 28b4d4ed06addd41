"""Validation of an export before it is published: great-expectations suites per dataset.

Suites live in `warehouse/expectations/open_data/<dataset>.json`, in the format
great-expectations writes (as the sink's suites one folder up, which the sink's quality gate
loads; these are kept apart so it does not). Unlike the sink's gate, which quarantines rows
and loads the rest, an export is all or nothing: any failed expectation, row-level or
table-level, fails the whole export, and every failure is reported with what was observed.

Suites may use the parameters `period_start`, `period_end` (UTC timestamps, end exclusive:
use `strict_max`) and `first_day`, `last_day` (dates), set per export.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse.opendata.periods import Period
from warehouse.quality import expectation_name, forget_stored_results

if TYPE_CHECKING:
    import pandas as pd

SUITES_DIR = Path(__file__).parents[1] / "expectations" / "open_data"
_SAMPLES = 3


@dataclass(frozen=True)
class Failure:
    """One reason an export was refused: the dataset, the check and what was found."""

    dataset: str
    check: str  # expectation name, e.g. expect_column_values_to_be_between(lat)
    detail: str

    def __str__(self) -> str:
        return f"{self.dataset}: {self.check}: {self.detail}"


class ExportRejected(RuntimeError):
    """The export failed validation; nothing was published."""

    def __init__(self, period_id: str, failures: list[Failure]) -> None:
        self.failures = failures
        lines = "\n".join(f"  - {f}" for f in failures)
        super().__init__(
            f"export of {period_id} failed validation, nothing was published:\n{lines}"
        )


def period_parameters(period: Period) -> dict[str, Any]:
    import pandas as pd

    return {
        "period_start": pd.Timestamp(period.start),
        "period_end": pd.Timestamp(period.end),
        "first_day": period.start.date(),
        "last_day": (period.end - timedelta(microseconds=1)).date(),
    }


class ExportValidator:
    """great-expectations suites for the open datasets; build once, validate many frames."""

    def __init__(self, suites_dir: Path = SUITES_DIR) -> None:
        os.environ["GX_ANALYTICS_ENABLED"] = "false"  # never phone home
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.core.expectation_suite import ExpectationSuiteSchema
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._lock = threading.Lock()
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self._context.data_sources.add_pandas("citycam_open_data")
        self._validations: dict[str, Any] = {}
        for path in sorted(suites_dir.glob("*.json")):
            suite = gx.ExpectationSuite(**ExpectationSuiteSchema().loads(path.read_text()))
            if suite.name != path.stem:
                raise ValueError(f"{path}: suite name {suite.name!r} must be the file name")
            suite = self._context.suites.add(suite)
            batch = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe(
                "export"
            )
            self._validations[suite.name] = self._context.validation_definitions.add(
                gx.ValidationDefinition(name=suite.name, data=batch, suite=suite)
            )

    def datasets(self) -> set[str]:
        return set(self._validations)

    def validate(
        self, dataset: str, frame: pd.DataFrame, parameters: Mapping[str, Any]
    ) -> list[Failure]:
        """Every failed expectation of `dataset`'s suite on `frame`; [] when it passes."""
        validation = self._validations.get(dataset)
        if validation is None:  # unvalidated data is never published
            return [Failure(dataset, "expectation_suite", "no suite: add one before publishing")]
        with self._lock:
            result = validation.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=dict(parameters),
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": _SAMPLES},
            )
            forget_stored_results(self._context)
        failures = []
        for outcome in result.results:
            if outcome.success:
                continue
            config = outcome.expectation_config
            name = expectation_name(config.type, config.kwargs)
            failures.append(Failure(dataset, name, _describe(outcome, len(frame))))
        return failures


def _describe(outcome: Any, rows: int) -> str:
    """What a failed expectation found, for the person reading the refusal."""
    for info in _exception_infos(outcome.exception_info):
        if info.get("raised_exception"):
            return f"could not be evaluated: {info.get('exception_message')}"
    result = outcome.result or {}
    if "unexpected_count" in result:
        sample = result.get("partial_unexpected_list") or []
        return (
            f"{result['unexpected_count']} of {rows} rows unexpected, "
            f"e.g. {', '.join(repr(v) for v in sample[:_SAMPLES])}"
        )
    return f"observed {result.get('observed_value')!r}"


def _exception_infos(info: Any) -> list[dict[str, Any]]:
    """GE reports an exception at the top level or nested per metric."""
    if not isinstance(info, dict):
        return []
    if "raised_exception" in info:
        return [info]
    return [v for v in info.values() if isinstance(v, dict)]
