"""Patient events over the Kafka protocol (Apache Kafka, or Azure Event Hubs' Kafka endpoint).

Client: confluent-kafka (librdkafka). It is the client Microsoft documents for Event Hubs' Kafka
endpoint, ships as wheels with librdkafka inside (SASL_SSL included), and is several times
faster than the pure-Python kafka-python, whose maintenance has been intermittent.

The landing consumer batches events into Parquet files: a file is flushed at N events or T
seconds, written atomically, and only then are the consumer offsets committed. A crash therefore
re-delivers at most the unflushed batch (at-least-once into landing); the event_id makes the
redelivered copy a duplicate that silver removes, so every event reaches silver exactly once.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time

from patient_flow_dagster import settings
from patient_flow_dagster.ingestion.landing_batch import (
    BrokerUnreachable,
    ConsumerStats,
    LandingBatch,
    OncePerInterval,
)
from patient_flow_dagster.ingestion.landing_writer import landing_sink
from patient_flow_dagster.model.contract import partition_key

EVENTHUBS_ENV = "EVENTHUBS_CONNECTION_STRING"


class KafkaConfigError(ValueError):
    """A missing or malformed connection setting: the user's to fix, reported in one line."""


def client_config(bootstrap: str | None = None, eventhubs: bool = False) -> dict:
    """Plain Kafka, or Event Hubs' Kafka endpoint (SASL_SSL + PLAIN, `$ConnectionString` user,
    the connection string from EVENTHUBS_CONNECTION_STRING as password)."""
    if not eventhubs:
        if not bootstrap:
            raise KafkaConfigError("--bootstrap HOST:PORT is required for Kafka")
        return {"bootstrap.servers": bootstrap}
    connection = settings.read(EVENTHUBS_ENV)
    if not connection:
        raise KafkaConfigError(f"set {EVENTHUBS_ENV} to the Event Hubs connection string")
    parts = dict(p.split("=", 1) for p in connection.strip(";").split(";") if "=" in p)
    host = parts.get("Endpoint", "").removeprefix("sb://").strip("/")
    if not host:
        raise KafkaConfigError(
            f"{EVENTHUBS_ENV} has no Endpoint=sb://<namespace>.servicebus.windows.net/"
        )
    return {
        "bootstrap.servers": bootstrap or f"{host}:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": "$ConnectionString",
        "sasl.password": connection,
    }


def publish(
    events, config: dict, topic: str, rate: float | None = None, progress=sys.stderr
) -> int:
    """Send events as JSON, keyed by encounter (`contract.partition_key`: an encounter's events
    stay in one partition, in order). `rate` = events per second, or None for as fast as
    possible."""
    from confluent_kafka import Producer

    producer = Producer(
        {**config, "linger.ms": 20, "compression.type": "lz4", "enable.idempotence": True}
    )
    failures: list[str] = []

    def delivered(error, _message):
        if error is not None:
            failures.append(str(error))

    started = time.monotonic()
    for sent, event in enumerate(events, start=1):
        key = (partition_key(event) or "").encode()
        while True:
            try:
                producer.produce(topic, json.dumps(event).encode(), key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if progress and sent % 10_000 == 0:
            elapsed = time.monotonic() - started
            print(f"\rsent {sent} events ({sent / elapsed:,.0f}/s)", end="", file=progress)
    producer.flush(60)
    if progress:
        print(f"\rsent {len(events)} events in {time.monotonic() - started:.1f} s", file=progress)
    if failures:
        raise RuntimeError(f"{len(failures)} events were not delivered: {failures[0]}")
    return len(events)


def client_logger(seconds: float = 10.0) -> logging.Logger:
    """The logger librdkafka's messages go to (instead of its own stderr lines): one line per
    `seconds` on stderr."""
    logger = logging.getLogger("patient_flow.kafka")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("kafka: %(message)s"))
        handler.addFilter(OncePerInterval(seconds))
        logger.addHandler(handler)
        logger.propagate = False
    return logger


class LandingConsumer:
    """Consume a topic into landing Parquet files (plus a dead-letter folder)."""

    def __init__(
        self,
        config: dict,
        topic: str,
        landing: str,
        dead_letter_dir: str,
        group: str = "patient-flow-landing",
        batch_events: int = 5_000,
        batch_seconds: float = 10.0,
        broker_timeout: float | None = None,
    ):
        from confluent_kafka import Consumer

        self.topic, self.landing = topic, landing
        self.bootstrap = config.get("bootstrap.servers")
        self.broker_timeout = broker_timeout or settings.read_seconds("PATIENT_FLOW_BROKER_TIMEOUT")
        self.last_error: str | None = None
        # A short session lets a restarted consumer take over a crashed one's partitions quickly.
        self.consumer = Consumer(
            {
                **config,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                "logger": client_logger(),
                "error_cb": self._on_error,
            }
        )
        self.assigned = threading.Event()
        self.stats = ConsumerStats()
        self.batch = LandingBatch(
            landing_sink(landing), dead_letter_dir, self.stats, batch_events, batch_seconds
        )
        self.stop = threading.Event()

    def _on_error(self, error) -> None:
        """librdkafka's client-level errors (a refused connection, all brokers down)."""
        self.last_error = error.str()

    def run(self, idle_seconds: float | None = None) -> ConsumerStats:
        """Consume until stopped (SIGTERM/SIGINT or `stop`), or `idle_seconds` without a
        message; flush what is held before returning. Without partitions after the broker
        timeout (no broker reachable, or no such topic), raise BrokerUnreachable."""
        self.consumer.subscribe([self.topic], on_assign=lambda *_: self.assigned.set())
        started = last_message = time.monotonic()
        try:
            while not self.stop.is_set():
                for message in self.consumer.consume(num_messages=1_000, timeout=0.5):
                    if error := message.error():
                        self.last_error = error.str()
                        continue
                    last_message = time.monotonic()
                    topic, partition, offset = (
                        message.topic(),
                        message.partition(),
                        message.offset(),
                    )
                    self.batch.add(
                        message.value(),
                        {"topic": topic, "partition": partition, "offset": offset},
                        fallback_id=f"{topic}-{partition}-{offset}",
                    )
                if self.batch.due():
                    self._flush()
                if not self.assigned.is_set():
                    last_message = time.monotonic()  # idle time counts once partitions are ours
                    if last_message - started > self.broker_timeout:
                        raise BrokerUnreachable(
                            f"no partition of topic {self.topic} assigned after "
                            f"{self.broker_timeout:.0f} s from {self.bootstrap}: "
                            f"{self.last_error or 'no answer'} (PATIENT_FLOW_BROKER_TIMEOUT)"
                        )
                elif idle_seconds is not None and time.monotonic() - last_message > idle_seconds:
                    break
            self._flush()
        finally:
            self.consumer.close()
        return self.stats

    def _flush(self) -> None:
        """Write the batch durably, then commit the offsets."""
        if self.batch.flush():
            self.consumer.commit(asynchronous=False)

    def stop_on_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop.set())
