"""The landing zone in Azure Blob Storage (Azurite): sensor ticks and Spark reading the blobs."""

import pytest
from azure.storage.blob import BlobServiceClient
from dagster import DagsterInstance, build_sensor_context

from patient_flow_dagster.assets.bronze import bronze_patient_events
from patient_flow_dagster.assets.silver import silver_patient_events
from patient_flow_dagster.environments import landing_zone
from patient_flow_dagster.ingestion.landing_writer import (
    events_table,
    landing_sink,
    write_events,
)
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster.resources.azure_landing import AzureBlobLandingZone
from patient_flow_dagster.resources.landing import LandingFile
from patient_flow_dagster.sensors import build_landing_sensor
from patient_flow_dagster.settings import Settings
from patient_flow_dagster_tests import services
from patient_flow_dagster_tests.conftest import recent_now

landing_sensor = build_landing_sensor(Settings.from_env({}).sensor_interval)

URL = "wasb://landing@storageemulator/patient_events"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with services.azurite(tmp_path_factory.mktemp("azurite")) as connection_string:
        yield connection_string


@pytest.fixture
def azure_env(azurite, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    service = BlobServiceClient.from_connection_string(azurite)
    container = service.get_container_client("landing")
    if container.exists():
        container.delete_container()
    container.create_container()
    return container


def test_environment_picks_the_azure_store_for_a_blob_url():
    zone = landing_zone(Settings.from_env({"PATIENT_FLOW_LANDING": URL}))
    assert isinstance(zone, AzureBlobLandingZone)
    assert (zone.container, zone.prefix) == ("landing", "patient_events/")


def test_sensor_over_blob_storage(azure_env, azurite):
    instance = DagsterInstance.ephemeral()
    resources = {"landing": AzureBlobLandingZone(url=URL, connection_string=azurite)}

    def tick(cursor=None):
        return landing_sensor.evaluate_tick(
            build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        )

    assert "no new files" in tick().skip_message
    write = landing_sink(URL)
    table = events_table(simulate(5, seed=1).events)
    for name in ("a.parquet", "b.parquet", "c.parquet"):
        write(table, name)
    azure_env.upload_blob("patient_events/.d.parquet.tmp", b"uncommitted")
    azure_env.upload_blob("other/x.parquet", b"outside the prefix")
    first = tick()
    [request] = first.run_requests
    assert request.tags["patient_flow/files"] == "a.parquet, b.parquet, c.parquet"
    assert tick().run_requests[0].run_key == request.run_key
    assert not tick(first.cursor).run_requests
    for name in ("e.parquet", "f.parquet"):
        write(table, name)
    second = tick(first.cursor)
    assert second.run_requests[0].tags["patient_flow/files"] == "e.parquet, f.parquet"
    assert not tick(second.cursor).run_requests


def test_bronze_and_silver_read_the_blobs_through_spark(azure_env, azurite, lakehouse):
    sim = simulate(600, seed=51, now=recent_now(), span_days=20)
    write_events(sim.events, URL, events_per_file=250)
    azure_env.upload_blob("patient_events/zz-broken.parquet", b"not parquet at all")
    resources = {
        **lakehouse.resources(),
        "landing": AzureBlobLandingZone(url=URL, connection_string=azurite),
    }
    from dagster import materialize

    result = materialize(
        [bronze_patient_events, silver_patient_events],
        resources=resources,
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    bronze = lakehouse.table(t.BRONZE_EVENTS)
    assert bronze.count() == 600
    assert (
        bronze.filter(bronze.source_file.startswith("wasb://landing@storageemulator/")).count()
        == 600
    )
    audit = {r.file_name: r.status for r in lakehouse.table(t.LANDING_FILES).collect()}
    assert len(audit) == 4 and audit["zz-broken.parquet"] == "rejected"
    silver, quarantine = lakehouse.count(t.SILVER_EVENTS), lakehouse.count(t.QUARANTINE)
    assert silver + quarantine + sim.duplicates == 600


def test_archived_blobs_leave_the_listing_and_keep_their_bytes(azure_env, azurite):
    """The archive is a prefix beside the landing prefix: a moved blob is copied server-side,
    deleted from landing, and no longer listed."""
    zone = AzureBlobLandingZone(url=URL, connection_string=azurite)
    assert zone.archive_location == "wasb://landing@storageemulator/patient_events_archive/"
    write = landing_sink(URL)
    write(events_table(simulate(5, seed=2).events), "a.parquet")
    write(events_table(simulate(5, seed=3).events), "b.parquet")
    original = azure_env.download_blob("patient_events/a.parquet").readall()
    listed = {f.name: f for f in zone.list_files()}
    # A version the ledger holds that is no longer the blob's (rewritten since) stays put.
    older = LandingFile("b.parquet", listed["b.parquet"].size + 1, listed["b.parquet"].modified)
    assert not zone.move_to_archive(older, "batch-00000001/b.parquet")
    assert zone.move_to_archive(listed["a.parquet"], "batch-00000001/a.parquet")
    assert [f.name for f in zone.list_files()] == ["b.parquet"]
    assert zone.in_archive("batch-00000001/a.parquet")
    assert not zone.in_archive("batch-00000001/b.parquet")
    assert (
        azure_env.download_blob("patient_events_archive/batch-00000001/a.parquet").readall()
        == original
    )
    # A full refresh of bronze brings it back first.
    zone.restore("batch-00000001/a.parquet", "a.parquet")
    assert [f.name for f in zone.list_files()] == ["a.parquet", "b.parquet"]
    assert not zone.in_archive("batch-00000001/a.parquet")
    assert azure_env.download_blob("patient_events/a.parquet").readall() == original
    # At the container's root the archive is its own prefix, which the listing skips.
    root = AzureBlobLandingZone(url="wasb://landing@storageemulator/", connection_string=azurite)
    write_root = landing_sink("wasb://landing@storageemulator/")
    write_root(events_table(simulate(5, seed=4).events), "c.parquet")
    [c] = root.list_files()
    assert root.move_to_archive(c, "batch-00000002/c.parquet")
    assert root.in_archive("batch-00000002/c.parquet")
    assert [f.name for f in root.list_files()] == []
