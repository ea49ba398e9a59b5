"""How a step runs its asset checks: the checks of its tables, evaluated side by side after it
writes them, recorded in the quality history, reported to Dagster.

A check is declared beside the asset it checks (`bronze_checks.py`, `silver_checks.py`,
`gold_checks.py`, `kpi_checks.py`) as a `Check`: name, asset, description, blocking, and how it is
evaluated from a `CheckRun`. The asset steps carry the checks of their tables (`check_specs`)
and evaluate them after writing (`write_then_check`), so a run pays no step for its checks (on
Databricks every step is a remote job run). The steps are subsettable: selecting only checks
evaluates them against the existing tables without writing anything (the `patient_flow_checks`
job). The checks that guard gold are blocking: when one fails with ERROR severity its step fails
after reporting every result, and Dagster does not run the downstream assets.

A check reads what its step's run wrote (`Scope`): the rows of the run's batch, and the
encounters, patients, beds and hours they touch, so a batch's checks cost what the batch
touched, not the history. Checked without writing (the `patient_flow_checks` job, nightly) a
check reads its whole table: the audit. A few checks compare whole tables by nature (a KPI kept
as totals against the fact): they are `audit_only`, left out of the pipeline's runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patient_flow_dagster.assets.common import SPARK_RESOURCES, side_by_side
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.quality import measures
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster.transforms.keys import with_pseudonyms

CHECK_RESOURCES = SPARK_RESOURCES | {"quality"}

# Keys a small batch's checks filter by as literals; more (a large batch, a first load) are
# semi-joined.
TOUCHED_LIMIT = 1_000


@dataclass(frozen=True)
class Scope:
    """The rows a step's checks read. In a run that wrote the step's tables, `runs` holds the
    run's id and those of the runs it re-executes (a retry from failure gets a new id): the
    checks read the rows those runs stamped (`ingest_run_id`, `silver_run_id`) and what those
    rows touch. With nothing written (the checks-only job), `runs` is None: whole tables."""

    runs: tuple[str, ...] | None

    @classmethod
    def of(cls, context) -> Scope:
        if not context.selected_asset_keys:
            return cls(None)
        run = context.run
        return cls(
            tuple(dict.fromkeys(i for i in (run.run_id, run.parent_run_id, run.root_run_id) if i))
        )

    @property
    def audit(self) -> bool:
        return self.runs is None

    def stamped(self, rows: DataFrame, column: str) -> DataFrame:
        """`rows` stamped by the scope's runs in `column` (all of them in an audit)."""
        return rows if self.runs is None else rows.filter(F.col(column).isin(*self.runs))

    @staticmethod
    def keys(rows: DataFrame, column: str) -> list | DataFrame:
        """The distinct values of `column` in `rows`: collected when there are at most
        TOUCHED_LIMIT (one small Spark job, and filters on them need no join), else as a
        DataFrame to semi-join."""
        distinct = rows.select(column).distinct()
        values = [row[0] for row in distinct.limit(TOUCHED_LIMIT + 1).collect()]
        return distinct if len(values) > TOUCHED_LIMIT else values


def only(rows: DataFrame, column: str, keys: list | DataFrame | None) -> DataFrame:
    """`rows` whose `column` is one of `keys` (all of them when `keys` is None)."""
    if keys is None:
        return rows
    if isinstance(keys, list):
        return rows.filter(F.col(column).isin(*keys))
    return rows.join(keys.withColumnRenamed(keys.columns[0], column), column, "left_semi")


class _Once:
    """A value computed by the first caller; concurrent callers wait for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.computed = False
        self.value: Any = None

    def get(self, compute: Callable[[], Any]) -> Any:
        with self.lock:
            if not self.computed:
                self.value, self.computed = compute(), True
            return self.value


@dataclass
class CheckRun:
    """One step's evaluation of its checks: the step's context and resources, what they read
    (`scope`), and the values its checks share (`once`: a measure of several checks, the keys
    the batch touched), computed by the first check that asks while the others wait. It lives
    for one evaluation, so nothing outlives the step."""

    context: Any  # the step's AssetExecutionContext
    _shared: dict[str, _Once] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def spark(self):
        return self.context.resources.pyspark.spark_session

    @property
    def lake(self) -> DeltaLake:
        return self.context.resources.lake

    @property
    def policy(self):
        """The quality policy resource: sample size, error ratio, admission grace."""
        return self.context.resources.quality

    @property
    def key(self) -> bytes:
        """The pseudonym key: gold's checks compare its pseudonyms with silver's identifiers."""
        return self.context.resources.pseudonyms.secret

    @property
    def scope(self) -> Scope:
        return Scope.of(self.context)

    def read(self, table: t.Table) -> DataFrame:
        return self.lake.read(self.spark, table)

    def once(self, name: str, compute: Callable[[], Any]) -> Any:
        """`compute()` once for this evaluation, shared by every check that asks for `name`."""
        with self._lock:
            once = self._shared.setdefault(name, _Once())
        return once.get(compute)

    def touched(self, column: str) -> list | DataFrame | None:
        """The distinct `column` (encounter_id, patient_id, or the pseudonym of either, as gold
        keys them) of the silver rows of the scope's runs; None in an audit (whole tables)."""
        scope = self.scope
        if scope.audit:
            return None

        def keys() -> list | DataFrame:
            rows = scope.stamped(self.read(t.SILVER_EVENTS), "silver_run_id")
            if column not in rows.columns:  # a pseudonym
                rows = with_pseudonyms(rows, self.key)
            return scope.keys(rows, column)

        return self.once(f"touched {column}", keys)

    def scoped(self, table: t.Table, column: str) -> DataFrame:
        """`table`'s rows whose `column` the scope's silver rows touch (all rows in an audit)."""
        return only(self.read(table), column, self.touched(column))


@dataclass(frozen=True)
class Check:
    """One asset check: what it guards, whether it blocks downstream, how it is evaluated."""

    name: str
    asset: AssetKey
    description: str
    evaluate: Callable[[CheckRun], AssetCheckResult]
    blocking: bool = False
    audit_only: bool = False  # compares whole tables: the nightly audit, not every batch

    @property
    def key(self) -> AssetCheckKey:
        return AssetCheckKey(self.asset, self.name)

    @property
    def spec(self) -> AssetCheckSpec:
        return AssetCheckSpec(
            self.name, asset=self.asset, description=self.description, blocking=self.blocking
        )


# -- results ------------------------------------------------------------------------------------


def measure_metadata(measure: measures.Measure, what: str) -> dict:
    """Rows evaluated and failed, the ratio, and samples of the failing `what`."""
    return {
        "evaluated": MetadataValue.int(measure.evaluated),
        "failed": MetadataValue.int(measure.failed),
        "failed_ratio": MetadataValue.float(round(measure.ratio, 6)),
        f"sample_failing_{what}": MetadataValue.json(measure.samples),
    }


def integrity_result(
    measure: measures.Measure, what: str, severity: AssetCheckSeverity = AssetCheckSeverity.ERROR
) -> AssetCheckResult:
    """Passed when no row fails; the figures and samples of the failing `what`."""
    return AssetCheckResult(
        passed=measure.failed == 0, severity=severity, metadata=measure_metadata(measure, what)
    )


def count_result(checks: dict[str, tuple[int, int]]) -> AssetCheckResult:
    """Passed when every (actual, expected) pair matches; each pair goes into the metadata."""
    metadata = {}
    for name, (actual, expected) in checks.items():
        metadata[f"{name}_actual"] = MetadataValue.int(int(actual))
        metadata[f"{name}_expected"] = MetadataValue.int(int(expected))
    return AssetCheckResult(
        passed=all(actual == expected for actual, expected in checks.values()),
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


def one_of(name: str, measure: Callable[[CheckRun], dict], what: str) -> Callable:
    """A check whose result is one of the measures `measure(run)` takes in one pass, shared
    (`CheckRun.once`) with the other checks of its step."""

    def evaluate(run: CheckRun) -> AssetCheckResult:
        return integrity_result(run.once(measure.__qualname__, lambda: measure(run))[name], what)

    return evaluate


# -- running a step's checks ---------------------------------------------------------------------


def write_then_check(context, write: Callable[[], list], checks: list[Check]) -> Iterator:
    """A step whose tables are written together: `write()` when any of its assets is selected
    (reporting the selected ones), then the selected checks; with only checks selected (the
    checks-only job), nothing is written."""
    if context.selected_asset_keys:
        yield from (r for r in write() if r.asset_key in context.selected_asset_keys)
    yield from run_checks(context, checks)


def run_checks(context, checks: list[Check]) -> Iterator[AssetCheckResult]:
    """Evaluate the selected `checks` side by side (concurrent Spark jobs), after the step's
    tables are written; record them in the quality history; results in declaration order."""
    selected = [check for check in checks if check.key in context.selected_asset_check_keys]
    run = CheckRun(context)
    results = list(side_by_side(lambda check: check.evaluate(run), selected))
    if selected:
        record_results(run, selected, results)
    for check, result in zip(selected, results, strict=True):
        yield AssetCheckResult(
            asset_key=check.asset,
            check_name=check.name,
            passed=result.passed,
            severity=result.severity,
            metadata=result.metadata,
            description=result.description,
        )


def record_results(run: CheckRun, checks: list[Check], results: list) -> None:
    """Append one row per evaluation to the quality history (`quality.check_results`): the
    figures only, the Delta version of the table each check read, one commit per step."""
    spark, lake = run.spark, run.lake
    versions = {
        table: lake.version(spark, table) for table in {t.BY_KEY[check.asset] for check in checks}
    }
    now = datetime.now(timezone.utc)

    def figure(result, name):
        value = result.metadata.get(name)
        return None if value is None else value.value

    rows = [
        (
            run.context.run_id,
            check.name,
            check.asset.to_user_string(),
            versions[t.BY_KEY[check.asset]],
            figure(result, "evaluated"),
            figure(result, "failed"),
            figure(result, "failed_ratio"),
            result.passed,
            result.severity.value,
            now,
        )
        for check, result in zip(checks, results, strict=True)
    ]
    lake.append(spark.createDataFrame(rows, t.CHECK_RESULTS.spark_schema), t.CHECK_RESULTS)
