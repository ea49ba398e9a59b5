"""The landing zone as a source asset: files land there from producers, not from Dagster."""
from __future__ import annotations

from dagster import AssetSpec

from patient_flow_dagster.assets.common import LANDING_KEY, OWNERS

landing_patient_events = AssetSpec(
    LANDING_KEY,
    description=(
        "Parquet files of patient events dropped by the stream consumer or any producer "
        "(PATIENT_FLOW_LANDING: a local folder or an Azure Blob/ADLS container)."
    ),
    group_name="landing",
    kinds={"parquet"},
    owners=OWNERS,
)
