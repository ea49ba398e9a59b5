"""Events over Event Hubs' native AMQP protocol: the azure-eventhub SDK (producer, load-balanced
consumers with a Blob checkpoint store on Azurite) against the local AMQP endpoint."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from azure.eventhub._pyamqp import ReceiveClient
from azure.eventhub._pyamqp.authentication import SASTokenAuth
from azure.eventhub._pyamqp.error import AMQPLinkError
from azure.storage.blob import ContainerClient

from patient_flow_dagster.assets.bronze import bronze_patient_events
from patient_flow_dagster.assets.silver import silver_patient_events
from patient_flow_dagster.ingestion.eventhubs_amqp import (
    EventHubsConfigError,
    EventHubsLandingConsumer,
    EventHubsTarget,
    checkpoint_store_from_env,
    publish,
)
from patient_flow_dagster.ingestion.simulator import simulate
from patient_flow_dagster.model import tables as t
from patient_flow_dagster_tests import services
from patient_flow_dagster_tests.conftest import recent_now
from patient_flow_dagster_tests.eventhubs_endpoint import KEY, POLICY, EventHubsEndpoint
from patient_flow_dagster_tests.services import free_port
from patient_flow_dagster_tests.test_kafka import landed_event_ids

HUB = "patient-events"
PATIENT_FLOW = str(Path(sys.executable).with_name("patient-flow"))


@pytest.fixture(scope="module")
def endpoint():
    server = EventHubsEndpoint(free_port(), HUB, partitions=4).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with services.azurite(
        tmp_path_factory.mktemp("azurite"), port=free_port()
    ) as connection_string:
        yield connection_string


def consumer_env(endpoint, azurite, container: str) -> dict:
    return {
        **os.environ,
        "EVENTHUBS_CONNECTION_STRING": endpoint.connection_string,
        "AZURE_STORAGE_CONNECTION_STRING": azurite,
        "EVENTHUBS_CHECKPOINT_CONTAINER": container,
    }


def records(azurite: str, container: str, kind: str) -> dict[str, dict]:
    """partition id -> metadata of the checkpoint store's ownership or checkpoint blobs."""
    client = ContainerClient.from_connection_string(azurite, container)
    try:
        return {
            blob.name.rsplit("/", 1)[1]: blob.metadata
            for blob in client.list_blobs(include=["metadata"])
            if f"/{kind}/" in blob.name
        }
    except ResourceNotFoundError:  # no consumer has created the container yet
        return {}


def owners(azurite: str) -> set[str]:
    """The consumers that own partitions now (a released partition has no owner)."""
    return {
        r["ownerid"]
        for r in records(azurite, "checkpoints-split", "ownership").values()
        if r.get("ownerid")
    }


def test_two_consumers_split_the_hub_and_one_takes_over_after_sigkill(endpoint, azurite, lakehouse):
    sim = simulate(10_000, seed=91, now=recent_now(), span_days=20, dirty_rates={"duplicate": 0})
    env = consumer_env(endpoint, azurite, "checkpoints-split")
    command = [
        PATIENT_FLOW,
        "ingest",
        "--from",
        "eventhubs-amqp",
        "--landing",
        str(lakehouse.landing_dir),
        "--dead-letter",
        str(lakehouse.root / "dead"),
        "--batch-events",
        "400",
        "--batch-seconds",
        "1",
        "--balance-seconds",
        "1",
        "--idle-exit",
        "10",
    ]
    consumers = [
        subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    target = EventHubsTarget(HUB, connection_string=endpoint.connection_string)
    first_half, second_half = sim.events[:5_000], sim.events[5_000:]
    publisher = threading.Thread(
        target=publish, args=(first_half, target), kwargs={"rate": 2_000, "progress": None}
    )
    try:
        publisher.start()
        deadline = time.monotonic() + 90
        # Both consumers own partitions and have landed files: kill one mid-stream.
        # One read both tests and records the split: under load a consumer may miss a renewal and
        # lose its partitions a moment later, so a second read could see one owner.
        while (
            len(owners_before := owners(azurite)) < 2
            or len(list(lakehouse.landing_dir.glob("*.parquet"))) < 4
        ):
            assert time.monotonic() < deadline, "the two consumers never split the partitions"
            time.sleep(0.1)
        victim, survivor = consumers
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        publisher.join(60)
        # The second half lands on every partition, the victim's too: only a takeover reads it.
        publish(second_half, target, progress=None)
        # The survivor claims the victim's partitions once their ownership expires (3 x 1 s).
        while (
            len(owners(azurite)) != 1
            or len(records(azurite, "checkpoints-split", "ownership")) != 4
            or any(
                not r.get("ownerid")
                for r in records(azurite, "checkpoints-split", "ownership").values()
            )
        ):
            assert time.monotonic() < deadline, "nobody took over the killed consumer's partitions"
            time.sleep(0.2)
        owners_after = owners(azurite)
        _, errors = survivor.communicate(timeout=120)
        assert survivor.returncode == 0, errors
    finally:
        for process in consumers:
            services.stop_group(process)

    assert len(owners_before) == 2 and len(owners_after) == 1 and owners_after < owners_before

    landed = landed_event_ids(lakehouse.landing_dir)
    assert set(landed) == {e["event_id"] for e in sim.events}  # every event at least once
    checkpoints = records(azurite, "checkpoints-split", "checkpoint")
    client = EventHubConsumerClient.from_connection_string(endpoint.connection_string, "$Default")
    with client:
        for partition in client.get_partition_ids():
            last = client.get_partition_properties(partition)
            assert checkpoints[partition]["offset"] == last["last_enqueued_offset"]
            assert (
                int(checkpoints[partition]["sequencenumber"])
                == last["last_enqueued_sequence_number"]
            )

    # A redelivery that surely happens: a consumer without checkpoints (a store restored from an
    # old backup) reads every partition from the start and lands every event again.
    replay = consumer_env(endpoint, azurite, "checkpoints-replay")
    subprocess.run(
        [*command[:-1], "5"],
        env=replay,
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
    assert silver + quarantine == len(sim.events)  # ... and each event exactly once after silver
    assert quarantine == len(sim.expected_rule)
    assert lakehouse.table(t.SILVER_EVENTS).select("event_id").distinct().count() == silver


def test_a_patients_events_share_one_partition_in_order(endpoint):
    sim = simulate(300, seed=92, dirty_rates={"duplicate": 0})
    client = EventHubConsumerClient.from_connection_string(
        endpoint.connection_string, "$Default", load_balancing_interval=1
    )
    start = {
        p: client.get_partition_properties(p)["last_enqueued_sequence_number"]
        for p in client.get_partition_ids()
    }  # read only what this test publishes
    assert (
        publish(
            sim.events,
            EventHubsTarget(HUB, connection_string=endpoint.connection_string),
            progress=None,
        )
        == 300
    )
    received, lock = [], threading.Lock()

    def on_batch(context, events):
        with lock:
            received.extend(
                (
                    context.partition_id,
                    event.sequence_number,
                    event.partition_key,
                    event.body_as_json(),
                )
                for event in events
            )

    ours = {e["event_id"] for e in sim.events}
    worker = threading.Thread(
        target=client.receive_batch,
        kwargs=dict(on_event_batch=on_batch, max_batch_size=100, starting_position=start),
    )
    worker.start()
    deadline = time.monotonic() + 30
    while (
        sum(r[3]["event_id"] in ours for r in list(received)) < 300 and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    client.close()
    worker.join(30)
    mine = [r for r in received if r[3]["event_id"] in ours]
    assert len(mine) == 300
    by_patient: dict[str, set] = {}
    for partition, _, key, event in mine:
        if event.get("patient_id"):
            assert key == event["patient_id"].encode()
            by_patient.setdefault(event["patient_id"], set()).add(partition)
    assert all(len(partitions) == 1 for partitions in by_patient.values())
    assert len({p for partitions in by_patient.values() for p in partitions}) == 4
    order = {e["event_id"]: i for i, e in enumerate(sim.events)}
    for patient in by_patient:
        sent = [r for r in mine if r[3].get("patient_id") == patient]
        assert [order[r[3]["event_id"]] for r in sorted(sent, key=lambda r: r[1])] == sorted(
            order[r[3]["event_id"]] for r in sent
        )


@pytest.mark.faults
def test_a_wrong_key_is_a_clear_error_that_does_not_echo_it(endpoint, azurite, tmp_path):
    secret = "Wr0ngKeyDoNotPrintMe"
    wrong = endpoint.connection_string.replace("local-endpoint-test-key", secret)
    env = {
        **consumer_env(endpoint, azurite, "checkpoints-wrong"),
        "EVENTHUBS_CONNECTION_STRING": wrong,
    }
    run = subprocess.run(
        [
            PATIENT_FLOW,
            "ingest",
            "--from",
            "eventhubs-amqp",
            "--landing",
            str(tmp_path / "landing"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "Event Hubs refused the connection" in run.stderr and "InvalidSignature" in run.stderr
    assert secret not in run.stderr + run.stdout
    env["EVENTHUBS_CONNECTION_STRING"] = f"Endpoint=http://nowhere;SharedAccessKey={secret}"
    run = subprocess.run(
        [PATIENT_FLOW, "simulate", "--to", "eventhubs-amqp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "not an Event Hubs connection string" in run.stderr
    assert secret not in run.stderr


def test_an_unknown_hub_is_not_found(endpoint):
    client = EventHubConsumerClient.from_connection_string(
        endpoint.connection_string, "$Default", eventhub_name="no-such-hub", retry_total=0
    )
    with client, pytest.raises(Exception, match="Status code: 404"):
        client.get_partition_ids()


@pytest.mark.parametrize(
    "path, refusal",
    [
        (f"{HUB}/ConsumerGroups/$Default/Partitions/7", "partition '7' could not be found"),
        (
            f"{HUB}/ConsumerGroups/no-such-group/Partitions/0",
            "ConsumerGroups/no-such-group' could not be found",
        ),
        ("no-such-hub/ConsumerGroups/$Default/Partitions/0", "'no-such-hub' could not be found"),
    ],
)
def test_receive_links_the_service_would_refuse_are_refused(endpoint, path, refusal):
    """The public clients check partition ids before they attach, so this goes one level down,
    to the SDK's own AMQP client, to see the endpoint's answer on the wire."""
    address = f"amqp://127.0.0.1:{endpoint.port}/{path}"
    auth = SASTokenAuth(
        address, f"sb://127.0.0.1:{endpoint.port}/{HUB}", username=POLICY, password=KEY
    )
    client = ReceiveClient(f"127.0.0.1:{endpoint.port}", address, auth=auth, use_tls=False)
    try:
        with pytest.raises(AMQPLinkError, match="amqp:not-found") as refused:
            client.receive_message_batch(max_batch_size=1, timeout=5)
        assert refusal in str(refused.value)
    finally:
        client.close()


def test_malformed_events_go_to_the_dead_letter_file_with_their_position(
    endpoint, azurite, tmp_path, monkeypatch
):
    """The same dead-letter handling as the Kafka consumer (shared LandingBatch), with the Event
    Hubs position (partition, offset, sequence number) of each rejected event."""
    good = simulate(30, seed=93, dirty_rates={"duplicate": 0}).events
    producer = EventHubProducerClient.from_connection_string(endpoint.connection_string)
    with producer:
        batch = producer.create_batch(partition_id="2")
        for body in (
            b"not json {",
            b'["a", "list"]',
            json.dumps({**good[0], "age": "forty"}).encode(),
        ):
            batch.add(EventData(body))
        for event in good[1:]:
            batch.add(EventData(json.dumps(event)))
        producer.send_batch(batch)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    monkeypatch.setenv("EVENTHUBS_CHECKPOINT_CONTAINER", "checkpoints-poison")
    landing, dead = tmp_path / "landing", tmp_path / "dead"
    client = EventHubConsumerClient.from_connection_string(endpoint.connection_string, "$Default")
    with client:
        last = client.get_partition_properties("2")["last_enqueued_sequence_number"]
    consumer = EventHubsLandingConsumer(
        EventHubsTarget(HUB, connection_string=endpoint.connection_string),
        str(landing),
        str(dead),
        batch_seconds=1,
        checkpoint_store=checkpoint_store_from_env(),
        load_balancing_interval=1,
    )
    stats = consumer.run(idle_seconds=4)
    mine = [e for e in landed_event_ids(landing) if e in {g["event_id"] for g in good}]
    assert sorted(mine) == sorted(e["event_id"] for e in good[1:])
    letters = [json.loads(line) for path in dead.glob("*.jsonl") for line in path.open()]
    ours = [
        letter
        for letter in letters
        if letter["partition"] == "2" and letter["sequence_number"] > last - 32
    ]
    assert sorted(letter["reason"].split(":")[0] for letter in ours) == [
        "field age",
        "not JSON",
        "not a JSON object but list",
    ]
    assert all(letter["topic"] == HUB and letter["offset"] for letter in ours)
    assert stats.dead_letters >= 3


def test_without_a_connection_string_the_namespace_uses_azure_identity(monkeypatch):
    monkeypatch.delenv("EVENTHUBS_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("EVENTHUBS_NAMESPACE", "contoso-health.servicebus.windows.net")
    target = EventHubsTarget.from_env("patient-events")
    assert target == EventHubsTarget(
        "patient-events", namespace="contoso-health.servicebus.windows.net"
    )
    producer = target.producer()  # no connection yet: the credential is used on first send
    assert type(producer._credential).__name__ == "DefaultAzureCredential"
    producer.close()
    monkeypatch.delenv("EVENTHUBS_NAMESPACE")
    with pytest.raises(EventHubsConfigError, match="EVENTHUBS_CONNECTION_STRING"):
        EventHubsTarget.from_env("patient-events")


@pytest.mark.faults
def test_unreachable_namespace_or_checkpoint_store_is_one_line_and_exit_2(azurite, tmp_path):
    refused = free_port()  # nothing listens there
    namespace = (
        f"Endpoint=sb://127.0.0.1:{refused};SharedAccessKeyName={POLICY};"
        f"SharedAccessKey={KEY};EntityPath={HUB};UseDevelopmentEmulator=true"
    )
    no_store = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        + azurite.split("AccountKey=")[1].split(";")[0]
        + f";BlobEndpoint=http://127.0.0.1:{refused}/devstoreaccount1;"
    )
    for connection, store, said in [
        (namespace, azurite, f"127.0.0.1:{refused}"),
        (namespace, no_store, f"the checkpoint store 127.0.0.1:{refused}/devstoreaccount1/"),
    ]:
        env = {
            **os.environ,
            "EVENTHUBS_CONNECTION_STRING": connection,
            "AZURE_STORAGE_CONNECTION_STRING": store,
            "PATIENT_FLOW_BROKER_TIMEOUT": "5",
            "EVENTHUBS_CHECKPOINT_CONTAINER": "checkpoints-unreachable",
        }
        started = time.monotonic()
        run = subprocess.run(
            [
                PATIENT_FLOW,
                "ingest",
                "--from",
                "eventhubs-amqp",
                "--landing",
                str(tmp_path / "landing"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert time.monotonic() - started < 30
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
        assert said in lines[0], lines[0]
        assert KEY not in run.stderr
