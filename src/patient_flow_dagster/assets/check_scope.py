"""What a step's checks read: the rows and keys its run touched, or whole tables (`Scope`),
and values its checks share within a run (`shared_per_run`)."""

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patient_flow_dagster.model import tables as t


def spark_lake(context):
    return context.resources.pyspark.spark_session, context.resources.lake


@dataclass(frozen=True)
class Scope:
    """The rows a step's checks read. In a run that wrote the step's tables, `runs` holds the
    run's id and those of the runs it re-executes (a retry from failure gets a new id): the
    checks read the rows those runs stamped (`ingest_run_id`, `silver_run_id`) and what those
    rows touch. With nothing written (the checks-only job), `runs` is None: whole tables."""

    runs: tuple[str, ...] | None

    @classmethod
    def of(cls, context) -> "Scope":
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


# Keys a small batch's checks filter by as literals; more (a large batch, a first load) are
# semi-joined.
TOUCHED_LIMIT = 1_000


def only(rows: DataFrame, column: str, keys: list | DataFrame | None) -> DataFrame:
    """`rows` whose `column` is one of `keys` (all of them when `keys` is None)."""
    if keys is None:
        return rows
    if isinstance(keys, list):
        return rows.filter(F.col(column).isin(*keys))
    return rows.join(keys.withColumnRenamed(keys.columns[0], column), column, "left_semi")


class _Once:
    """A value computed by the first caller; concurrent callers wait for it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.computed = False
        self.value = None

    def get(self, compute: Callable):
        with self.lock:
            if not self.computed:
                self.value, self.computed = compute(), True
            return self.value


_per_run: dict[tuple[str, str], _Once] = {}
_per_run_lock = threading.Lock()


def shared_per_run(measure: Callable):
    """Decorator: `measure(context)` is computed once per run and shared by the checks of its
    step (they run side by side, and nothing writes their tables meanwhile): the first check
    computes it, the others wait for it. Only the current run's results are kept (small:
    counts and a few sample keys)."""

    @functools.wraps(measure)
    def shared(context):
        key = (context.run.run_id, measure.__qualname__)
        with _per_run_lock:
            for stale in [k for k in _per_run if k[0] != key[0]]:
                del _per_run[stale]
            once = _per_run.setdefault(key, _Once())
        return once.get(lambda: measure(context))

    return shared


def _touched(context, column: str) -> list | DataFrame | None:
    """The distinct `column` (encounter_id, patient_id) of the silver rows of the scope's runs;
    None in an audit (whole tables)."""
    scope = Scope.of(context)
    if scope.audit:
        return None
    spark, lake = spark_lake(context)
    return scope.keys(scope.stamped(lake.read(spark, t.SILVER_EVENTS), "silver_run_id"), column)


@shared_per_run
def _touched_encounters(context) -> list | DataFrame | None:
    return _touched(context, "encounter_id")


@shared_per_run
def _touched_patients(context) -> list | DataFrame | None:
    return _touched(context, "patient_id")


_TOUCHED = {"encounter_id": _touched_encounters, "patient_id": _touched_patients}


def scoped(context, table: t.Table, column: str) -> DataFrame:
    """`table`'s rows whose `column` the scope's silver rows touch (all rows in an audit)."""
    spark, lake = spark_lake(context)
    return only(lake.read(spark, table), column, _TOUCHED[column](context))
