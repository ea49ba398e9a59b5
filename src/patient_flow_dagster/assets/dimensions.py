"""Gold dimensions: dim_patient (SCD2) and dim_department (SCD1), by Delta MERGE from the silver
rows added since their last run, dim_hospital from the reference data, and the calendar
dim_date, in one step. Patients reach gold by their pseudonyms; the step keeps the identity map
behind them (restricted zone)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, multi_asset
from pyspark.sql import DataFrame, SparkSession

from patient_flow_dagster.assets.checking import CHECK_RESOURCES, run_checks
from patient_flow_dagster.assets.common import (
    LAKE_POOL,
    RefreshConfig,
    apply_full_refresh,
    side_by_side,
)
from patient_flow_dagster.assets.gold import (
    MergeCounter,
    changed_condition,
    empty_silver,
    gold_result,
    gold_spec,
    merge_new_silver,
    merge_replacing,
    remember_identities,
)
from patient_flow_dagster.assets.gold_checks import DIMENSION_CHECKS
from patient_flow_dagster.model.reference import Reference
from patient_flow_dagster.model.tables import (
    DIM_DATE,
    DIM_DEPARTMENT,
    DIM_HOSPITAL,
    DIM_PATIENT,
    PATIENT_IDENTITY,
    SILVER_EVENTS,
    Table,
)
from patient_flow_dagster.resources.lake import DeltaLake, last_note
from patient_flow_dagster.transforms.daily_figures import calendar
from patient_flow_dagster.transforms.dimensions import (
    department_reference,
    department_rows,
    hospital_rows,
    patient_versions,
)
from patient_flow_dagster.transforms.keys import (
    PSEUDONYMIZED,
    pseudonym,
    pseudonymize,
    with_pseudonyms,
)


def merge_patient_history(
    spark: SparkSession, lake: DeltaLake, key: bytes, new_events: DataFrame, counter: MergeCounter
) -> None:
    """Rebuild the history of every patient in `new_events` from all their silver events and
    MERGE it: unchanged versions stay untouched, split or shifted versions are updated, versions
    that no longer exist are deleted. Running it twice on the same input changes nothing."""
    patients = new_events.select("patient_id").distinct()
    history = with_pseudonyms(
        lake.read(spark, SILVER_EVENTS).join(patients, "patient_id", "left_semi"), key
    ).persist()
    try:
        remember_identities(spark, lake, PATIENT_IDENTITY, history)
        merge_replacing(
            spark,
            lake,
            DIM_PATIENT,
            patient_versions(history.drop(*PSEUDONYMIZED)),
            patients.select(pseudonym("patient", "patient_id", key).alias("patient_pseudonym")),
            ("patient_pseudonym", "valid_from"),
            counter,
        )
    finally:
        history.unpersist()


@dataclass(frozen=True)
class Inputs:
    """What a dimension's update takes besides the lake: the pseudonym key, the reference, the
    month the fiscal year starts in."""

    key: bytes
    reference: Reference
    fiscal_year_start_month: int = 1


def update_dim_patient(spark: SparkSession, lake: DeltaLake, inputs: Inputs) -> MergeCounter:
    """MERGE the history of the patients in silver rows added since the last call."""
    key = inputs.key
    empty = patient_versions(pseudonymize(empty_silver(spark, lake), key))
    lake.ensure(spark, PATIENT_IDENTITY, PATIENT_IDENTITY.spark_schema)
    return merge_new_silver(
        spark,
        lake,
        DIM_PATIENT,
        empty,
        lambda spark, lake, batch, counter: merge_patient_history(spark, lake, key, batch, counter),
    )


# -- dim_department -----------------------------------------------------------------------------


# What identifies a row of the reference data: a hospital, or a department of a hospital.
REFERENCE_KEYS = ("department", "hospital_id")


def merge_changed(
    spark: SparkSession, lake: DeltaLake, table: Table, rows: DataFrame, counter: MergeCounter
) -> None:
    """SCD type 1 of a small dimension: insert new keys, overwrite changed attributes.

    Rows already stored as they are never reach the MERGE, and nothing new commits nothing: a
    MERGE would rewrite the matched file anyway and give the table a new version, which makes
    the hourly census recompute its whole history (it keys on dim_department)."""
    # A few dozen rows at most: collected once, so the batch is not read again for the MERGE.
    collected = rows.subtract(lake.read(spark, table).select(*rows.columns)).collect()
    if not collected:
        counter.batches += 1
        return
    changed = spark.createDataFrame(collected, rows.schema)
    natural = [c for c in rows.columns if c in REFERENCE_KEYS]
    result = (
        lake.delta_table(spark, table)
        .alias("t")
        .merge(changed.alias("s"), " AND ".join(f"t.{c} = s.{c}" for c in natural))
        .whenMatchedUpdateAll(condition=changed_condition(rows.columns, natural))
        .whenNotMatchedInsertAll()
        .execute()
    )
    counter.record(result)


def update_dim_department(spark: SparkSession, lake: DeltaLake, inputs: Inputs) -> MergeCounter:
    """MERGE the departments of silver rows added since the last call, then the reference's
    changes (a new bed capacity) into the departments already stored."""
    reference = department_reference(spark, inputs.reference)
    empty = department_rows(empty_silver(spark, lake), reference)
    counter = merge_new_silver(
        spark,
        lake,
        DIM_DEPARTMENT,
        empty,
        lambda spark, lake, batch, counter: merge_changed(
            spark, lake, DIM_DEPARTMENT, department_rows(batch, reference), counter
        ),
    )
    stored = lake.read(spark, DIM_DEPARTMENT)
    merge_changed(spark, lake, DIM_DEPARTMENT, department_rows(stored, reference), counter)
    return counter


def update_dim_hospital(spark: SparkSession, lake: DeltaLake, inputs: Inputs) -> MergeCounter:
    """Every hospital of the reference data, SCD type 1 (a run whose files did not change
    commits nothing)."""
    rows = hospital_rows(spark, inputs.reference)
    lake.ensure(spark, DIM_HOSPITAL, rows.schema)
    counter = MergeCounter()
    merge_changed(spark, lake, DIM_HOSPITAL, rows, counter)
    return counter


# The dates dim_date holds: any date a hospital's figures can carry (local_dates_in_calendar
# checks that they do).
CALENDAR = (date(2000, 1, 1), date(2050, 12, 31))


def update_dim_date(spark: SparkSession, lake: DeltaLake, inputs: Inputs) -> MergeCounter:
    """The calendar, written when its range or the fiscal year's first month changed (the note
    of its commit says which it holds), otherwise left as it is."""
    counter = MergeCounter()
    first, last = CALENDAR
    note = {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "fiscal_year_start_month": inputs.fiscal_year_start_month,
    }
    if last_note(lake, spark, DIM_DATE) != note:
        rows = calendar(spark, first, last, inputs.fiscal_year_start_month)
        lake.overwrite(rows, DIM_DATE, note=note)
        counter.inserted = lake.read(spark, DIM_DATE).count()
    counter.batches += 1
    return counter


# -- the dimensions, one step --------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """A gold dimension: how a run updates it from new silver rows, and what its metadata
    shows (`counts`: extra figures, each a count over the table)."""

    spec: AssetSpec
    table: Table
    update: Callable[[SparkSession, DeltaLake, Inputs], MergeCounter]
    preview: list[str]
    counts: dict[str, Callable[[DataFrame], int]] = field(default_factory=dict)
    side_tables: tuple[Table, ...] = ()  # written with it (an identity map)


DIMENSIONS = {
    dimension.spec.key: dimension
    for dimension in [
        Dimension(
            gold_spec(
                DIM_PATIENT.key,
                [SILVER_EVENTS.key],
                "SCD type 2 of each patient's gender and age, ordered by admission time "
                "(event time), so late events land in the right place of history. One "
                "patient_sk per version; patients by their pseudonyms (identity.patients maps "
                "them back, restricted).",
            ),
            DIM_PATIENT,
            update_dim_patient,
            ["patient_sk", "valid_from", "valid_to", "is_current"],
            {"current_patients": lambda rows: rows.filter("is_current").count()},
            side_tables=(PATIENT_IDENTITY,),
        ),
        Dimension(
            gold_spec(
                DIM_DEPARTMENT.key,
                [SILVER_EVENTS.key],
                "SCD type 1 of departments per hospital, with bed capacity and the inpatient "
                "flag from the reference data (PATIENT_FLOW_REFERENCE_DIR, or the packaged "
                "sample).",
            ),
            DIM_DEPARTMENT,
            update_dim_department,
            ["department_sk", "department", "hospital_id", "bed_capacity", "inpatient"],
        ),
        Dimension(
            gold_spec(
                DIM_HOSPITAL.key,
                [],
                "SCD type 1 of the hospitals of the reference data (PATIENT_FLOW_REFERENCE_DIR, "
                "or the packaged sample), with the time zone their days and hours are local to.",
            ),
            DIM_HOSPITAL,
            update_dim_hospital,
            ["hospital_id", "hospital_name", "time_zone"],
        ),
        Dimension(
            gold_spec(
                DIM_DATE.key,
                [],
                "One row per calendar date with its week, month, quarter and fiscal year "
                "(PATIENT_FLOW_FISCAL_YEAR_START_MONTH): every daily table's local_date joins "
                "to it.",
            ),
            DIM_DATE,
            update_dim_date,
            ["local_date", "day_name", "iso_week", "month", "quarter", "fiscal_year"],
        ),
    ]
}


@multi_asset(
    specs=[dimension.spec for dimension in DIMENSIONS.values()],
    name="gold_dimensions",
    check_specs=[check.spec for check in DIMENSION_CHECKS],
    can_subset=True,
    required_resource_keys=CHECK_RESOURCES | {"pseudonyms", "reference"},
    pool=LAKE_POOL,
)
def gold_dimensions(context: AssetExecutionContext, config: RefreshConfig):
    """Update the selected dimensions from the silver rows added since their last run, side
    by side: each has its own streaming checkpoint (dim_hospital: the reference data), and none
    reads another. One step for all (on Databricks a step is a job run); each is still its own
    asset, subsettable."""
    selected = [DIMENSIONS[key] for key in context.selected_asset_keys]
    apply_full_refresh(context, config, [t for d in selected for t in (d.table, *d.side_tables)])
    spark = context.resources.pyspark.spark_session
    lake: DeltaLake = context.resources.lake
    reference = context.resources.reference
    inputs = Inputs(
        context.resources.pseudonyms.secret, reference.data, reference.fiscal_year_start_month
    )

    def update(dimension: Dimension) -> MaterializeResult:
        return gold_result(
            spark,
            lake,
            dimension.table,
            dimension.update(spark, lake, inputs),
            dimension.preview,
            dimension.counts,
            dimension.spec.key,
        )

    yield from side_by_side(update, selected)
    yield from run_checks(context, DIMENSION_CHECKS)


# -- the facts: encounters and their movements ---------------------------------------------------
