"""A bounded landing zone: ingested and rejected files move to the archive after the retention,
the sensor no longer lists them, and the ledger still accounts for every version."""

import os
import time

import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from patient_flow_dagster.assets.bronze import bronze_patient_events
from patient_flow_dagster.environments import landing_zone
from patient_flow_dagster.ingestion.landing_writer import (
    events_table,
    write_landing_file,
)
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.resources.landing import LandingFile, LocalLandingZone
from patient_flow_dagster.sensors import load_cursor, new_files
from patient_flow_dagster.settings import Settings, SettingsError
from patient_flow_dagster_tests.conftest import recent_now


def bronze_run(house, retention_hours, full_refresh=False):
    landing = LocalLandingZone(path=str(house.landing_dir), retention_hours=retention_hours)
    refresh = {"ops": {"bronze_patient_events": {"config": {"full_refresh": True}}}}
    result = materialize(
        [bronze_patient_events],
        resources={**house.resources(), "landing": landing},
        run_config=refresh if full_refresh else None,
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    [mat] = result.asset_materializations_for_node("bronze_patient_events")
    [check] = result.get_asset_check_evaluations()
    return landing, mat.metadata, check


def audit_landing(house, landing):
    """The landing check over the whole ledger, nothing written (as the nightly audit runs it)."""
    result = materialize(
        [bronze_patient_events],
        selection=AssetSelection.all_asset_checks(),
        resources={**house.resources(), "landing": landing},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success and not result.get_asset_materialization_events()
    [check] = result.get_asset_check_evaluations()
    return check


def test_ingested_and_rejected_files_move_to_the_archive_and_the_ledger_keeps_them(lakehouse):
    events = simulate(90, seed=5, now=recent_now()).events
    folder = lakehouse.landing_dir
    write_landing_file(events_table(events[:30]), folder, "a.parquet")
    write_landing_file(events_table(events[30:60]), folder, "b.parquet")
    (folder / "c-damaged.parquet").write_bytes(b"PAR1 not parquet")

    # Within the retention: ingested, still in the landing zone.
    landing, metadata, _ = bronze_run(lakehouse, retention_hours=24)
    assert metadata["files_archived"].value == 0
    assert sorted(f.name for f in landing.list_files()) == [
        "a.parquet",
        "b.parquet",
        "c-damaged.parquet",
    ]

    # Past it (retention 0): everything audited moves; the sensor lists nothing new.
    landing, metadata, check = bronze_run(lakehouse, retention_hours=0)
    assert metadata["files_archived"].value == 3
    assert landing.list_files() == []
    assert new_files(landing.list_files(), load_cursor(None)) == []
    archive = folder.parent / "patient_events_archive"
    ledger = {r.file_name: r for r in lakehouse.table(t.LANDING_FILES).collect()}
    damaged_version = f"{ledger['c-damaged.parquet'].file_modified.timestamp() * 1e6:.0f}"
    assert {name: r.archived_as for name, r in ledger.items()} == {
        "a.parquet": "batch-00000001/a.parquet",
        "b.parquet": "batch-00000001/b.parquet",
        "c-damaged.parquet": f"rejected/{damaged_version}-c-damaged.parquet",
    }
    for row in ledger.values():
        assert (archive / row.archived_as).is_file()
    # Bronze and the check still account for every archived file's rows: this run's check had
    # no version of its own to account for, the audit (checks only) finds both files whole.
    assert lakehouse.count(t.BRONZE_EVENTS) == 60
    assert check.metadata["files_ingested"].value == 0
    audit = audit_landing(lakehouse, landing)
    assert audit.metadata["files_ingested"].value == 2
    assert audit.metadata["files_with_missing_rows"].value == 0
    assert audit.metadata["file_versions_audited"].value == 3

    # A file rewritten under an archived name is a new version: ingested, then archived apart.
    write_landing_file(events_table(events[60:90]), folder, "a.parquet")
    os.utime(folder / "a.parquet", (time.time() + 5, time.time() + 5))
    landing, metadata, check = bronze_run(lakehouse, retention_hours=0)
    assert metadata["rows_ingested_this_run"].value == 30
    assert metadata["files_archived"].value == 1
    versions = sorted(
        r.archived_as
        for r in lakehouse.table(t.LANDING_FILES).collect()
        if r.file_name == "a.parquet"
    )
    assert versions == ["batch-00000001/a.parquet", "batch-00000002/a.parquet"]
    assert lakehouse.count(t.BRONZE_EVENTS) == 90
    assert check.passed or check.metadata["files_rejected"].value == 1
    assert check.metadata["files_with_missing_rows"].value == 0

    # Rebuilding bronze from the landing zone (full refresh) reads the archived files too: the
    # archive comes back first (both versions of a.parquet, one under a name of its own).
    before = sorted(tuple(r) for r in lakehouse.table(t.BRONZE_EVENTS).select("event_id").collect())
    landing, metadata, check = bronze_run(lakehouse, retention_hours=24, full_refresh=True)
    assert (
        sorted(tuple(r) for r in lakehouse.table(t.BRONZE_EVENTS).select("event_id").collect())
        == before
    )
    names = sorted(f.name for f in landing.list_files())
    assert names[:3] == ["a.parquet", "b.parquet", "c-damaged.parquet"] and len(names) == 4
    assert names[3] in ("restored-batch-00000001-a.parquet", "restored-batch-00000002-a.parquet")
    assert check.metadata["files_with_missing_rows"].value == 0
    assert not any(archive.rglob("*.parquet"))


def test_a_move_whose_ledger_note_was_lost_is_completed_by_the_next_run(lakehouse):
    """A crash between the move and the ledger's note: the next run finds the file in the
    archive and notes it, moving nothing twice."""
    events = simulate(20, seed=6, now=recent_now()).events
    write_landing_file(events_table(events), lakehouse.landing_dir, "a.parquet")
    bronze_run(lakehouse, retention_hours=24)
    landing = LocalLandingZone(path=str(lakehouse.landing_dir), retention_hours=0)
    [version] = landing.list_files()
    stale = LandingFile(version.name, version.size + 1, version.modified)
    assert not landing.move_to_archive(stale, "batch-00000001/a.parquet")  # not that version
    # the crashed run's move
    assert landing.move_to_archive(version, "batch-00000001/a.parquet")
    _, metadata, _ = bronze_run(lakehouse, retention_hours=0)
    assert metadata["files_archived"].value == 0
    [row] = lakehouse.table(t.LANDING_FILES).collect()
    assert row.archived_as == "batch-00000001/a.parquet" and row.status == "ingested"


def test_auto_loader_archives_to_the_same_place_after_the_same_retention():
    """On Databricks, Auto Loader moves its own files (cloudFiles.cleanSource=MOVE); the
    settings give it the archive and retention bronze uses locally."""
    zone = landing_zone(
        Settings.from_env(
            {
                "PATIENT_FLOW_ENV": "databricks",
                "PATIENT_FLOW_PSEUDONYM_KEY": "a deployment key",
                "PATIENT_FLOW_LANDING": "abfss://landing@acct.dfs.core.windows.net/patient_events",
                "PATIENT_FLOW_LANDING_SCHEMAS": "abfss://landing@acct.dfs.core.windows.net/_schemas",
                "PATIENT_FLOW_LANDING_RETENTION_HOURS": "36",
            }
        )
    )
    options = zone.autoloader_options()
    assert (
        options["cloudFiles.cleanSource"],
        options["cloudFiles.cleanSource.moveDestination"],
        options["cloudFiles.cleanSource.retentionDuration"],
    ) == (
        "MOVE",
        "abfss://landing@acct.dfs.core.windows.net/patient_events_archive/",
        "2160 minutes",
    )
    off = landing_zone(
        Settings.from_env(
            {
                "PATIENT_FLOW_ENV": "databricks",
                "PATIENT_FLOW_PSEUDONYM_KEY": "a deployment key",
                "PATIENT_FLOW_LANDING_RETENTION_HOURS": "off",
                "PATIENT_FLOW_LANDING": "abfss://landing@acct.dfs.core.windows.net/patient_events",
                "PATIENT_FLOW_LANDING_SCHEMAS": "abfss://landing@acct.dfs.core.windows.net/_schemas",
            }
        )
    )
    assert "cloudFiles.cleanSource" not in off.autoloader_options()
    with pytest.raises(SettingsError, match="PATIENT_FLOW_LANDING_RETENTION_HOURS='soon'"):
        Settings.from_env({"PATIENT_FLOW_LANDING_RETENTION_HOURS": "soon"})


def test_a_version_rewritten_before_its_retention_ended_is_noted_gone(lakehouse):
    """The ledger's version of x.parquet was overwritten in the landing zone before it was due:
    the new version is ingested, then archived; the old one is noted as gone, not moved."""
    events = simulate(20, seed=7, now=recent_now()).events
    folder = lakehouse.landing_dir
    write_landing_file(events_table(events[:10]), folder, "x.parquet")
    bronze_run(lakehouse, retention_hours=24)
    write_landing_file(events_table(events[10:]), folder, "x.parquet")
    os.utime(folder / "x.parquet", (time.time() + 5, time.time() + 5))
    _, metadata, _ = bronze_run(lakehouse, retention_hours=0)
    assert metadata["files_archived"].value == 1
    notes = sorted((r.batch, r.archived_as) for r in lakehouse.table(t.LANDING_FILES).collect())
    assert notes == [(1, "-"), (2, "batch-00000002/x.parquet")]
    assert lakehouse.count(t.BRONZE_EVENTS) == 20
