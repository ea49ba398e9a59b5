"""Gold facts: fact_admissions (one row per encounter) and fact_patient_movements, by Delta
MERGE, and what every gold MERGE step shares (specs, counters, the new silver rows, metadata,
the identity maps). The dimensions are in assets/dimensions.py.

Gold is the analytics zone: the steps read silver's identifiers and write only their pseudonyms
(`transforms.keys`), keeping each pair in an identity map of the restricted zone."""

from collections.abc import Callable, Mapping, Sequence

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from patient_flow_dagster.assets.checking import CHECK_RESOURCES, write_then_check
from patient_flow_dagster.assets.common import (
    LAKE_POOL,
    OWNERS,
    SPARK_KINDS,
    RefreshConfig,
    apply_full_refresh,
    table_metadata,
)
from patient_flow_dagster.assets.gold_checks import FACT_CHECKS
from patient_flow_dagster.model.tables import (
    DIM_DEPARTMENT,
    DIM_HOSPITAL,
    DIM_PATIENT,
    ENCOUNTER_IDENTITY,
    FACT_ADMISSIONS,
    FACT_MOVEMENTS,
    SILVER_EVENTS,
    Table,
)
from patient_flow_dagster.resources.lake import DeltaLake, merge_counts
from patient_flow_dagster.transforms.encounters import (
    ADMITTED,
    CANCELLED,
    DISCHARGED,
    encounter_states,
    encounter_summary,
    segments,
)
from patient_flow_dagster.transforms.facts import admissions, movements
from patient_flow_dagster.transforms.keys import (
    PSEUDONYMIZED,
    pseudonym,
    pseudonymize,
    with_pseudonyms,
)


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


def empty_silver(spark: SparkSession, lake: DeltaLake) -> DataFrame:
    return lake.read(spark, SILVER_EVENTS).limit(0)


def merge_new_silver(spark, lake: DeltaLake, table: Table, empty: DataFrame, merge) -> MergeCounter:
    """Create `table` (schema of `empty`) if needed, then `merge` each batch of silver rows
    added since its last run into it (Delta streaming source + the table's checkpoint)."""
    lake.ensure(spark, table, empty.schema)
    counter = MergeCounter()
    lake.process_new_rows(
        spark, SILVER_EVENTS, table, lambda batch, _: merge(spark, lake, batch, counter)
    )
    return counter


def gold_result(
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


def remember_identities(spark: SparkSession, lake: DeltaLake, identity: Table, rows) -> None:
    """Insert into the identity map `identity` (created once per step, with the step's tables)
    the (pseudonym, identifier) pairs of `rows` it lacks; a pair never changes while the key
    does not."""
    pairs = rows.select(*identity.column_names).distinct()
    key = identity.keys[0]
    (
        lake.delta_table(spark, identity)
        .alias("t")
        .merge(pairs.alias("s"), f"t.{key} = s.{key}")
        .whenNotMatchedInsertAll()
        .execute()
    )


def changed_condition(columns: Sequence[str], keys: Sequence[str]) -> str:
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
            condition=f"NOT s._delete AND {changed_condition(columns, on)}",
            set={c: f"s.{c}" for c in columns},
        )
        .whenNotMatchedInsert(condition="NOT s._delete", values={c: f"s.{c}" for c in columns})
        .execute()
    )
    counter.record(result)


# -- dim_patient --------------------------------------------------------------------------------


def merge_encounters(
    spark: SparkSession,
    lake: DeltaLake,
    key: bytes,
    new_events: DataFrame,
    counters: dict[Table, MergeCounter],
) -> None:
    """Rebuild every encounter that `new_events` belong to from all its silver events, and
    MERGE its fact row (by its pseudonym) and its segments. Encounters whose dimension keys were
    missing earlier are rebuilt too, so a fact row never stays orphaned once its dimension
    exists. Running it twice on the same input changes nothing."""
    fact = lake.read(spark, FACT_ADMISSIONS)
    encounters = new_events.select("encounter_id").distinct()
    orphaned = fact.filter(
        "patient_sk IS NULL OR department_sk IS NULL OR current_department_sk IS NULL"
    ).select("encounter_pseudonym")
    if not orphaned.isEmpty():  # usually none: Delta's null counts skip every file
        identities = lake.read(spark, ENCOUNTER_IDENTITY).join(orphaned, "encounter_pseudonym")
        encounters = encounters.unionByName(identities.select("encounter_id")).distinct()
    encounters = encounters.persist()
    events = with_pseudonyms(
        lake.read(spark, SILVER_EVENTS).join(encounters, "encounter_id", "left_semi"), key
    ).persist()
    remember_identities(spark, lake, ENCOUNTER_IDENTITY, events)
    states = encounter_states(events.drop(*PSEUDONYMIZED)).persist()
    placed = segments(states).persist()
    try:
        dim_department = lake.read(spark, DIM_DEPARTMENT)
        rows = admissions(
            encounter_summary(states, placed),
            lake.read(spark, DIM_PATIENT),
            dim_department,
            lake.read(spark, DIM_HOSPITAL),
        )
        result = (
            lake.delta_table(spark, FACT_ADMISSIONS)
            .alias("t")
            .merge(rows.alias("s"), "t.encounter_pseudonym = s.encounter_pseudonym")
            .whenMatchedUpdateAll(
                condition=changed_condition(FACT_ADMISSIONS.column_names, FACT_ADMISSIONS.keys)
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
            movements(placed, dim_department),
            encounters.select(
                pseudonym("encounter", "encounter_id", key).alias("encounter_pseudonym")
            ),
            FACT_MOVEMENTS.keys,
            counters[FACT_MOVEMENTS],
        )
    finally:
        for frame in (encounters, events, states, placed):
            frame.unpersist()


def update_facts(spark: SparkSession, lake: DeltaLake, key: bytes) -> dict[Table, MergeCounter]:
    """Apply the silver events added since the last call to the encounters they belong to.
    One stream (the fact's checkpoint) writes both tables: a batch replayed after a crash
    between the two MERGEs rebuilds the same rows."""
    empty = encounter_states(pseudonymize(empty_silver(spark, lake), key))
    dim_patient, dim_department = lake.read(spark, DIM_PATIENT), lake.read(spark, DIM_DEPARTMENT)
    no_segments = segments(empty)
    lake.ensure(
        spark,
        FACT_ADMISSIONS,
        admissions(
            encounter_summary(empty, no_segments),
            dim_patient,
            dim_department,
            lake.read(spark, DIM_HOSPITAL),
        ).schema,
    )
    lake.ensure(spark, FACT_MOVEMENTS, movements(no_segments, dim_department).schema)
    lake.ensure(spark, ENCOUNTER_IDENTITY, ENCOUNTER_IDENTITY.spark_schema)
    counters = {FACT_ADMISSIONS: MergeCounter(), FACT_MOVEMENTS: MergeCounter()}
    lake.process_new_rows(
        spark,
        SILVER_EVENTS,
        FACT_ADMISSIONS,
        lambda batch, _: merge_encounters(spark, lake, key, batch, counters),
    )
    return counters


FACT_SPECS = {
    FACT_ADMISSIONS: gold_spec(
        FACT_ADMISSIONS.key,
        [SILVER_EVENTS.key, DIM_PATIENT.key, DIM_DEPARTMENT.key, DIM_HOSPITAL.key],
        "One row per encounter: the state its events give, applied in event-time order "
        "(admission, transfers, discharge, cancels), with the patient version valid at "
        "admission (point-in-time join) and the admitting and current departments. Encounters by "
        "their pseudonyms (identity.encounters maps them back, restricted). MERGE on the "
        "pseudonym: idempotent, and the same events give the same row in any arrival order.",
    ),
    FACT_MOVEMENTS: gold_spec(
        FACT_MOVEMENTS.key,
        [SILVER_EVENTS.key, DIM_DEPARTMENT.key],
        "One row per segment of an encounter in one department and bed: from the "
        "admission, split at each transfer, ending at the discharge (open while there). What "
        "the census and the length of stay per department count.",
    ),
}


@multi_asset(
    specs=list(FACT_SPECS.values()),
    name="gold_facts",
    check_specs=[check.spec for check in FACT_CHECKS],
    can_subset=True,
    required_resource_keys=CHECK_RESOURCES | {"pseudonyms"},
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
    apply_full_refresh(context, config, [*FACT_SPECS, ENCOUNTER_IDENTITY])
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    counters = update_facts(spark, lake, context.resources.pseudonyms.secret)
    return [
        gold_result(
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
        gold_result(
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
