"""Events over a real Kafka broker (Apache Kafka jars, KRaft): produce, land, ingest, crash."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from patient_flow_dagster.assets.bronze import bronze_patient_events
from patient_flow_dagster.assets.silver import silver_patient_events
from patient_flow_dagster.ingestion.kafka_io import (
    LandingConsumer,
    client_config,
    publish,
)
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster_tests.conftest import recent_now
from patient_flow_devtools.local_kafka import kraft_cluster_id, local_kafka


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    with local_kafka(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


def test_cluster_ids_never_look_like_an_option():
    # 1 raw draw in 64 starts with '-', which StorageTool's parser takes for a flag.
    ids = {kraft_cluster_id() for _ in range(5_000)}
    assert len(ids) == 5_000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def landed_event_ids(folder: Path) -> list[str]:
    return [
        event_id
        for path in sorted(folder.glob("*.parquet"))
        for event_id in pq.read_table(path, columns=["event_id"]).column(0).to_pylist()
    ]


def test_20k_events_through_kafka_into_silver(kafka, lakehouse):
    sim = simulate(20_000, seed=71, now=recent_now(), span_days=20, dirty_rates={"duplicate": 0})
    config = client_config(kafka)
    assert publish(sim.events, config, "events-20k", progress=None) == 20_000
    consumer = LandingConsumer(
        config,
        "events-20k",
        str(lakehouse.landing_dir),
        str(lakehouse.root / "dead"),
        group="g20k",
        batch_events=4_000,
        batch_seconds=5,
    )
    stats = consumer.run(idle_seconds=8)
    assert stats.events == 20_000 and stats.dead_letters == 0
    assert sorted(landed_event_ids(lakehouse.landing_dir)) == sorted(
        e["event_id"] for e in sim.events
    )

    result = lakehouse.materialize([bronze_patient_events, silver_patient_events], checks=False)
    assert result.success
    bronze_ids = {r.event_id for r in lakehouse.table(t.BRONZE_EVENTS).collect()}
    assert bronze_ids == {e["event_id"] for e in sim.events}
    silver, quarantine = lakehouse.count(t.SILVER_EVENTS), lakehouse.count(t.QUARANTINE)
    assert silver + quarantine == 20_000
    assert quarantine == len(sim.expected_rule)


def test_poison_messages_go_to_the_dead_letter_file(kafka, tmp_path):
    good = simulate(50, seed=72, dirty_rates={"duplicate": 0}).events
    producer = Producer({"bootstrap.servers": kafka})
    poison = [
        b"not json {",
        b'["a", "list"]',
        json.dumps({**good[0], "age": "forty"}).encode(),
        json.dumps({**good[1], "event_id": 12345}).encode(),
    ]
    for value in poison[:2]:
        producer.produce("events-poison", value)
    for event in good[2:]:
        producer.produce("events-poison", json.dumps(event).encode())
    for value in poison[2:]:
        producer.produce("events-poison", value)
    producer.flush(30)
    landing, dead = tmp_path / "landing", tmp_path / "dead"
    stats = LandingConsumer(
        client_config(kafka),
        "events-poison",
        str(landing),
        str(dead),
        group="gpoison",
        batch_seconds=2,
    ).run(idle_seconds=6)
    assert stats.events == 48 and stats.dead_letters == 4
    letters = [json.loads(line) for path in dead.glob("*.jsonl") for line in path.open()]
    reasons = sorted(letter["reason"].split(":")[0] for letter in letters)
    assert reasons == ["field age", "field event_id", "not JSON", "not a JSON object but list"]
    assert all({"partition", "offset", "value"} <= set(letter) for letter in letters)
    assert sorted(landed_event_ids(landing)) == sorted(e["event_id"] for e in good[2:])


def test_sigkill_of_the_consumer_loses_nothing(kafka, lakehouse):
    sim = simulate(12_000, seed=73, now=recent_now(), span_days=20, dirty_rates={"duplicate": 0})
    publish(sim.events, client_config(kafka), "events-crash", progress=None)
    patient_flow = Path(sys.executable).with_name("patient-flow")
    command = [
        str(patient_flow),
        "ingest",
        "--from",
        "kafka",
        "--bootstrap",
        kafka,
        "--topic",
        "events-crash",
        "--group",
        "gcrash",
        "--landing",
        str(lakehouse.landing_dir),
        "--dead-letter",
        str(lakehouse.root / "dead"),
        "--batch-events",
        "1000",
        "--batch-seconds",
        "30",
    ]
    first = subprocess.Popen(
        [*command, "--idle-exit", "30"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(list(lakehouse.landing_dir.glob("*.parquet"))) < 3:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    files_at_kill = len(list(lakehouse.landing_dir.glob("*.parquet")))
    assert files_at_kill < 12, "the consumer finished before it could be killed"

    subprocess.run(
        [*command, "--idle-exit", "6"],
        check=True,
        timeout=180,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    landed = landed_event_ids(lakehouse.landing_dir)
    assert set(landed) == {e["event_id"] for e in sim.events}  # every event at least once

    # A redelivery that surely happens: a second consumer group reads the topic from the start
    # and lands every event again (as a consumer restored to an old offset would).
    replay = [part if part != "gcrash" else "gcrash-replay" for part in command]
    subprocess.run(
        [*replay, "--idle-exit", "6"],
        check=True,
        timeout=180,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    landed = landed_event_ids(lakehouse.landing_dir)
    assert len(landed) >= 2 * len(sim.events)

    assert lakehouse.materialize(
        [bronze_patient_events, silver_patient_events], checks=False
    ).success
    assert lakehouse.count(t.BRONZE_EVENTS) == len(landed)  # redeliveries included
    silver, quarantine = lakehouse.count(t.SILVER_EVENTS), lakehouse.count(t.QUARANTINE)
    assert silver + quarantine == len(sim.events)  # ... and each event once in silver
    ids = lakehouse.table(t.SILVER_EVENTS).select("event_id")
    assert ids.distinct().count() == silver
