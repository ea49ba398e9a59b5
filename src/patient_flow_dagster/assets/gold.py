"""Gold: dim_patient (SCD2), dim_department (SCD1), fact_admissions (one row per encounter)
and fact_patient_movements, all Delta MERGE."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from patient_flow_dagster.assets.checking import CHECK_RESOURCES, run_checks, write_then_check
from patient_flow_dagster.assets.common import (
    LAKE_POOL,
    OWNERS,
    SPARK_KINDS,
    RefreshConfig,
    apply_full_refresh,
    side_by_side,
    table_metadata,
)
from patient_flow_dagster.assets.gold_checks import DIMENSION_CHECKS, FACT_CHECKS
from patient_flow_dagster.model.tables import (
    DIM_DEPARTMENT,
    DIM_PATIENT,
    FACT_ADMISSIONS,
    FACT_MOVEMENTS,
    SILVER_EVENTS,
    Table,
)
from patient_flow_dagster.resources.lake import DeltaLake, merge_counts
from patient_flow_dagster.transforms.dimensions import (
    department_reference,
    department_rows,
    patient_versions,
)
from patient_flow_dagster.transforms.encounters import (
    ADMITTED,
    CANCELLED,
    DISCHARGED,
    encounter_states,
    encounter_summary,
    segments,
)
from patient_flow_dagster.transforms.facts import admissions, movements


def gold_spec(key, deps: list, description: str, group: str = "gold") -> AssetSpec:
    """The spec of one asset of a gold multi-asset (the dimensions, the KPIs)."""
    return AssetSpec(
        key,
        deps=deps,
        description=description,
        group_name=group,
        kinds=SPARK_KINDS,
        owners=OWNERS,
    )


class MergeCounter:
    """Adds up the operation metrics of the MERGEs a run performs, for the asset's metadata."""

    def __init__(self) -> None:
        self.inserted = self.updated = self.deleted = self.batches = 0

    def record(self, merge_result: DataFrame) -> None:
        """Add the counts of a MERGE (the one-row result of DeltaMergeBuilder.execute())."""
        counts = merge_counts(merge_result)
        self.inserted += counts["inserted"]
        self.updated += counts["updated"]
        self.deleted += counts["deleted"]
        self.batches += 1

    def metadata(self) -> dict:
        return {
            "rows_inserted": MetadataValue.int(self.inserted),
            "rows_updated": MetadataValue.int(self.updated),
            "rows_deleted": MetadataValue.int(self.deleted),
            "silver_batches_processed": MetadataValue.int(self.batches),
        }


def _empty_silver(spark: SparkSession, lake: DeltaLake) -> DataFrame:
    return lake.read(spark, SILVER_EVENTS).limit(0)


def _merge_new_silver(
    spark, lake: DeltaLake, table: Table, empty: DataFrame, merge
) -> MergeCounter:
    """Create `table` (schema of `empty`) if needed, then `merge` each batch of silver rows
    added since its last run into it (Delta streaming source + the table's checkpoint)."""
    lake.ensure(spark, table, empty.schema)
    counter = MergeCounter()
    lake.process_new_rows(
        spark, SILVER_EVENTS, table, lambda batch, _: merge(spark, lake, batch, counter)
    )
    return counter


def _gold_result(
    spark,
    lake: DeltaLake,
    table: Table,
    counter: MergeCounter,
    preview: list[str],
    counts: Mapping[str, Callable[[DataFrame], int | dict]],
    asset_key=None,
) -> MaterializeResult:
    """The table's metadata, the MERGE counts, and `counts`: each a count over the table, or
    several counts from one pass (a dict)."""
    rows = lake.read(spark, table)
    figures: dict[str, int] = {}
    for name, count in counts.items():
        value = count(rows)
        figures.update(value if isinstance(value, dict) else {name: value})
    return MaterializeResult(
        asset_key=asset_key,
        metadata={
            **table_metadata(rows, lake, table, preview),
            **{name: MetadataValue.int(int(value)) for name, value in figures.items()},
            **counter.metadata(),
        },
    )


def _changed(columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    """MERGE condition: some non-key column differs (null-safe)."""
    return "NOT (" + " AND ".join(f"t.{c} <=> s.{c}" for c in columns if c not in keys) + ")"


def merge_replacing(
    spark: SparkSession,
    lake: DeltaLake,
    table: Table,
    rows: DataFrame,
    scope: DataFrame,
    on: tuple[str, ...],
    counter: MergeCounter,
) -> None:
    """MERGE `rows` as the new contents of `table` for `scope` (the rows of `table` that share
    `scope`'s columns): unchanged rows stay untouched, changed ones are updated, new ones
    inserted, and those `rows` no longer hold deleted. Running it twice changes nothing."""
    existing = lake.read(spark, table).join(scope, scope.columns, "left_semi")
    stale = (
        existing.join(rows, list(on), "left_anti").select(*on).withColumn("_delete", F.lit(True))
    )
    source = rows.withColumn("_delete", F.lit(False)).unionByName(stale, allowMissingColumns=True)
    columns = table.column_names
    result = (
        lake.delta_table(spark, table)
        .alias("t")
        .merge(source.alias("s"), " AND ".join(f"t.{key} = s.{key}" for key in on))
        .whenMatchedDelete(condition="s._delete")
        .whenMatchedUpdate(
            condition=f"NOT s._delete AND {_changed(columns, on)}",
            set={c: f"s.{c}" for c in columns},
        )
        .whenNotMatchedInsert(condition="NOT s._delete", values={c: f"s.{c}" for c in columns})
        .execute()
    )
    counter.record(result)


# -- dim_patient --------------------------------------------------------------------------------


def merge_patient_history(
    spark: SparkSession, lake: DeltaLake, new_events: DataFrame, counter: MergeCounter
) -> None:
    """Rebuild the history of every patient in `new_events` from all their silver events and
    MERGE it: unchanged versions stay untouched, split or shifted versions are updated, versions
    that no longer exist are deleted. Running it twice on the same input changes nothing."""
    patients = new_events.select("patient_id").distinct()
    history = lake.read(spark, SILVER_EVENTS).join(patients, "patient_id", "left_semi")
    merge_replacing(
        spark,
        lake,
        DIM_PATIENT,
        patient_versions(history),
        patients,
        ("patient_id", "valid_from"),
        counter,
    )


def update_dim_patient(spark: SparkSession, lake: DeltaLake) -> MergeCounter:
    """MERGE the history of the patients in silver rows added since the last call."""
    empty = patient_versions(_empty_silver(spark, lake))
    return _merge_new_silver(spark, lake, DIM_PATIENT, empty, merge_patient_history)


# -- dim_department -----------------------------------------------------------------------------


def merge_departments(
    spark: SparkSession, lake: DeltaLake, new_events: DataFrame, counter: MergeCounter
) -> None:
    """SCD type 1: insert new (department, hospital_id) pairs, overwrite changed attributes.

    Rows already stored as they are never reach the MERGE, and a batch with nothing new commits
    nothing: a MERGE would rewrite the matched file anyway and give dim_department a new
    version, which makes the hourly census recompute its whole history (it keys on it)."""
    rows = department_rows(new_events, department_reference(spark))
    # A few dozen rows at most: collected once, so the batch is not read again for the MERGE.
    collected = rows.subtract(lake.read(spark, DIM_DEPARTMENT).select(*rows.columns)).collect()
    if not collected:
        counter.batches += 1
        return
    changed = spark.createDataFrame(collected, rows.schema)
    result = (
        lake.delta_table(spark, DIM_DEPARTMENT)
        .alias("t")
        .merge(changed.alias("s"), "t.department = s.department AND t.hospital_id = s.hospital_id")
        .whenMatchedUpdateAll(
            condition="NOT (t.bed_capacity <=> s.bed_capacity "
            "AND t.department_sk <=> s.department_sk)"
        )
        .whenNotMatchedInsertAll()
        .execute()
    )
    counter.record(result)


def update_dim_department(spark: SparkSession, lake: DeltaLake) -> MergeCounter:
    """MERGE the departments of silver rows added since the last call."""
    empty = department_rows(_empty_silver(spark, lake), department_reference(spark))
    return _merge_new_silver(spark, lake, DIM_DEPARTMENT, empty, merge_departments)


# -- the two dimensions, one step ----------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """A gold dimension: how a run updates it from new silver rows, and what its metadata
    shows (`counts`: extra figures, each a count over the table)."""

    spec: AssetSpec
    table: Table
    update: Callable[[SparkSession, DeltaLake], MergeCounter]
    preview: list[str]
    counts: dict[str, Callable[[DataFrame], int]] = field(default_factory=dict)


DIMENSIONS = {
    dimension.spec.key: dimension
    for dimension in [
        Dimension(
            gold_spec(
                DIM_PATIENT.key,
                [SILVER_EVENTS.key],
                "SCD type 2 of each patient's gender and age, ordered by admission time "
                "(event time), so late events land in the right place of history. One "
                "patient_sk per version.",
            ),
            DIM_PATIENT,
            update_dim_patient,
            ["patient_sk", "valid_from", "valid_to", "is_current"],
            {"current_patients": lambda rows: rows.filter("is_current").count()},
        ),
        Dimension(
            gold_spec(
                DIM_DEPARTMENT.key,
                [SILVER_EVENTS.key],
                "SCD type 1 of departments per hospital, with bed capacity from the "
                "reference data shipped with the project.",
            ),
            DIM_DEPARTMENT,
            update_dim_department,
            ["department_sk", "department", "hospital_id", "bed_capacity"],
        ),
    ]
}


@multi_asset(
    specs=[dimension.spec for dimension in DIMENSIONS.values()],
    name="gold_dimensions",
    check_specs=[check.spec for check in DIMENSION_CHECKS],
    can_subset=True,
    required_resource_keys=CHECK_RESOURCES,
    pool=LAKE_POOL,
)
def gold_dimensions(context: AssetExecutionContext, config: RefreshConfig):
    """Update the selected dimensions from the silver rows added since their last run, side
    by side: each has its own streaming checkpoint, and neither reads the other. One step for
    both (on Databricks a step is a job run); each is still its own asset, subsettable."""
    selected = [DIMENSIONS[key] for key in context.selected_asset_keys]
    apply_full_refresh(context, config, [d.table for d in selected])
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake

    def update(dimension: Dimension) -> MaterializeResult:
        return _gold_result(
            spark,
            lake,
            dimension.table,
            dimension.update(spark, lake),
            dimension.preview,
            dimension.counts,
            dimension.spec.key,
        )

    yield from side_by_side(update, selected)
    yield from run_checks(context, DIMENSION_CHECKS)


# -- the facts: encounters and their movements ---------------------------------------------------


def merge_encounters(
    spark: SparkSession, lake: DeltaLake, new_events: DataFrame, counters: dict[Table, MergeCounter]
) -> None:
    """Rebuild every encounter that `new_events` belong to from all its silver events, and
    MERGE its fact row (by encounter_id) and its segments. Encounters whose dimension keys were
    missing earlier are rebuilt too, so a fact row never stays orphaned once its dimension
    exists. Running it twice on the same input changes nothing."""
    fact = lake.read(spark, FACT_ADMISSIONS)
    encounters = new_events.select("encounter_id").distinct()
    orphaned = fact.filter(
        "patient_sk IS NULL OR department_sk IS NULL OR current_department_sk IS NULL"
    ).select("encounter_id")
    if not orphaned.isEmpty():  # usually none: Delta's null counts skip every file
        encounters = encounters.unionByName(orphaned).distinct()
    encounters = encounters.persist()
    events = lake.read(spark, SILVER_EVENTS).join(encounters, "encounter_id", "left_semi")
    states = encounter_states(events).persist()
    stays = segments(states).persist()
    try:
        dim_department = lake.read(spark, DIM_DEPARTMENT)
        rows = admissions(
            encounter_summary(states, stays), lake.read(spark, DIM_PATIENT), dim_department
        )
        result = (
            lake.delta_table(spark, FACT_ADMISSIONS)
            .alias("t")
            .merge(rows.alias("s"), "t.encounter_id = s.encounter_id")
            .whenMatchedUpdateAll(
                condition=_changed(FACT_ADMISSIONS.column_names, FACT_ADMISSIONS.keys)
            )
            .whenNotMatchedInsertAll()
            .execute()
        )
        counters[FACT_ADMISSIONS].record(result)
        # Segments that no longer exist (a cancelled transfer or admission) are deleted.
        merge_replacing(
            spark,
            lake,
            FACT_MOVEMENTS,
            movements(stays, dim_department),
            encounters,
            FACT_MOVEMENTS.keys,
            counters[FACT_MOVEMENTS],
        )
    finally:
        for frame in (encounters, states, stays):
            frame.unpersist()


def update_facts(spark: SparkSession, lake: DeltaLake) -> dict[Table, MergeCounter]:
    """Apply the silver events added since the last call to the encounters they belong to.
    One stream (the fact's checkpoint) writes both tables: a batch replayed after a crash
    between the two MERGEs rebuilds the same rows."""
    empty = encounter_states(_empty_silver(spark, lake))
    dim_patient, dim_department = lake.read(spark, DIM_PATIENT), lake.read(spark, DIM_DEPARTMENT)
    stays = segments(empty)
    lake.ensure(
        spark,
        FACT_ADMISSIONS,
        admissions(encounter_summary(empty, stays), dim_patient, dim_department).schema,
    )
    lake.ensure(spark, FACT_MOVEMENTS, movements(stays, dim_department).schema)
    counters = {FACT_ADMISSIONS: MergeCounter(), FACT_MOVEMENTS: MergeCounter()}
    lake.process_new_rows(
        spark,
        SILVER_EVENTS,
        FACT_ADMISSIONS,
        lambda batch, _: merge_encounters(spark, lake, batch, counters),
    )
    return counters


FACT_SPECS = {
    FACT_ADMISSIONS: gold_spec(
        FACT_ADMISSIONS.key,
        [SILVER_EVENTS.key, DIM_PATIENT.key, DIM_DEPARTMENT.key],
        "One row per encounter: the state its events give, applied in event-time order "
        "(admission, transfers, discharge, cancels), with the patient version valid at "
        "admission (point-in-time join) and the admitting and current departments. MERGE on "
        "encounter_id: idempotent, and the same events give the same row in any arrival order.",
    ),
    FACT_MOVEMENTS: gold_spec(
        FACT_MOVEMENTS.key,
        [SILVER_EVENTS.key, DIM_DEPARTMENT.key],
        "One row per stay segment of an encounter in one department and bed: from the "
        "admission, split at each transfer, ending at the discharge (open while there). What "
        "the census and the length of stay per department count.",
    ),
}


@multi_asset(
    specs=list(FACT_SPECS.values()),
    name="gold_facts",
    check_specs=[check.spec for check in FACT_CHECKS],
    can_subset=True,
    required_resource_keys=CHECK_RESOURCES,
    pool=LAKE_POOL,
)
def gold_facts(context: AssetExecutionContext, config: RefreshConfig):
    """The fact and the movements are written together; then their checks."""
    yield from write_then_check(context, lambda: apply_new_events(context, config), FACT_CHECKS)


def apply_new_events(
    context: AssetExecutionContext, config: RefreshConfig
) -> list[MaterializeResult]:
    """Apply the new silver events to their encounters: the fact rows and the movements (one
    step: both come from the same rebuild of each encounter)."""
    apply_full_refresh(context, config, list(FACT_SPECS))
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    counters = update_facts(spark, lake)
    return [
        _gold_result(
            spark,
            lake,
            FACT_ADMISSIONS,
            counters[FACT_ADMISSIONS],
            [
                "department_sk",
                "hospital_id",
                "status",
                "transfers",
                "length_of_stay_hours",
                "stay_category",
            ],
            {"encounters": encounter_figures},
            FACT_ADMISSIONS.key,
        ),
        _gold_result(
            spark,
            lake,
            FACT_MOVEMENTS,
            counters[FACT_MOVEMENTS],
            [
                "segment",
                "department_sk",
                "hospital_id",
                "start_ts",
                "end_ts",
                "length_of_stay_hours",
            ],
            {"open_segments": lambda rows: rows.filter("end_ts IS NULL").count()},
            FACT_MOVEMENTS.key,
        ),
    ]


def encounter_figures(fact: DataFrame) -> dict[str, int]:
    """Encounters per status and the transfers that stand, in one pass over the fact."""
    row = fact.agg(
        *(
            F.count_if(F.col("status") == status).alias(status)
            for status in (ADMITTED, DISCHARGED, CANCELLED)
        ),
        F.coalesce(F.sum("transfers"), F.lit(0)).alias("transfers"),
    ).collect()[0]
    return {
        "currently_admitted": row[ADMITTED],
        "discharged": row[DISCHARGED],
        "cancelled": row[CANCELLED],
        "transfers": row["transfers"],
    }
