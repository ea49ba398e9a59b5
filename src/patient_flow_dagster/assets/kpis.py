"""The KPI step: the gold KPIs from the fact, and the hourly census with current occupancy
(assets/census.py), side by side.

The KPIs from the fact: the two admission cubes (admissions and mean length of stay by
gender x department and by department x hospital), length-of-stay statistics and daily flow.

The cubes and daily flow are sums over fact rows, so they are kept as totals: a run adds the
totals of the fact's changes since the table's last update (Delta's change data feed, +1 for a
new row image, -1 for an old one) to the stored ones, and its cost follows what changed, not
the fact's size. Exact percentiles are not sums: length-of-stay statistics are recomputed, when
the fact changed. Each table's commit notes the fact version it reflects, in the same commit as
its rows, so a crashed run is never half-applied and a run never adds the same change twice.
The group attributes (gender, department, hospital) are fixed by the surrogate keys, which hash
them, so only fact changes move a group's totals.

All six are one multi-asset, so one step: in production every step is a Databricks job run, and
one step instead of six saves five per pipeline run; locally the tables' updates overlap (each
one's Delta log replay and commit beside another's tasks). Each asset is still its own node in
the lineage, with its own checks and metadata, and can be materialized alone (`can_subset`).
"""

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame

from patient_flow_dagster.assets.census import CENSUS_KPIS, CensusKpi, update_census_kpis
from patient_flow_dagster.assets.checking import CHECK_RESOURCES, run_checks
from patient_flow_dagster.assets.common import (
    LAKE_POOL,
    RefreshConfig,
    SmallTable,
    apply_full_refresh,
    markdown_table,
    read_small_table,
    side_by_side,
    table_metadata,
    write_collected,
    write_small_table,
)
from patient_flow_dagster.assets.gold import gold_spec
from patient_flow_dagster.assets.kpi_checks import KPI_CHECKS
from patient_flow_dagster.model.tables import (
    CUBE_DEPARTMENT_HOSPITAL,
    CUBE_GENDER_DEPARTMENT,
    DAILY_FLOW,
    DIM_DEPARTMENT,
    DIM_HOSPITAL,
    DIM_PATIENT,
    FACT_ADMISSIONS,
    FACT_MOVEMENTS,
    LENGTH_OF_STAY_STATS,
    Table,
)
from patient_flow_dagster.resources.lake import DeltaLake, last_note
from patient_flow_dagster.transforms import census, cubes, flow
from patient_flow_dagster.transforms.changes import add_totals, signed_changes


class FactRows:
    """Fact rows a KPI is computed from (the whole fact, or its signed changes; cancelled
    encounters left out) with the dimensions and the movements (lazy DataFrames: nothing is
    read until a KPI's query runs)."""

    def __init__(self, spark, lake: DeltaLake, fact: DataFrame):
        self.fact = census.counted(fact)
        self.dim_department = lake.read(spark, DIM_DEPARTMENT)
        self.dim_hospital = lake.read(spark, DIM_HOSPITAL)
        self.dim_patient = lake.read(spark, DIM_PATIENT)
        self.admitted = census.admitted_encounters(
            self.fact, self.dim_department, self.dim_hospital
        )
        self._movements = lambda: lake.read(spark, FACT_MOVEMENTS)

    @property
    def placements(self) -> DataFrame:
        """The movement segments in their departments (the table as it is now: the step
        reads it after the fact step that writes both)."""
        return census.placements(self._movements(), self.dim_department, self.dim_hospital)


@dataclass(frozen=True)
class Totals:
    """How a KPI table is a sum over fact rows: its group keys, its additive columns, their
    values for some fact rows (`of`), and the table from the totals (`finish`)."""

    keys: list[str]
    columns: list[str]
    of: Callable[[FactRows], DataFrame]
    finish: Callable[[DataFrame], DataFrame]


@dataclass(frozen=True)
class FactKpi:
    """One KPI table: how it is computed and written, and what its metadata shows."""

    spec: AssetSpec
    table: Table
    compute: Callable[[FactRows], DataFrame]  # the table from the whole fact
    order: list[str]  # the preview's order, and the columns it leads with
    columns: list[str]  # the preview's other columns
    totals: Totals | None = None  # kept by adding the fact's changes (None: recomputed)
    preview_name: str = "preview"
    preview_rows: int = 60
    newest_first: bool = False  # a growing table: preview its newest rows
    total_admissions: bool = False  # also report the sum of num_admissions


def _additive(keys: list[str], columns: list[str], of, finish) -> dict:
    """`compute` and `totals` of a KPI that is a sum over fact rows."""
    return {"compute": lambda rows: finish(of(rows)), "totals": Totals(keys, columns, of, finish)}


_CUBE_COLUMNS = ["num_admissions", "avg_length_of_stay_hours", "completed_stays"]

FACT_KPIS = {
    kpi.spec.key: kpi
    for kpi in [
        FactKpi(
            gold_spec(
                CUBE_GENDER_DEPARTMENT.key,
                [FACT_ADMISSIONS.key, DIM_PATIENT.key, DIM_DEPARTMENT.key],
                "Admissions and average length of stay (hours) per gender and department.",
            ),
            CUBE_GENDER_DEPARTMENT,
            order=["gender", "department"],
            columns=_CUBE_COLUMNS,
            total_admissions=True,
            **_additive(
                ["gender", "department"],
                cubes.CUBE_TOTALS,
                lambda r: cubes.gender_department_totals(r.fact, r.dim_patient, r.dim_department),
                cubes.admission_cube,
            ),
        ),
        FactKpi(
            gold_spec(
                CUBE_DEPARTMENT_HOSPITAL.key,
                [FACT_ADMISSIONS.key, DIM_DEPARTMENT.key],
                "Admissions and average length of stay (hours) per department and hospital.",
            ),
            CUBE_DEPARTMENT_HOSPITAL,
            order=["department", "hospital_id"],
            columns=_CUBE_COLUMNS,
            total_admissions=True,
            **_additive(
                ["department", "hospital_id"],
                cubes.CUBE_TOTALS,
                lambda r: cubes.department_hospital_totals(r.fact, r.dim_department),
                cubes.admission_cube,
            ),
        ),
        FactKpi(
            gold_spec(
                LENGTH_OF_STAY_STATS.key,
                [FACT_ADMISSIONS.key, FACT_MOVEMENTS.key, DIM_DEPARTMENT.key],
                "Completed stays in each department x hospital (movement segments: a "
                "transferred patient counts in each department for the time spent there): "
                "count, mean, median, p90 and max hours, and the short / medium / long mix. "
                "Recomputed when the fact changes (every change of the movements changes the "
                "fact's event_count).",
                "gold_kpis",
            ),
            LENGTH_OF_STAY_STATS,
            lambda r: flow.length_of_stay_stats(r.placements),
            ["department", "hospital_id"],
            [
                "completed_stays",
                "mean_hours",
                "median_hours",
                "p90_hours",
                "max_hours",
                "short_stays",
                "medium_stays",
                "long_stays",
            ],
            preview_name="figures",
        ),
        FactKpi(
            gold_spec(
                DAILY_FLOW.key,
                [FACT_ADMISSIONS.key, DIM_DEPARTMENT.key, DIM_HOSPITAL.key],
                "Admissions, discharges and net change in patients per hospital and local day.",
                "gold_kpis",
            ),
            DAILY_FLOW,
            order=["day", "hospital_id"],
            columns=["admissions", "discharges", "net_change"],
            preview_name="latest_days",
            preview_rows=14,
            newest_first=True,
            **_additive(
                ["hospital_id", "day"],
                flow.DAILY_FLOW_TOTALS,
                lambda r: flow.daily_flow_totals(r.admitted),
                flow.daily_flow_from_totals,
            ),
        ),
    ]
}


@dataclass(frozen=True)
class FactVersion:
    """The fact as a KPI table reflects it: Delta's table id (a recreated fact has a new one)
    and version."""

    table_id: str | None
    version: int | None

    @property
    def note(self) -> dict:
        return {"fact_table_id": self.table_id, "fact_version": self.version}

    @classmethod
    def of(cls, spark, lake: DeltaLake) -> "FactVersion":
        return cls(lake.table_id(spark, FACT_ADMISSIONS), lake.version(spark, FACT_ADMISSIONS))


@dataclass(frozen=True)
class KpiUpdate:
    written: SmallTable
    how: str  # "recomputed", "changes added", or "unchanged"
    reason: str


class KpiStep:
    """What the KPI tables of one step share: the fact's version, its rows and its changes
    since a version, each defined once (the tables are updated side by side, on threads)."""

    def __init__(self, spark, lake: DeltaLake):
        self.spark, self.lake = spark, lake
        self.fact = FactVersion.of(spark, lake)
        self._rows: dict[Hashable, FactRows] = {}
        self._lock = threading.Lock()

    def _once(self, key: Hashable, fact: Callable[[], DataFrame]) -> FactRows:
        with self._lock:
            if key not in self._rows:
                self._rows[key] = FactRows(self.spark, self.lake, fact())
            return self._rows[key]

    @property
    def whole_fact(self) -> FactRows:
        return self._once(
            "whole", lambda: self.lake.read(self.spark, FACT_ADMISSIONS, version=self.fact.version)
        )

    def changes_since(self, version: int) -> FactRows:
        """The fact's signed changes after `version`, through the step's version (the fact
        exists: it has changes)."""
        through = self.fact.version
        assert through is not None
        return self._once(
            version,
            lambda: signed_changes(
                self.lake.read_changes(self.spark, FACT_ADMISSIONS, version + 1, through)
            ),
        )

    def update(self, kpi: FactKpi) -> KpiUpdate:
        """Bring the table up to the fact's version: nothing when it is there already, add
        the changes since its version when it is kept as totals, recompute otherwise."""
        spark, lake = self.spark, self.lake
        noted = last_note(lake, spark, kpi.table)
        same_fact = (
            self.fact.table_id is not None and noted.get("fact_table_id") == self.fact.table_id
        )
        noted_version = noted.get("fact_version")
        if same_fact and noted_version == self.fact.version:
            return KpiUpdate(
                read_small_table(spark, lake, kpi.table, kpi.order, kpi.newest_first),
                "unchanged",
                f"the fact is still at version {noted_version}",
            )
        reason = "no earlier update of this fact"
        if same_fact and kpi.totals and isinstance(noted_version, int):
            totals = kpi.totals
            result = totals.finish(
                add_totals(
                    lake.read(spark, kpi.table),
                    totals.of(self.changes_since(noted_version)),
                    totals.keys,
                    totals.columns,
                )
            )
            try:
                collected = result.collect()
            except AnalysisException as error:  # e.g. the change feed was off for a version
                reason = (
                    f"the fact's changes since version {noted_version} are not readable: "
                    f"{str(error).splitlines()[0]}"
                )
            else:
                return KpiUpdate(
                    write_collected(
                        spark,
                        lake,
                        collected,
                        result.schema,
                        kpi.table,
                        kpi.order,
                        kpi.newest_first,
                        self.fact.note,
                    ),
                    "changes added",
                    f"fact versions {noted_version + 1}..{self.fact.version} added",
                )
        elif same_fact:
            reason = f"the fact changed (version {noted_version} -> {self.fact.version})"
        return KpiUpdate(
            write_small_table(
                spark,
                lake,
                kpi.compute(self.whole_fact),
                kpi.table,
                kpi.order,
                kpi.newest_first,
                self.fact.note,
            ),
            "recomputed",
            reason,
        )


def materialize_kpi(lake: DeltaLake, kpi: FactKpi, update: KpiUpdate) -> MaterializeResult:
    """Describe the table from its rows, and how this run brought it up to date."""
    written = update.written
    columns = [*kpi.order, *kpi.columns]
    metadata = {
        **table_metadata(written.frame, lake, kpi.table, columns, all_rows=written.rows),
        kpi.preview_name: MetadataValue.md(
            markdown_table(written.rows[: kpi.preview_rows], columns)
        ),
        "update": MetadataValue.text(update.how),
        "update_reason": MetadataValue.text(update.reason),
    }
    if kpi.total_admissions:
        metadata["total_admissions"] = MetadataValue.int(
            sum(r["num_admissions"] for r in written.rows)
        )
    return MaterializeResult(asset_key=kpi.spec.key, metadata=metadata)


class KpiConfig(RefreshConfig):
    """Run config of the KPI step. `as_of` (ISO-8601 UTC) pins the census clock, for
    reproducible backfills and tests; by default it is the time of the run."""

    as_of: str | None = None

    def instant(self) -> datetime:
        if not self.as_of:
            return datetime.now(timezone.utc)
        parsed = datetime.fromisoformat(self.as_of)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


KPIS: list[FactKpi | CensusKpi] = [*FACT_KPIS.values(), *CENSUS_KPIS.values()]


@multi_asset(
    specs=[kpi.spec for kpi in KPIS],
    name="gold_kpis",
    check_specs=[check.spec for check in KPI_CHECKS],
    can_subset=True,
    required_resource_keys=CHECK_RESOURCES,
    pool=LAKE_POOL,
)
def gold_kpis(context: AssetExecutionContext, config: KpiConfig):
    """Bring the selected KPI tables up to date side by side: each KPI from the fact on a
    thread, the census and current occupancy on one more (`full_refresh`: drop and rebuild
    them)."""
    selected = context.selected_asset_keys
    fact_kpis = [kpi for key, kpi in FACT_KPIS.items() if key in selected]
    census_kpis = [kpi for key, kpi in CENSUS_KPIS.items() if key in selected]
    apply_full_refresh(
        context, config, [kpi.table for kpi in fact_kpis] + [kpi.table for kpi in census_kpis]
    )
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    work = []
    if fact_kpis:  # the fact's version is read only when a KPI from the fact is selected
        step = KpiStep(spark, lake)

        def update_fact_kpi(kpi: FactKpi) -> list[MaterializeResult]:
            return [materialize_kpi(lake, kpi, step.update(kpi))]

        work += [partial(update_fact_kpi, kpi) for kpi in fact_kpis]
    if census_kpis:  # one thread: current occupancy reads the census
        # as_of once: by default "now", which moves between calls.
        work.append(partial(update_census_kpis, spark, lake, config.instant(), census_kpis))
    for results in side_by_side(lambda update: update(), work):
        for result in results:
            if "update" in result.metadata:  # logged here: Dagster's log is the run's thread's
                context.log.info(
                    f"{result.asset_key.to_user_string()}: "
                    f"{result.metadata['update'].value} "
                    f"({result.metadata['update_reason'].value})"
                )
            yield result
    yield from run_checks(context, KPI_CHECKS)
