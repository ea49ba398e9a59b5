"""Bronze: landed rows exactly as they arrived, plus ingest metadata."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from patient_flow_dagster.model.contract import CONTRACT_FIELDS

RESCUED_DATA = "_rescued_data"  # Auto Loader's rescued data column, when the reader has one


def derived_event_id() -> Column:
    """A deterministic id from the event's content, for producers that send none.

    Identical content gives the identical id, so a re-sent event is removed as a duplicate in
    silver. `to_json` omits null fields, so a null and an empty string hash differently.
    """
    return F.sha2(F.to_json(F.struct(*[F.col(name) for name in CONTRACT_FIELDS])), 256)


def with_ingest_metadata(landed: DataFrame, run_id: str) -> DataFrame:
    """Add event_id (when absent), ingestion time, source file and run id to landed rows.

    `landed` must come straight from a file source, whose hidden `_metadata` column names the
    file each row came from. Values Auto Loader could not fit into the schema stay in
    `rescued_data` (always null with Spark's plain file source, which rejects such files).
    """
    event_id = F.coalesce(F.nullif(F.trim(F.col("event_id")), F.lit("")), derived_event_id())
    rescued = F.col(RESCUED_DATA) if RESCUED_DATA in landed.columns else F.lit(None)
    return landed.select(
        event_id.alias("event_id"),
        *[F.col(name) for name in CONTRACT_FIELDS],
        F.current_timestamp().alias("bronze_ingestion_ts"),
        F.col("_metadata.file_path").alias("source_file"),
        F.lit(run_id).alias("ingest_run_id"),
        rescued.cast("string").alias("rescued_data"),
    )
