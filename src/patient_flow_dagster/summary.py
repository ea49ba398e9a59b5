"""The demo's summary: what its runs wrote (rows per table, the silver reconciliation, the
encounters, quarantine per rule, the checks) and where to look next."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from patient_flow_dagster.model.tables import (
    FACT_ADMISSIONS,
    FACT_MOVEMENTS,
    QUARANTINE,
    SILVER_EVENTS,
)
from patient_flow_dagster.settings import Settings


def summary(settings: Settings, result, elapsed: float, log_file: Path | None) -> str:
    """Rows per table, the silver reconciliation and quarantine per rule, where things are."""
    status = "SUCCESS" if result.success else "FAILED"
    lines = [f"\nrun {result.run_id}: {status} in {elapsed:.1f} s", "", "rows per table:"]
    materialized = {}
    for event in result.get_asset_materialization_events():  # a table's latest, once
        mat = event.step_materialization_data.materialization
        materialized[mat.asset_key] = mat.metadata
    for key, metadata in materialized.items():
        rows = metadata.get("dagster/row_count")
        count = rows.value if rows is not None else "?"
        lines.append(f"  {key.to_user_string():45s} {count:>10}")
    if SILVER_EVENTS.key in materialized:
        silver = materialized[SILVER_EVENTS.key]
        lines += [
            "",
            "this run: bronze rows read = silver + quarantine + duplicates removed",
            f"  {silver['bronze_rows_read'].value} = {silver['silver_rows_added'].value} + "
            f"{silver['quarantined_rows_added'].value} + {silver['duplicates_removed'].value}",
        ]
    if FACT_ADMISSIONS.key in materialized and FACT_MOVEMENTS.key in materialized:
        fact, moves = materialized[FACT_ADMISSIONS.key], materialized[FACT_MOVEMENTS.key]
        waiting = next(
            (
                e.metadata["encounters_waiting"].value
                for e in result.get_asset_check_evaluations()
                if e.check_name == "encounters_waiting_for_admission"
            ),
            "?",
        )
        lines += [
            "",
            "encounters (one row each):",
            f"  {fact['dagster/row_count'].value} = {fact['currently_admitted'].value} admitted "
            f"+ {fact['discharged'].value} discharged + {fact['cancelled'].value} cancelled; "
            f"{fact['transfers'].value} transfers, {moves['dagster/row_count'].value} movements "
            f"({moves['open_segments'].value} open), {waiting} waiting for their admission",
        ]
    if QUARANTINE.key in materialized:
        lines += ["", "rows quarantined per rule (this run; a row can break several rules):"]
        for key, value in materialized[QUARANTINE.key].items():
            if key.startswith("quarantined/"):
                lines.append(f"  {key.split('/', 1)[1]:30s} {value.value:>8}")
    evaluations = sorted(
        result.get_asset_check_evaluations(),
        key=lambda e: (e.asset_key.to_user_string(), e.check_name),
    )
    if evaluations:
        failed = [e for e in evaluations if not e.passed]
        lines += [
            "",
            f"quality checks: {len(evaluations) - len(failed)} passed, {len(failed)} did not pass",
        ]
        passed = Counter(e.asset_key.path[0] for e in evaluations if e.passed)
        lines.append("  passed per layer: " + ", ".join(f"{k} {n}" for k, n in passed.items()))
        for evaluation in failed:
            figures = ""
            if "failed" in evaluation.metadata and "evaluated" in evaluation.metadata:
                figures = (
                    f"{evaluation.metadata['failed'].value}/"
                    f"{evaluation.metadata['evaluated'].value} rows"
                )
            lines.append(
                f"  {evaluation.asset_key.to_user_string():40s} "
                f"{evaluation.check_name} {evaluation.severity.value} {figures}"
            )
    lines += [
        "",
        f"lake:    {settings.lake_root}",
        f"landing: {settings.landing}",
        *([f"log:     {log_file}"] if log_file else []),
        "UI:      ./run dev   (dagster dev, then open http://127.0.0.1:3000)",
    ]
    return "\n".join(lines)
