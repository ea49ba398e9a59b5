"""The pipeline's steps as one plain PySpark script, without Dagster, and what checks a run.

The benchmark compares the Dagster run with this script; the JVM class archive and the warm
driver use it to warm a JVM up on a scratch batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from patient_flow_dagster import settings


def timed_steps(steps: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Run the steps in order; the seconds each took."""
    seconds = {}
    for name, step in steps.items():
        started = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - started
    return seconds


def count_problems(
    landed: int,
    bronze: int,
    distinct_ids: int,
    silver: int,
    quarantine: int,
    fact: int,
    encounters: int,
) -> list[str]:
    """What is wrong with a lake's row counts, if anything: bronze holds every landed row,
    silver + quarantine every distinct event id, the fact every admitted encounter of silver."""
    problems = []
    if bronze != landed:
        problems.append(f"bronze has {bronze} rows, {landed} landed")
    if silver + quarantine != distinct_ids:
        problems.append(
            f"silver + quarantine = {silver + quarantine} != distinct bronze event "
            f"ids {distinct_ids}"
        )
    if fact != encounters:
        problems.append(f"fact_admissions has {fact} rows for {encounters} admitted encounters")
    return problems


def run_bare(spark, lake, landing, run_id: str) -> dict[str, float]:
    """The same transforms and storage steps as the assets, called as one plain PySpark script
    (no Dagster run, no checks, no metadata)."""
    from patient_flow_dagster.assets.bronze import ingest_landing
    from patient_flow_dagster.assets.census import (
        update_census,
        write_current_occupancy,
    )
    from patient_flow_dagster.assets.common import side_by_side
    from patient_flow_dagster.assets.dimensions import (
        Inputs,
        update_dim_date,
        update_dim_department,
        update_dim_hospital,
        update_dim_patient,
    )
    from patient_flow_dagster.assets.gold import update_facts
    from patient_flow_dagster.assets.kpis import FACT_KPIS, KpiStep
    from patient_flow_dagster.assets.silver import process_new_bronze
    from patient_flow_dagster.model.reference import load

    def kpi_tables():  # like a batch's KPI step: a table per thread, census then occupancy on one
        step = KpiStep(spark, lake)

        def census_tables():
            update_census(spark, lake, datetime.now(timezone.utc))
            write_current_occupancy(spark, lake)

        list(
            side_by_side(
                lambda work: work(),
                [
                    *(lambda kpi=kpi: step.update(kpi) for kpi in FACT_KPIS.values()),
                    census_tables,
                ],
            )
        )

    inputs = Inputs(
        settings.read_set("PATIENT_FLOW_PSEUDONYM_KEY").encode(),
        load(settings.read("PATIENT_FLOW_REFERENCE_DIR")),
    )
    key = inputs.key
    steps = {
        "bronze": lambda: ingest_landing(spark, lake, landing, run_id),
        "silver": lambda: process_new_bronze(spark, lake, run_id),
        "dimensions": lambda: list(
            side_by_side(
                lambda update: update(spark, lake, inputs),
                [update_dim_patient, update_dim_department, update_dim_hospital, update_dim_date],
            )
        ),
        "facts": lambda: update_facts(spark, lake, key),
        "kpis": kpi_tables,
    }
    return timed_steps(steps)


def lake_resources(lake_root: Path, landing: Path) -> dict:
    from patient_flow_dagster.environments import resources_for
    from patient_flow_dagster.settings import Settings

    return resources_for(Settings.from_env().at(str(lake_root), str(landing)))


def land_events(
    events: int,
    seed: int,
    landing: Path,
    now: datetime,
    span_days: float,
    events_per_file: int,
    lifecycles: bool = False,
) -> int:
    """Simulated events into landing files: stay records, or with `lifecycles` ADT events."""
    from patient_flow_dagster.ingestion.landing_writer import write_events
    from patient_flow_dagster.ingestion.simulator import simulate, simulate_lifecycles

    generate = simulate_lifecycles if lifecycles else simulate
    sim = generate(events, seed=seed, now=now, span_days=span_days)
    write_events(sim.events, landing, events_per_file)
    return len(sim.events)


def run_small_batch(spark, workdir: Path, run_id: str) -> None:
    """The pipeline's steps once on a 2,000-event scratch batch under `workdir`: what warms a
    JVM up (the class archive's training run, the warm driver's warm-up)."""
    landing = workdir / "landing"
    land_events(2_000, 7, landing, datetime.now(timezone.utc), 30, 1_000)
    resources = lake_resources(workdir / "lake", landing)
    run_bare(spark, resources["lake"], resources["landing"], run_id)
