"""Patient events over Azure Event Hubs' native AMQP protocol, with the azure-eventhub SDK.

Publishing: `EventHubProducerClient`, events as JSON, one `create_batch` per partition. Event Hubs
hashes a partition key to a partition, and a batch carries one key, so a batch per patient would
mean a round trip per one or two events. The publisher resolves each patient_id's partition with
the SDK's implementation of the service's hash (what the SDK's buffered mode does) and keeps the
key on every event (`x-opt-partition-key`): a patient's events stay in one partition, in order,
exactly where a keyed send would have put them, at one round trip per full batch.

Consuming: `EventHubConsumerClient` + `BlobCheckpointStore` balances the partitions across every
consumer process of a consumer group (ownership records in Blob storage; a crashed consumer's
partitions are claimed by the others once its ownership expires). Each partition's events are
batched into landing Parquet files by the same code as the Kafka consumer
(`landing_batch.LandingBatch`), and the partition's checkpoint is updated only after its file is
committed: at-least-once into landing, exactly once into silver (event_id dedupe).

Credentials come from the environment, never from arguments or code:
- EVENTHUBS_CONNECTION_STRING (SAS), or EVENTHUBS_NAMESPACE (`<ns>.servicebus.windows.net`) with
  `DefaultAzureCredential` (managed identity, workload identity, Azure CLI login...);
- checkpoints: AZURE_STORAGE_CONNECTION_STRING, or EVENTHUBS_CHECKPOINT_ACCOUNT_URL with
  `DefaultAzureCredential`; container EVENTHUBS_CHECKPOINT_CONTAINER (default
  `eventhubs-checkpoints`, created when missing).
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass

from patient_flow_dagster import settings
from patient_flow_dagster.ingestion.landing_batch import (
    ConsumerStats,
    LandingBatch,
    OncePerInterval,
    within,
)
from patient_flow_dagster.ingestion.landing_writer import landing_sink
from patient_flow_dagster.model.contract import partition_key

CONNECTION_ENV, NAMESPACE_ENV = "EVENTHUBS_CONNECTION_STRING", "EVENTHUBS_NAMESPACE"
CHECKPOINT_URL_ENV, CHECKPOINT_CONTAINER_ENV = (
    "EVENTHUBS_CHECKPOINT_ACCOUNT_URL",
    "EVENTHUBS_CHECKPOINT_CONTAINER",
)
_SECRETS = re.compile(r"(SharedAccessKey|AccountKey|sig|SharedAccessSignature)=[^;&\s'\"]+", re.I)


class EventHubsConfigError(RuntimeError):
    """Missing or rejected Event Hubs settings; the message never contains a secret."""


def redact(message: str) -> str:
    return _SECRETS.sub(lambda m: f"{m.group(1)}=***", message)


@dataclass(frozen=True)
class EventHubsTarget:
    """Where and as whom: built from the environment by `from_env`."""

    hub: str
    connection_string: str | None = None
    namespace: str | None = None

    @classmethod
    def from_env(cls, hub: str | None) -> EventHubsTarget:
        connection = settings.read(CONNECTION_ENV)
        if connection:
            parts = dict(
                p.split("=", 1) for p in connection.strip().strip(";").split(";") if "=" in p
            )
            if not parts.get("Endpoint", "").startswith("sb://"):
                raise EventHubsConfigError(
                    f"{CONNECTION_ENV} is not an Event Hubs connection string (expected "
                    "Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=...;"
                    "SharedAccessKey=...)"
                )
            hub = hub or parts.get("EntityPath")
            if not hub:
                raise EventHubsConfigError(
                    f"no event hub: pass --topic or add EntityPath to {CONNECTION_ENV}"
                )
            return cls(hub, connection_string=connection)
        namespace = settings.read(NAMESPACE_ENV)
        if namespace and hub:
            return cls(hub, namespace=namespace)
        raise EventHubsConfigError(
            f"set {CONNECTION_ENV} (SAS connection string), or {NAMESPACE_ENV}="
            "<namespace>.servicebus.windows.net for DefaultAzureCredential, plus --topic <hub>"
        )

    def describe(self) -> str:
        """Namespace and hub, without a secret."""
        namespace = self.namespace
        if self.connection_string:
            endpoint = next(
                (
                    p.split("=", 1)[1]
                    for p in self.connection_string.split(";")
                    if p.startswith("Endpoint=")
                ),
                "",
            )
            namespace = endpoint.removeprefix("sb://").rstrip("/")
        return f"{namespace}/{self.hub}"

    def producer(self, **kwargs):
        from azure.eventhub import EventHubProducerClient

        if self.connection_string:
            return EventHubProducerClient.from_connection_string(
                self.connection_string, eventhub_name=self.hub, **kwargs
            )
        from azure.identity import DefaultAzureCredential

        return EventHubProducerClient(
            fully_qualified_namespace=self.namespace or "",  # from_env: set without a string
            eventhub_name=self.hub,
            credential=DefaultAzureCredential(),
            **kwargs,
        )

    def consumer(self, group: str, checkpoint_store, **kwargs):
        from azure.eventhub import EventHubConsumerClient

        if self.connection_string:
            return EventHubConsumerClient.from_connection_string(
                self.connection_string,
                consumer_group=group,
                eventhub_name=self.hub,
                checkpoint_store=checkpoint_store,
                **kwargs,
            )
        from azure.identity import DefaultAzureCredential

        return EventHubConsumerClient(
            fully_qualified_namespace=self.namespace or "",  # from_env: set without a string
            eventhub_name=self.hub,
            consumer_group=group,
            credential=DefaultAzureCredential(),
            checkpoint_store=checkpoint_store,
            **kwargs,
        )


def checkpoint_store_from_env(timeout: float | None = None):
    """`BlobCheckpointStore` on the configured container (created when missing); an account
    that does not answer within `timeout` seconds is BrokerUnreachable."""
    from azure.core.exceptions import ResourceExistsError
    from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
    from azure.storage.blob import ContainerClient

    container = settings.read_set(CHECKPOINT_CONTAINER_ENV)
    connection = settings.read("AZURE_STORAGE_CONNECTION_STRING")
    account_url = settings.read(CHECKPOINT_URL_ENV)
    if connection:
        client = ContainerClient.from_connection_string(connection, container)
        store = BlobCheckpointStore.from_connection_string(connection, container)
    elif account_url:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
        client = ContainerClient(account_url, container, credential=credential)
        store = BlobCheckpointStore(account_url, container, credential=credential)
    else:
        raise EventHubsConfigError(
            "the checkpoint store needs AZURE_STORAGE_CONNECTION_STRING, or "
            f"{CHECKPOINT_URL_ENV}=https://<account>.blob.core.windows.net for "
            "DefaultAzureCredential"
        )

    def create() -> None:
        try:
            client.create_container()
        except ResourceExistsError:
            pass

    where = f"the checkpoint store {client.primary_hostname}/{container}"
    within(timeout or settings.read_seconds("PATIENT_FLOW_BROKER_TIMEOUT"), where, create)
    return store


def partitions_of(client) -> list[str]:
    """The hub's partition ids; the first call that authenticates, so a wrong credential fails
    here with a clear message instead of inside a background thread."""
    from azure.eventhub.exceptions import EventHubError

    try:
        return client.get_partition_ids()
    except EventHubError as error:
        lines = redact(str(error)).splitlines() or [type(error).__name__]
        reason = next(
            (
                line.removeprefix("Description: ")
                for line in lines
                if line.startswith("Description: ")
            ),
            None,
        )
        detail = f"{lines[0]} {reason}" if reason else lines[0]
        raise EventHubsConfigError(
            f"Event Hubs refused the connection: {detail} "
            f"(check {CONNECTION_ENV} or the identity's role on the hub)"
        ) from None


def publish(
    events, target: EventHubsTarget, rate: float | None = None, progress=sys.stderr, **client_kwargs
) -> int:
    """Send events as JSON keyed by encounter (`contract.partition_key`); `rate` = events per
    second, or None for as fast as possible. The SDK's buffered producer batches them per
    partition and maps each key to its partition as the service does, so an encounter's events
    stay in order on one partition. A batch the hub refused fails the call after the flush."""
    from azure.eventhub import EventData

    started, sent = time.monotonic(), 0
    refused: list[str] = []
    counting = threading.Lock()  # the producer calls back from its sending threads

    def delivered(batch, partition_id) -> None:
        nonlocal sent
        with counting:
            sent += len(batch)
            if progress:
                rate_now = sent / max(time.monotonic() - started, 1e-9)
                print(f"\rsent {sent} events ({rate_now:,.0f}/s)", end="", file=progress)

    def failed(batch, partition_id, error) -> None:
        refused.append(f"{len(batch)} events to partition {partition_id}: {redact(str(error))}")

    producer = target.producer(
        buffered_mode=True, on_success=delivered, on_error=failed, **client_kwargs
    )
    with producer:
        partitions_of(producer)  # fails here, clearly, on a wrong credential
        for count, event in enumerate(events, start=1):
            producer.send_event(EventData(json.dumps(event)), partition_key=partition_key(event))
            if rate:  # paced: send what is held every ~0.1 s of schedule, then wait for it
                ahead = count / rate - (time.monotonic() - started)
                if ahead > 0.1:
                    producer.flush()
                    time.sleep(max(0.0, count / rate - (time.monotonic() - started)))
        producer.flush()
    if refused:
        raise EventHubsConfigError(f"Event Hubs refused {refused[0]}")
    if progress:
        print(f"\rsent {sent} events in {time.monotonic() - started:.1f} s", file=progress)
    return sent


def _payload(event) -> bytes | None:
    """The event's data sections as bytes; None for a body that is not data (dead-lettered)."""
    try:
        return b"".join(event.body)
    except TypeError:
        return None


def _errors_logger() -> logging.Logger:
    """Receive errors (a lost connection is retried by the SDK) at most once per 10 s."""
    logger = logging.getLogger(f"{__name__}.errors")
    if not logger.filters:
        logger.addFilter(OncePerInterval(10.0))
    return logger


class EventHubsLandingConsumer:
    """Consume a hub's partitions (those this process owns) into landing Parquet files."""

    def __init__(
        self,
        target: EventHubsTarget,
        landing: str,
        dead_letter_dir: str,
        group: str = "$Default",
        batch_events: int = 5_000,
        batch_seconds: float = 10.0,
        checkpoint_store=None,
        **client_kwargs,
    ):
        self.target, self.landing, self.dead_letter_dir = target, landing, dead_letter_dir
        self.batch_events, self.batch_seconds = batch_events, batch_seconds
        self.broker_timeout = settings.read_seconds("PATIENT_FLOW_BROKER_TIMEOUT")
        self.client = target.consumer(
            group,
            checkpoint_store or checkpoint_store_from_env(self.broker_timeout),
            **client_kwargs,
        )
        self.write = landing_sink(landing)
        self.stats = ConsumerStats()
        self.batches: dict[str, LandingBatch] = {}
        self.last_event: dict[str, object] = {}
        self.last_activity = time.monotonic()
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self, idle_seconds: float | None = None) -> ConsumerStats:
        """Consume until stopped (SIGTERM/SIGINT or `stop`), or `idle_seconds` without an event;
        each owned partition's held batch is flushed and checkpointed on the way out."""
        within(
            self.broker_timeout,
            f"Event Hubs ({self.target.describe()})",
            lambda: partitions_of(self.client),
        )
        receiver = threading.Thread(
            target=self.client.receive_batch,
            daemon=True,
            kwargs=dict(
                on_event_batch=self._on_batch,
                on_partition_close=self._on_close,
                on_error=self._on_error,
                max_batch_size=min(self.batch_events, 1_000),
                max_wait_time=min(self.batch_seconds, 1.0),
                starting_position="-1",
            ),
        )
        receiver.start()
        while not self.stop.wait(0.2) and receiver.is_alive():
            if idle_seconds is not None and time.monotonic() - self.last_activity > idle_seconds:
                break
        self.client.close()  # closes every partition (SHUTDOWN): held batches are flushed
        receiver.join(60)
        return self.stats

    def _on_batch(self, context, events) -> None:
        partition = context.partition_id
        batch = self.batches.get(partition)
        if batch is None:
            batch = self.batches[partition] = LandingBatch(
                self.write, self.dead_letter_dir, self.stats, self.batch_events, self.batch_seconds
            )
        for event in events:
            batch.add(
                _payload(event),
                {
                    "topic": self.target.hub,
                    "partition": partition,
                    "offset": event.offset,
                    "sequence_number": event.sequence_number,
                },
                fallback_id=f"{self.target.hub}-{partition}-{event.sequence_number}",
            )
            self.last_event[partition] = event
        if events:
            self.last_activity = time.monotonic()
        if batch.due():
            self._flush(context)

    def _flush(self, context) -> None:
        """Write the partition's batch durably, then move its checkpoint past it."""
        batch = self.batches.get(context.partition_id)
        if batch is not None and batch.flush():
            context.update_checkpoint(self.last_event[context.partition_id])

    def _on_close(self, context, reason) -> None:
        from azure.eventhub import CloseReason

        if reason == CloseReason.SHUTDOWN:
            self._flush(context)
        else:  # ownership lost: the new owner re-reads from the checkpoint, drop what we hold
            self.batches.pop(context.partition_id, None)

    def _on_error(self, context, error) -> None:
        where = f"partition {context.partition_id}" if context else "load balancing"
        message = (
            f"{where}: {redact(str(error)).splitlines()[0] if str(error) else type(error).__name__}"
        )
        self.errors.append(message)
        _errors_logger().warning("Event Hubs consumer error (%s)", message)

    def stop_on_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop.set())
