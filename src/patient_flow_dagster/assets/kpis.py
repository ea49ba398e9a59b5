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
from datetime import date, datetime, timezone
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
from pyspark.sql import functions as F

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
from patient_flow_dagster.assets.daily import DAY_KPIS, DayKpi, DaySources, update_day_kpi
from patient_flow_dagster.assets.daily_checks import DAY_CHECKS
from patient_flow_dagster.assets.fact_rows import FactRows, FactVersion
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
from patient_flow_dagster.transforms import cubes, flow
from patient_flow_dagster.transforms.changes import add_totals, signed_changes


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
        self._earliest: dict[Hashable, date | None] = {}
        self._lock = threading.RLock()  # earliest_change reads changes_since under it

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

    def earliest_change(self, version: int) -> date | None:
        """The local date before which no fact change after `version` lies: the UTC date of the
        earliest admission among the changed rows' images (every segment and discharge of an
        encounter is at or after its admission); None for no changes."""
        key = ("earliest", version)
        with self._lock:
            if key not in self._earliest:
                first = (
                    self.changes_since(version)
                    .fact.agg(F.date_format(F.min("admission_time_ts"), "yyyy-MM-dd"))
                    .collect()[0][0]
                )
                self._earliest[key] = date.fromisoformat(first) if first else None
            return self._earliest[key]

    def day_sources(self) -> DaySources:
        """What the day's figures read of the fact, and the reference versions they reflect."""
        return DaySources(
            self.fact,
            lambda: self.whole_fact,
            self.earliest_change,
            {
                "department_version": self.lake.version(self.spark, DIM_DEPARTMENT),
                "hospital_version": self.lake.version(self.spark, DIM_HOSPITAL),
            },
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


KPIS: list[FactKpi | CensusKpi | DayKpi] = [
    *FACT_KPIS.values(),
    *CENSUS_KPIS.values(),
    *DAY_KPIS.values(),
]


@multi_asset(
    specs=[kpi.spec for kpi in KPIS],
    name="gold_kpis",
    check_specs=[check.spec for check in [*KPI_CHECKS, *DAY_CHECKS]],
    can_subset=True,
    required_resource_keys=CHECK_RESOURCES,
    pool=LAKE_POOL,
)
def gold_kpis(context: AssetExecutionContext, config: KpiConfig):
    """Bring the selected KPI tables up to date side by side: each KPI from the fact and each
    day's figure on a thread, the census and current occupancy on one more (`full_refresh`:
    drop and rebuild them)."""
    selected = context.selected_asset_keys
    fact_kpis = [kpi for key, kpi in FACT_KPIS.items() if key in selected]
    census_kpis = [kpi for key, kpi in CENSUS_KPIS.items() if key in selected]
    day_kpis = [kpi for key, kpi in DAY_KPIS.items() if key in selected]
    tables: list[Table] = [
        *(kpi.table for kpi in fact_kpis),
        *(kpi.table for kpi in census_kpis),
        *(kpi.table for kpi in day_kpis),
    ]
    apply_full_refresh(context, config, tables)
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    as_of = config.instant()  # once: by default "now", which moves between calls
    work = []
    if fact_kpis or day_kpis:  # the fact's version is read only when a KPI from it is selected
        step = KpiStep(spark, lake)

        def update_fact_kpi(kpi: FactKpi) -> list[MaterializeResult]:
            return [materialize_kpi(lake, kpi, step.update(kpi))]

        work += [partial(update_fact_kpi, kpi) for kpi in fact_kpis]
        sources = step.day_sources()

        def update_day(kpi: DayKpi) -> list[MaterializeResult]:
            return [update_day_kpi(spark, lake, kpi, sources, as_of)]

        work += [partial(update_day, kpi) for kpi in day_kpis]
    if census_kpis:  # one thread: current occupancy reads the census
        work.append(partial(update_census_kpis, spark, lake, as_of, census_kpis))
    for results in side_by_side(lambda update: update(), work):
        for result in results:
            if "update" in result.metadata:  # logged here: Dagster's log is the run's thread's
                context.log.info(
                    f"{result.asset_key.to_user_string()}: "
                    f"{result.metadata['update'].value} "
                    f"({result.metadata['update_reason'].value})"
                )
            yield result
    yield from run_checks(context, [*KPI_CHECKS, *DAY_CHECKS])
