"""What every stream consumer shares: parse a message into an event, hold a batch, write it.

A batch becomes one landing Parquet file (written atomically) plus, when some messages were
malformed, one dead-letter JSON-lines file. The caller acknowledges the source (Kafka offsets,
an Event Hubs checkpoint) only after `flush` returns, so a crash re-delivers at most the batch it
held; the event_id makes a re-delivered copy a duplicate that silver removes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pyspark.sql.types import LongType, StringType

from patient_flow_dagster.ingestion.landing_writer import (
    events_table,
    landing_file_name,
)
from patient_flow_dagster.model.contract import LANDING_SCHEMA


class BrokerUnreachable(RuntimeError):
    """No broker (or checkpoint store) answered for the configured time: reported in one line,
    exit code 2."""


class OncePerInterval(logging.Filter):
    """Let one record through per `seconds` (librdkafka retries a refused connection many
    times a second; the user needs to hear it once in a while, not each time)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.last = seconds, float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


def within(seconds: float, what: str, call):
    """`call()`, or BrokerUnreachable naming `what` when it has not returned after `seconds`.
    Client libraries retry an unreachable host for minutes; a consumer should say so at once."""
    outcome: dict = {}

    def attempt():
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise BrokerUnreachable(
            f"{what} did not answer within {seconds:g} s (PATIENT_FLOW_BROKER_TIMEOUT)"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# The contract's fields by JSON type.
INTEGER_FIELDS = tuple(f.name for f in LANDING_SCHEMA.fields if isinstance(f.dataType, LongType))
TEXT_FIELDS = tuple(f.name for f in LANDING_SCHEMA.fields if isinstance(f.dataType, StringType))


def parse_event(value: bytes | None, fallback_id: str):
    """(event, None) for a usable message, (None, reason) for a malformed one.

    Missing fields are fine here (silver quarantines them with a rule name); what cannot become
    a row of the contract's types (not JSON, not an object, a wrong type) is dead-lettered. An
    event without an event_id gets `fallback_id`, its position in the stream, so a re-delivered
    copy is still recognised as the same event.
    """
    try:
        payload = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError) as error:
        return None, f"not JSON: {str(error)[:120]}"
    if not isinstance(payload, dict):
        return None, f"not a JSON object but {type(payload).__name__}"
    event: dict[str, object] = {}
    for name in INTEGER_FIELDS:
        item = payload.get(name)
        if item is not None and (isinstance(item, bool) or not isinstance(item, int)):
            return None, f"field {name}: expected an integer, got {type(item).__name__}"
        event[name] = item
    for name in TEXT_FIELDS:
        item = payload.get(name)
        if item is not None and not isinstance(item, str):
            return None, f"field {name}: expected a string, got {type(item).__name__}"
        event[name] = item
    if not event["event_id"]:
        event["event_id"] = fallback_id
    return event, None


@dataclass
class ConsumerStats:
    events: int = 0
    dead_letters: int = 0
    files: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class LandingBatch:
    """Events and dead letters waiting to become one landing file (one per consumer, or one per
    Event Hubs partition)."""

    def __init__(
        self,
        write,
        dead_letter_dir: str | Path,
        stats: ConsumerStats,
        batch_events: int,
        batch_seconds: float,
    ):
        self.write, self.dead_letter_dir, self.stats = write, Path(dead_letter_dir), stats
        self.batch_events, self.batch_seconds = batch_events, batch_seconds
        self.events: list[dict] = []
        self.dead: list[dict] = []
        self.opened = time.monotonic()

    def add(self, value: bytes | None, source: dict, fallback_id: str) -> None:
        """`source` locates the message (topic/hub, partition, offset) for its dead letter."""
        event, reason = parse_event(value, fallback_id)
        if event is not None:
            self.events.append(event)
        else:
            raw = value or b""
            self.dead.append(
                {
                    **source,
                    "reason": reason,
                    "value": raw[:10_000].decode("utf-8", errors="replace"),
                    "dead_lettered_at": datetime.now(timezone.utc).isoformat(),
                }
            )

    def __len__(self) -> int:
        return len(self.events) + len(self.dead)

    def due(self) -> bool:
        """Full, or held long enough (and not empty)."""
        return len(self.events) >= self.batch_events or (
            len(self) > 0 and time.monotonic() - self.opened >= self.batch_seconds
        )

    def flush(self) -> bool:
        """Write the batch and its dead letters durably; True when something was written (the
        caller then acknowledges the source)."""
        if not len(self):
            self.opened = time.monotonic()
            return False
        written = (
            self.write(events_table(self.events), landing_file_name()) if self.events else None
        )
        if self.dead:
            self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
            final = self.dead_letter_dir / f"dead-letters-{uuid.uuid4().hex[:12]}.jsonl"
            temporary = final.with_name("." + final.name + ".tmp")
            with open(temporary, "w") as handle:
                handle.writelines(json.dumps(d) + "\n" for d in self.dead)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        with self.stats.lock:
            if written:
                self.stats.files.append(written)
            self.stats.events += len(self.events)
            self.stats.dead_letters += len(self.dead)
        self.events, self.dead, self.opened = [], [], time.monotonic()
        return True
