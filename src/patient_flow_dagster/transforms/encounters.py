"""Encounters: the events of one encounter applied in order, giving its current state (one fact
row) and its movements (one row per segment in one department and bed).

They take silver events as the analytics zone may hold them (`keys.pseudonymize`): the encounter
and the patient by their pseudonyms.

An encounter is rebuilt from all its events every time one of them arrives, so the result
depends on the set of events only, never on the order or the runs they arrived in: the events
are sorted by (event_time, sequence, arrival, event_id) and folded by Spark's `aggregate` higher
order function (docs/architecture.md, "Encounters").
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from patient_flow_dagster.model.contract import (
    ADMITTING,
    CANCEL_ADMIT,
    CANCEL_DISCHARGE,
    CANCEL_TRANSFER,
    DISCHARGE,
    STAY,
    TRANSFER,
)
from patient_flow_dagster.transforms.silver import length_of_stay_hours, stay_category

# The order events of an encounter apply in: when it happened, the source's sequence, when it
# arrived, and the event id last so that equal keys still give one order.
EVENT_ORDER = ("event_time_ts", "sequence", "bronze_ingestion_ts", "event_id")
_FIELDS = (
    "event_type",
    "patient_pseudonym",
    "hospital_id",
    "department",
    "bed_id",
    "admission_time_ts",
    "discharge_time_ts",
)
_PLACE = "struct<start_ts:timestamp,department:string,bed_id:int>"

ADMITTED, DISCHARGED, CANCELLED = "admitted", "discharged", "cancelled"


def _pop(stack: Column) -> Column:
    """The array without its last element (empty stays empty)."""
    return F.slice(stack, F.lit(1), F.greatest(F.size(stack) - 1, F.lit(0)))


def _apply(state: Column, event: Column) -> Column:
    """The encounter's state after one more event.

    ADMIT (or a stay record) sets the admission, its department and bed, and lifts an earlier
    CANCEL_ADMIT; TRANSFER pushes a move, CANCEL_TRANSFER pops the latest; DISCHARGE pushes a
    discharge, CANCEL_DISCHARGE pops the latest; a stay record with a discharge sets it. UPDATE
    changes demographics only (dim_patient), so nothing here but the count.
    """
    kind = event["event_type"]
    admitting = kind.isin(*ADMITTING)
    place = F.struct(
        event["event_time_ts"].alias("start_ts"),
        event["department"].alias("department"),
        event["bed_id"].alias("bed_id"),
    )
    discharge_at = F.coalesce(event["discharge_time_ts"], event["event_time_ts"])
    moves = (
        F.when(kind == TRANSFER, F.concat(state["moves"], F.array(place)))
        .when(kind == CANCEL_TRANSFER, _pop(state["moves"]))
        .otherwise(state["moves"])
    )
    discharges = (
        F.when(kind == DISCHARGE, F.concat(state["discharges"], F.array(discharge_at)))
        .when(kind == CANCEL_DISCHARGE, _pop(state["discharges"]))
        .when(
            (kind == STAY) & event["discharge_time_ts"].isNotNull(),
            F.array(event["discharge_time_ts"]),
        )
        .otherwise(state["discharges"])
    )

    def admitted_or_kept(field: str, value: Column) -> Column:
        return F.when(admitting, value).otherwise(F.coalesce(state[field], value))

    return F.struct(
        (state["admitted"] | admitting).alias("admitted"),
        F.when(kind == CANCEL_ADMIT, F.lit(True))
        .when(admitting, F.lit(False))
        .otherwise(state["cancelled"])
        .alias("cancelled"),
        admitted_or_kept("patient_pseudonym", event["patient_pseudonym"]).alias(
            "patient_pseudonym"
        ),
        admitted_or_kept("hospital_id", event["hospital_id"]).alias("hospital_id"),
        F.when(admitting, F.coalesce(event["admission_time_ts"], event["event_time_ts"]))
        .otherwise(state["admission_time_ts"])
        .alias("admission_time_ts"),
        F.when(admitting, event["department"]).otherwise(state["department"]).alias("department"),
        F.when(admitting, event["bed_id"]).otherwise(state["bed_id"]).alias("bed_id"),
        moves.alias("moves"),
        discharges.alias("discharges"),
        (state["event_count"] + 1).alias("event_count"),
    )


def _initial() -> Column:
    """The state before the first event: nothing known."""
    return F.struct(
        F.lit(False).alias("admitted"),
        F.lit(False).alias("cancelled"),
        F.lit(None).cast("string").alias("patient_pseudonym"),
        F.lit(None).cast("int").alias("hospital_id"),
        F.lit(None).cast("timestamp").alias("admission_time_ts"),
        F.lit(None).cast("string").alias("department"),
        F.lit(None).cast("int").alias("bed_id"),
        F.array().cast(f"array<{_PLACE}>").alias("moves"),
        F.array().cast("array<timestamp>").alias("discharges"),
        F.lit(0).alias("event_count"),
    )


def encounter_states(events: DataFrame) -> DataFrame:
    """One row per encounter of `events` (silver rows holding every event of each encounter):
    its state after all its events, whether or not its admission has arrived (`admitted`).

    Columns: encounter_pseudonym, first_arrival, admitted, cancelled, patient_pseudonym,
    hospital_id, admission_time_ts, department, bed_id (where it was admitted), moves (the transfers
    not cancelled, in order), discharge_time_ts (null while admitted), event_count, status.
    """
    ordered = F.array_sort(F.collect_list(F.struct(*EVENT_ORDER, *_FIELDS)))
    grouped = events.groupBy("encounter_pseudonym").agg(
        ordered.alias("_events"), F.min("bronze_ingestion_ts").alias("first_arrival")
    )
    folded = grouped.select(
        "encounter_pseudonym",
        "first_arrival",
        F.aggregate("_events", _initial(), _apply).alias("_state"),
    )
    discharge = F.try_element_at(F.col("_state.discharges"), F.lit(-1))
    state = folded.select(
        "encounter_pseudonym", "first_arrival", "_state.*", discharge.alias("discharge_time_ts")
    ).drop("discharges")
    status = (
        F.when(F.col("cancelled"), F.lit(CANCELLED))
        .when(F.col("discharge_time_ts").isNotNull(), F.lit(DISCHARGED))
        .otherwise(F.lit(ADMITTED))
    )
    return state.withColumn("status", status)


def segments(states: DataFrame) -> DataFrame:
    """The segments in one department and bed of the admitted, not cancelled encounters: from the
    admission, split at each transfer, the last one ending at the discharge (open while
    admitted). An encounter's segments tile admission..discharge without overlap; a move
    before the admission or from the discharge on, and a zero-length segment, give no segment.

    Columns: encounter_pseudonym, hospital_id, segment (1, 2, ... in time order), department,
    bed_id, start_ts, end_ts, length_of_stay_hours, stay_category.
    """
    admitted = F.struct(F.col("admission_time_ts").alias("start_ts"), "department", "bed_id")
    places = states.filter(F.col("admitted") & ~F.col("cancelled")).select(
        "encounter_pseudonym",
        "hospital_id",
        "admission_time_ts",
        "discharge_time_ts",
        F.posexplode(F.concat(F.array(admitted), F.col("moves"))).alias("_position", "_place"),
    )
    inside = (F.col("_place.start_ts") >= F.col("admission_time_ts")) & (
        F.col("discharge_time_ts").isNull()
        | (F.col("_place.start_ts") < F.col("discharge_time_ts"))
    )
    encounter = Window.partitionBy("encounter_pseudonym").orderBy("start_ts", "_position")
    timed = (
        places.filter(inside)
        .select(
            "encounter_pseudonym",
            "hospital_id",
            "discharge_time_ts",
            "_position",
            "_place.start_ts",
            "_place.department",
            "_place.bed_id",
        )
        .withColumn(
            "end_ts", F.coalesce(F.lead("start_ts").over(encounter), F.col("discharge_time_ts"))
        )
    )
    kept = timed.filter(F.col("end_ts").isNull() | (F.col("end_ts") > F.col("start_ts")))
    hours = length_of_stay_hours(F.col("start_ts"), F.col("end_ts"))
    return kept.select(
        "encounter_pseudonym",
        "hospital_id",
        F.row_number().over(encounter).cast("int").alias("segment"),
        "department",
        "bed_id",
        "start_ts",
        "end_ts",
        hours.alias("length_of_stay_hours"),
        stay_category(hours).alias("stay_category"),
    )


def encounter_summary(states: DataFrame, segments: DataFrame) -> DataFrame:
    """The admitted encounters' states with what their segments say: the current (or last)
    department and bed, and the transfers that stand (segments - 1)."""
    last = Window.partitionBy("encounter_pseudonym").orderBy(F.col("segment").desc())
    latest = (
        segments.withColumn("_latest", F.row_number().over(last) == 1)
        .groupBy("encounter_pseudonym")
        .agg(
            F.count(F.lit(1)).alias("_segments"),
            F.max_by("department", "_latest").alias("current_department"),
            F.max_by("bed_id", "_latest").alias("current_bed_id"),
        )
    )
    return (
        states.filter("admitted")
        .join(latest, "encounter_pseudonym", "left")
        .withColumn(
            "transfers",
            F.greatest(F.coalesce(F.col("_segments"), F.lit(0)) - 1, F.lit(0)).cast("int"),
        )
        .drop("_segments")
    )
