"""An MLLP listener for the hospital's interface engine: HL7 v2 ADT in, landing files out, each
message acknowledged only once it is durable here.

Per connection, frames are read in order (python-hl7's MLLP stream reader) and answered in
order:
- AA once the event is appended to the write-ahead file and fsynced;
- AE, with an ERR segment naming the field, for a message the contract cannot take (no visit
  number, an unknown location, an unparseable time): the raw message and the reason are kept as
  a dead letter, written durably before the AE;
- for bytes that are not HL7, or a frame over the size limit, one log line and the connection
  closed (there is no MSH to acknowledge); the other connections go on.
Every `batch_events` events or `batch_seconds` the write-ahead file becomes one landing file
(`LandingBatch`, written atomically) and starts again. At start, what a crash left in the
write-ahead file is landed first, then connections are accepted. A sender resending a message
it never saw acknowledged gives the same event id (facility + control id): silver keeps one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hl7.client import MLLPClient
from hl7.mllp import InvalidBlockError, start_hl7_server

from patient_flow_dagster.ingestion.hl7_adt import (
    ContentError,
    NotHL7,
    Places,
    acknowledgement,
    parse,
    to_event,
    to_message,
)
from patient_flow_dagster.ingestion.landing_batch import ConsumerStats, LandingBatch
from patient_flow_dagster.ingestion.landing_writer import landing_sink
from patient_flow_dagster.model.reference import Reference, load

log = logging.getLogger("patient_flow.mllp")

MAX_FRAME_BYTES = 1_048_576  # an ADT message is a few kB; a frame past this is not one


@dataclass
class WriteAheadFile:
    """Events and dead letters, one JSON line each, appended and fsynced before they are
    acknowledged; emptied once they are in a landing file."""

    path: Path

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open: appended per message)

    def append(self, record: dict) -> None:
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def records(self) -> list[dict]:
        with open(self.path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        # A crash mid-append leaves at most a partial last line, never acknowledged: drop it.
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                log.warning("write-ahead file: a partial last line (never acknowledged) dropped")
        return records

    def clear(self) -> None:
        self.handle.truncate(0)
        self.handle.seek(0)
        self.handle.flush()
        os.fsync(self.handle.fileno())


class MllpListener:
    def __init__(
        self,
        reference: Reference,
        landing: str | Path,
        dead_letter_dir: str | Path,
        wal_path: str | Path,
        batch_events: int = 5_000,
        batch_seconds: float = 10.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ):
        self.places = Places.of(reference)
        self.stats = ConsumerStats()
        self.batch = LandingBatch(
            landing_sink(landing), dead_letter_dir, self.stats, batch_events, batch_seconds
        )
        self.wal = WriteAheadFile(Path(wal_path))
        self.max_frame_bytes = max_frame_bytes
        self.acknowledged = {"AA": 0, "AE": 0}
        self.closed_connections = 0
        self.stopping = asyncio.Event()
        self.last_message = 0.0

    # -- the write-ahead file and the landing -------------------------------------------------

    def _hold(self, record: dict) -> None:
        if "event" in record:
            self.batch.events.append(record["event"])
        else:
            self.batch.dead.append(record["dead"])

    def recover(self) -> int:
        """Land what the write-ahead file holds (a crash's leftovers); their count."""
        records = self.wal.records()
        for record in records:
            self._hold(record)
        self.land()
        return len(records)

    def land(self) -> None:
        if self.batch.flush():
            self.wal.clear()

    def accept(self, record: dict) -> None:
        self.wal.append(record)  # durable before the acknowledgement
        self._hold(record)

    # -- connections ----------------------------------------------------------------------------

    async def handle(self, reader, writer) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while not self.stopping.is_set():
                try:
                    block = await reader.readblock()  # the frame's bytes; parsed below
                except asyncio.IncompleteReadError:
                    break  # the sender closed, between frames or mid-frame
                except (ValueError, InvalidBlockError) as error:  # oversize, or not MLLP
                    log.warning(f"closed {peer}: {error}")
                    self.closed_connections += 1
                    break
                text = block.decode("utf-8", errors="replace")
                self.last_message = asyncio.get_running_loop().time()
                answer = self.answer(text)
                if answer is None:
                    log.warning(f"closed {peer}: not an HL7 v2 message")
                    self.closed_connections += 1
                    break
                writer.writemessage(answer)
                await writer.drain()
                if self.batch.due():
                    self.land()
        finally:
            writer.close()

    def answer(self, text: str) -> str | None:
        """The acknowledgement of one frame, after its outcome is durable; None: not HL7."""
        try:
            message = parse(text)
        except NotHL7:
            return None
        try:
            event = to_event(message, self.places)
        except ContentError as error:
            self.accept({"dead": {"source": "mllp", "reason": str(error), "value": text[:10_000]}})
            self.acknowledged["AE"] += 1
            return acknowledgement(message, "AE", error)
        self.accept({"event": event})
        self.acknowledged["AA"] += 1
        return acknowledgement(message, "AA")

    async def serve(self, host: str, port: int, idle_exit: float | None = None) -> ConsumerStats:
        recovered = self.recover()
        if recovered:
            log.info(f"landed {recovered} messages the write-ahead file held")
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():  # the CLI; not a test's thread
            for stop in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(stop, self.stopping.set)
        self.last_message = loop.time()
        server = await start_hl7_server(self.handle, host, port, limit=self.max_frame_bytes)
        log.info(f"listening for MLLP on {host}:{port}")
        async with server:
            while not self.stopping.is_set():
                try:
                    await asyncio.wait_for(self.stopping.wait(), timeout=0.2)
                except asyncio.TimeoutError:
                    pass
                if self.batch.due():
                    self.land()
                if idle_exit is not None and loop.time() - self.last_message > idle_exit:
                    break
        self.land()
        return self.stats


def listen(args, landing: str, dead_letter: str, reference_dir: str | None) -> ConsumerStats:
    """`patient-flow ingest --from mllp`: listen until stopped (or idle for --idle-exit)."""
    listener = MllpListener(
        load(reference_dir),
        landing,
        dead_letter,
        Path(dead_letter).parent / "mllp" / "write-ahead.jsonl",
        args.batch_events,
        args.batch_seconds,
    )
    return asyncio.run(listener.serve(args.host, args.port, args.idle_exit))


def send(events: list[dict], host: str, port: int, reference: Reference, timeout: float = 5.0):
    """Send events as HL7 ADT messages, one at a time, each waiting for its ACK as real senders
    do; a message whose ACK does not come within `timeout` (or whose connection drops) is sent
    again on a new connection. Returns the count per acknowledgement code."""
    places = Places.of(reference)
    counts: dict[str, int] = {}
    client = None
    for n, event in enumerate(events):
        message = to_message(event, event.get("event_id") or f"SIM{n}", places)
        while True:
            try:
                if client is None:
                    client = MLLPClient(host, port)
                    client.socket.settimeout(timeout)
                reply = client.send_message(message)
                code = reply.split(b"MSA|", 1)[1][:2].decode() if b"MSA|" in reply else "??"
                break
            except OSError as error:  # a timeout, a refused or dropped connection: resend
                log.warning(f"resending {event.get('event_id')}: {error}")
                if client is not None:
                    client.close()
                client = None
                time.sleep(0.2)
        counts[code] = counts.get(code, 0) + 1
    if client is not None:
        client.close()
    return counts
