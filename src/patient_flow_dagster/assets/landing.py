"""The landing zone as a source asset: files land there from producers, not from Dagster."""

from __future__ import annotations

from dagster import AssetSpec

from patient_flow_dagster.assets.common import OWNERS
from patient_flow_dagster.model.tables import LANDING_EVENTS

landing_patient_events = AssetSpec(
    LANDING_EVENTS.key,
    description=(
        "Parquet files of patient events dropped by the stream consumer or any producer "
        "(PATIENT_FLOW_LANDING: a local folder or an Azure Blob/ADLS container)."
    ),
    group_name="landing",
    kinds={"parquet"},
    owners=OWNERS,
)
