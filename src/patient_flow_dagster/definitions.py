"""The one Definitions object: assets, jobs and resources for PATIENT_FLOW_ENV."""

from __future__ import annotations

from datetime import timedelta

from dagster import (
    AssetSelection,
    AssetSpec,
    Definitions,
    FreshnessPolicy,
    define_asset_job,
    map_asset_specs,
)

from patient_flow_dagster.alerting import alert_on_failed_run, alert_on_quality
from patient_flow_dagster.assets.bronze import bronze_patient_events
from patient_flow_dagster.assets.checks import AUDIT_ONLY
from patient_flow_dagster.assets.daily import DAY_KPIS
from patient_flow_dagster.assets.dimensions import gold_dimensions
from patient_flow_dagster.assets.gold import gold_facts
from patient_flow_dagster.assets.kpis import gold_kpis
from patient_flow_dagster.assets.landing import landing_patient_events
from patient_flow_dagster.assets.silver import silver_patient_events
from patient_flow_dagster.environments import executor_for, resources_for
from patient_flow_dagster.model.tables import (
    BY_KEY,
    CURRENT_OCCUPANCY,
    DEPARTMENT_CENSUS_HOURLY,
    QUARANTINE,
)
from patient_flow_dagster.schedules import build_census_clock, build_nightly_audit
from patient_flow_dagster.sensors import CLOCK_JOB, PIPELINE_JOB, build_landing_sensor
from patient_flow_dagster.settings import Settings


def with_table_schema(spec: AssetSpec) -> AssetSpec:
    """The asset's columns and their descriptions from the table registry, and its zone (who may
    read it: restricted or analytics), for the UI."""
    table = BY_KEY[spec.key]
    return spec.merge_attributes(
        metadata={"dagster/column_schema": table.schema}, tags={"patient_flow/zone": table.zone}
    )


LANDING = map_asset_specs(with_table_schema, [landing_patient_events])[0]
LAKE_ASSETS = map_asset_specs(
    with_table_schema,
    [
        bronze_patient_events,
        silver_patient_events,
        gold_dimensions,
        gold_facts,
        gold_kpis,
    ],
)

# Runs with this tag are serialized by the run queue (config/dagster.yaml): one lake writer.
WRITES_LAKE = {"patient_flow/writes": "lake"}
# A run retried by the daemon (config/dagster.yaml: a crashed run worker) resumes where it failed.
RETRY_FROM_FAILURE = {"dagster/retry_strategy": "FROM_FAILURE"}


def with_freshness(settings: Settings):
    """Silver, gold and the KPIs warn, then fail, when not updated for the settings' windows;
    bronze and the quarantine are not watched (a quiet batch adds nothing to them)."""
    policy = FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=settings.freshness_fail_minutes),
        warn_window=timedelta(minutes=settings.freshness_warn_minutes),
    )

    def apply(spec: AssetSpec) -> AssetSpec:
        table = BY_KEY[spec.key]
        if table.layer not in ("silver", "gold") or table is QUARANTINE:
            return spec
        return spec.replace_attributes(freshness_policy=policy)

    return apply


# The figures per local day or month (assets/daily.py) move with the clock, not with each batch:
# a bed meeting reads them daily, and a batch's run stays as fast as the census needs it.
DAY_FIGURES = AssetSelection.assets(*DAY_KPIS)

# A batch's run checks what the batch touched; the checks that compare whole tables wait for
# the nightly audit (assets/checking.py, `Scope`).
BATCH_SELECTION = (
    AssetSelection.assets(*LAKE_ASSETS) - DAY_FIGURES - AssetSelection.checks(*AUDIT_ONLY)
)

patient_flow_job = define_asset_job(
    PIPELINE_JOB,
    selection=BATCH_SELECTION,
    tags={**WRITES_LAKE, **RETRY_FROM_FAILURE},
    description=(
        "Landing -> bronze -> silver (+ quarantine) -> gold dimensions, facts and KPIs: 5 steps, "
        "each evaluating the checks of its tables over what the batch touched (on Databricks, "
        "5 job runs per batch)."
    ),
)

# The figures the clock moves, alone, on the hour turn (schedules.census_clock): the census,
# current occupancy, and the day's figures (a local midnight passed, batches arrived).
patient_flow_clock_job = define_asset_job(
    CLOCK_JOB,
    selection=(
        AssetSelection.assets(DEPARTMENT_CENSUS_HOURLY.key, CURRENT_OCCUPANCY.key) | DAY_FIGURES
    )
    - AssetSelection.checks(*AUDIT_ONLY),
    tags=WRITES_LAKE,
    description="Move the hourly census and current occupancy to the current hour, and the "
    "figures per local day (midnight census, patient days, ED boarding, discharge timing, bed "
    "turnover, readmissions) to the batches landed and the midnights passed.",
)


# Rebuild silver and gold from bronze: drop their tables and checkpoints, then run as usual.
# Bronze keeps its history (landing files may have been cleaned up since); to rebuild it from the
# landing zone too, launch this job with `full_refresh: true` for bronze_patient_events as well.
FULL_REFRESH_STEPS = [assets.node_def.name for assets in LAKE_ASSETS[1:]]  # all but bronze
patient_flow_full_refresh_job = define_asset_job(
    "patient_flow_full_refresh",
    selection=AssetSelection.assets(*LAKE_ASSETS),
    config={"ops": {step: {"config": {"full_refresh": True}} for step in FULL_REFRESH_STEPS}},
    tags={**WRITES_LAKE, **RETRY_FROM_FAILURE},
    description="Rebuild silver (+ quarantine) and gold from bronze, from scratch.",
)

patient_flow_checks_job = define_asset_job(
    "patient_flow_checks",
    selection=AssetSelection.all_asset_checks(),
    description="Every quality check over its whole table, materializing nothing: the audit "
    "(nightly, schedules.nightly_audit).",
)


def build_definitions(settings: Settings | None = None) -> Definitions:
    settings = settings or Settings.from_env()
    return Definitions(
        assets=[LANDING, *map_asset_specs(with_freshness(settings), LAKE_ASSETS)],
        jobs=[
            patient_flow_job,
            patient_flow_full_refresh_job,
            patient_flow_checks_job,
            patient_flow_clock_job,
        ],
        schedules=[
            build_census_clock(patient_flow_clock_job),
            build_nightly_audit(patient_flow_checks_job),
        ],
        sensors=[
            build_landing_sensor(settings.sensor_interval),
            alert_on_failed_run,
            alert_on_quality,
        ],
        resources=resources_for(settings),
        executor=executor_for(settings),
    )


defs = build_definitions()
