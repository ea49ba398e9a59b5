"""A small local Azure Event Hubs endpoint: AMQP 1.0 on loopback, for the azure-eventhub SDK.

Microsoft's emulator ships only as a container image; this is test infrastructure that speaks the
same wire protocol to the unmodified SDK, for connection strings carrying
`UseDevelopmentEmulator=true` (plain AMQP on the given port, SASL ANONYMOUS, then CBS):

- claims-based security: `put-token` on `$cbs`, the SAS signature checked against the configured
  key (a wrong key gets 401 and no link is attached on a connection without a valid token);
- `$management` READ of the hub (`com.microsoft:eventhub`) and of a partition
  (`com.microsoft:partition`);
- send links to `<hub>` (partition chosen from `x-opt-partition-key` as the service hashes it,
  else round robin) and to `<hub>/Partitions/<id>`, single messages and batches (message format
  0x80013700: each data section an encoded message);
- receive links on `<hub>/ConsumerGroups/<group>/Partitions/<id>` honouring the
  `apache.org:selector-filter:string` start position (offset, sequence number or enqueued time,
  inclusive or not), link credit, and the `x-opt-offset`, `x-opt-sequence-number`,
  `x-opt-enqueued-time` and `x-opt-partition-key` annotations; a receiver with an owner level
  (`com.microsoft:epoch`) takes the partition from receivers of a lower or equal level
  (`amqp:link:stolen`), as the service does for the SDK's load-balanced consumers;
- what Event Hubs refuses is refused here too: an unknown hub, partition or consumer group
  (`amqp:not-found`), links without a token (`amqp:unauthorized-access`).

The wire codec is the SDK's own pure-Python AMQP 1.0 implementation (`azure.eventhub._pyamqp`:
performatives, frames, messages); this module holds only the broker's state machine. qpid-proton
was tried first: its compact encoding of performatives (trailing null fields omitted, which AMQP
allows) is rejected by the SDK's decoder, which reads fields at fixed positions.

Not implemented: TLS and web sockets, AAD (JWT) tokens, idempotent publishing, the
`com.microsoft:receiver-runtime-metric` capability (last enqueued event properties on receive),
retention and expiry, consumer-group management, throttling (`com.microsoft:server-busy`),
session and link recovery, and persistence (events live in memory).

`python -m patient_flow_dagster_tests.eventhubs_endpoint --port 5673 --hub patient-events` prints
the connection string (with this endpoint's test key) on its first line, then serves.
"""

import argparse
import base64
import functools
import hashlib
import hmac
import itertools
import re
import socket
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote_plus, urlparse

from azure.eventhub._pyamqp import performatives as amqp
from azure.eventhub._pyamqp._decode import decode_frame, decode_payload
from azure.eventhub._pyamqp._encode import encode_frame, encode_payload
from azure.eventhub._pyamqp.endpoints import Source, Target
from azure.eventhub._pyamqp.error import AMQPError
from azure.eventhub._pyamqp.message import Message, Properties
from azure.eventhub._pyamqp.outcomes import Accepted, Rejected
from azure.eventhub._pyamqp.types import AMQPTypes

SASL_HEADER, AMQP_HEADER = b"AMQP\x03\x01\x00\x00", b"AMQP\x00\x01\x00\x00"
OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
BATCH_FORMAT = 0x80013700
OFFSET, SEQUENCE, ENQUEUED, PARTITION_KEY = (
    b"x-opt-offset",
    b"x-opt-sequence-number",
    b"x-opt-enqueued-time",
    b"x-opt-partition-key",
)
EPOCH = b"com.microsoft:epoch"
SELECTOR = re.compile(
    r"amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time)\s*(>=|>)\s*'([^']*)'"
)
POLICY, KEY = "RootManageSharedAccessKey", "local-endpoint-test-key"
MAX_FRAME = 256 * 1024


def connection_string(port: int, hub: str, key: str = KEY, policy: str = POLICY) -> str:
    return (
        f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName={policy};SharedAccessKey={key};"
        f"EntityPath={hub};UseDevelopmentEmulator=true"
    )


def long(value: int) -> dict:
    return {"TYPE": AMQPTypes.long, "VALUE": value}


def stamp(milliseconds: int) -> dict:
    return {"TYPE": AMQPTypes.timestamp, "VALUE": milliseconds}


def text(value) -> str | None:
    return value.decode() if isinstance(value, (bytes, bytearray, memoryview)) else value


class Refused(Exception):
    """What the service answers with an AMQP error: condition + description."""

    def __init__(self, condition: str, description: str):
        super().__init__(description)
        self.error = AMQPError(condition=condition.encode(), description=description)


@dataclass
class Event:
    payload: bytes  # the encoded message as delivered, annotations included
    sequence: int
    offset: int
    enqueued_ms: int


@dataclass
class Partition:
    id: str
    events: list = field(default_factory=list)
    next_offset: int = 0

    def append(self, message: Message, key) -> None:
        now = int(time.time() * 1000)
        annotations = dict(message.message_annotations or {})
        annotations.update(
            {
                OFFSET: str(self.next_offset).encode(),
                SEQUENCE: long(len(self.events)),
                ENQUEUED: stamp(now),
            }
        )
        if key is not None:
            annotations[PARTITION_KEY] = key
        payload = bytes(
            encode_payload(bytearray(), message._replace(message_annotations=annotations))
        )
        self.events.append(Event(payload, len(self.events), self.next_offset, now))
        self.next_offset += len(payload)

    def start(self, selector: str | None) -> int:
        """Index of the first event a receiver's start-position filter selects."""
        if not selector:
            return len(self.events)  # no filter: the service starts at the end of the stream
        match = SELECTOR.search(selector)
        if not match:
            raise Refused("amqp:not-implemented", f"Unsupported filter {selector!r}.")
        kind, operator, raw = match.groups()
        if kind == "offset" and raw in ("-1", "@latest"):
            return 0 if raw == "-1" else len(self.events)
        value = int(raw)
        attribute = {
            "offset": "offset",
            "sequence-number": "sequence",
            "enqueued-time": "enqueued_ms",
        }[kind]
        for index, event in enumerate(self.events):
            position = getattr(event, attribute)
            if position > value or (operator == ">=" and position == value):
                return index
        return len(self.events)


@dataclass
class Link:
    connection: "Connection"
    channel: int
    handle: int  # ours
    remote_handle: int
    role_sender: bool  # True: we send (the client receives)
    path: str
    settled: bool = False
    delivery_count: int = 0
    credit: int = 0
    partition: Partition | None = None
    group: str | None = None
    epoch: int | None = None
    position: int = 0
    replies: list = field(default_factory=list)
    closed: bool = False


class Namespace:
    """One Event Hubs namespace with one hub; every connection thread shares it under one lock."""

    def __init__(
        self,
        hub: str,
        partitions: int = 4,
        consumer_groups=("$Default",),
        policy: str = POLICY,
        key: str = KEY,
    ):
        self.hub, self.policy, self.key = hub, policy, key
        self.partitions = {str(i): Partition(str(i)) for i in range(partitions)}
        self.consumer_groups = {g.lower() for g in consumer_groups}
        self.created_ms = int(time.time() * 1000)
        self.round_robin = itertools.cycle(list(self.partitions))
        self.readers: list[Link] = []
        self.lock = threading.RLock()

    def check_token(self, token) -> str | None:
        """None for a valid SAS token of this namespace, else the reason (never the key)."""
        token = text(token)
        if not isinstance(token, str) or not token.startswith("SharedAccessSignature "):
            return "InvalidToken: only SAS tokens are supported by this endpoint."
        fields = {k: v[0] for k, v in parse_qs(token[len("SharedAccessSignature ") :]).items()}
        if fields.get("skn") != self.policy:
            return f"Unauthorized: unknown SharedAccessKeyName {fields.get('skn')!r}."
        if int(fields.get("se", "0")) < time.time():
            return "ExpiredToken: the token has expired."
        signed = f"{quote_plus(fields.get('sr', ''))}\n{fields.get('se')}".encode()
        expected = base64.b64encode(hmac.new(self.key.encode(), signed, hashlib.sha256).digest())
        if not hmac.compare_digest(expected.decode(), fields.get("sig", "")):
            return "InvalidSignature: The token has an invalid signature."
        return None

    def partition(self, partition_id: str) -> Partition:
        if partition_id not in self.partitions:
            raise Refused(
                "amqp:not-found",
                f"The messaging entity partition '{partition_id}' could "
                f"not be found: '{self.hub}' has partitions 0-{len(self.partitions) - 1}.",
            )
        return self.partitions[partition_id]

    def check_hub(self, hub: str) -> None:
        if hub != self.hub:
            raise Refused("amqp:not-found", f"The messaging entity '{hub}' could not be found.")

    def publish(self, link: Link, messages: list[Message]) -> None:
        parts = link.path.split("/")
        fixed = self.partitions[parts[2]] if len(parts) == 3 else None
        for message in messages:
            key = (message.message_annotations or {}).get(PARTITION_KEY)
            if fixed is not None:
                partition = fixed
            elif key is not None:
                partition = self.partitions[partition_for_key(text(key), len(self.partitions))]
            else:
                partition = self.partitions[next(self.round_robin)]
            partition.append(message, key)
        for reader in list(self.readers):
            reader.connection.pump(reader)

    def read(self, request: Message) -> tuple[int, str, object]:
        """$management READ: (status code, description, body)."""
        props = {text(k): v for k, v in (request.application_properties or {}).items()}
        problem = self.check_token(props.get("security_token"))
        if problem:
            return 401, problem, None
        if text(props.get("operation")) != "READ":
            return 400, "Only READ is supported.", None
        if text(props.get("name")) != self.hub:
            return (
                404,
                f"The messaging entity '{text(props.get('name'))}' could not be found.",
                None,
            )
        kind = text(props.get("type"))
        if kind == "com.microsoft:eventhub":
            return (
                200,
                "OK",
                {
                    "name": self.hub,
                    "type": kind,
                    "created_at": stamp(self.created_ms),
                    "partition_count": len(self.partitions),
                    "partition_ids": list(self.partitions),
                },
            )
        if kind == "com.microsoft:partition":
            partition = self.partitions.get(text(props.get("partition")))
            if partition is None:
                return 404, f"Partition '{text(props.get('partition'))}' could not be found.", None
            last = partition.events[-1] if partition.events else None
            return (
                200,
                "OK",
                {
                    "name": self.hub,
                    "type": kind,
                    "partition": partition.id,
                    "begin_sequence_number": long(0),
                    "last_enqueued_sequence_number": long(last.sequence if last else -1),
                    "last_enqueued_offset": str(last.offset) if last else "-1",
                    "last_enqueued_time_utc": stamp(last.enqueued_ms if last else 0),
                    "is_partition_empty": last is None,
                },
            )
        return 400, f"Unknown type {kind!r}.", None


class Connection(threading.Thread):
    """One client connection: SASL ANONYMOUS, then AMQP performatives, in its own thread."""

    def __init__(self, namespace: Namespace, sock: socket.socket):
        super().__init__(daemon=True)
        self.ns, self.sock = namespace, sock
        self.links: dict[tuple[int, int], Link] = {}  # (channel, remote handle) -> link
        self.next_outgoing: dict[int, int] = {}  # channel -> our next transfer id
        self.next_handle = itertools.count()
        self.partial: dict = {}
        self.authorized = False
        self.alive = True

    # -- framing (the frames themselves are encoded and decoded by the SDK's codec) -------------
    def _recv(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = self.sock.recv(left)
            if not chunk:
                raise ConnectionError("peer closed")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _frame(self):
        header = self._recv(8)
        if header[:4] == b"AMQP":
            return "header", header, None
        size, offset, frame_type, channel = struct.unpack(">IBBH", header)
        body = self._recv(size - 8)[offset * 4 - 8 :]
        if not body:
            return "empty", channel, None
        return frame_type, channel, decode_frame(memoryview(body))

    def send(self, channel: int, frame, frame_type: bytes = b"\x00") -> None:
        head, body = encode_frame(frame, frame_type=frame_type)
        with self.ns.lock:
            if self.alive:
                try:
                    self.sock.sendall(head + struct.pack(">H", channel) + (body or b""))
                except OSError:
                    self.alive = False

    def run(self):
        try:
            self._sasl()
            while self.alive:
                kind, channel, decoded = self._frame()
                if kind in ("empty", "header"):
                    continue
                performative, fields = decoded
                with self.ns.lock:
                    self._dispatch(channel, performative, fields)
        except (ConnectionError, OSError):
            pass
        except Exception:  # a bug here must be visible in the test output, not a silent hang
            traceback.print_exc()
        finally:
            with self.ns.lock:
                self.alive = False
                self.ns.readers = [r for r in self.ns.readers if r.connection is not self]
            self.sock.close()

    def _sasl(self):
        _, header, _ = self._frame()
        if header != SASL_HEADER:
            raise ConnectionError("expected the SASL protocol header")
        self.sock.sendall(SASL_HEADER)
        self.send(0, amqp.SASLMechanism(sasl_server_mechanisms=[b"ANONYMOUS"]), frame_type=b"\x01")
        self._frame()  # sasl-init: ANONYMOUS
        self.send(0, amqp.SASLOutcome(code=0, additional_data=None), frame_type=b"\x01")
        _, header, _ = self._frame()
        if header != AMQP_HEADER:
            raise ConnectionError("expected the AMQP protocol header")
        self.sock.sendall(AMQP_HEADER)

    # -- performatives --------------------------------------------------------------------------
    def _dispatch(self, channel: int, performative: int, f: list):
        if performative == OPEN:
            self.send(
                0,
                amqp.OpenFrame(
                    container_id="patient-flow-local-eventhubs",
                    hostname=text(f[1]),
                    max_frame_size=MAX_FRAME,
                    channel_max=255,
                    idle_timeout=None,
                    outgoing_locales=None,
                    incoming_locales=None,
                    offered_capabilities=None,
                    desired_capabilities=None,
                    properties=None,
                ),
            )
        elif performative == BEGIN:
            self.next_outgoing[channel] = 0
            self.send(
                channel,
                amqp.BeginFrame(
                    remote_channel=channel,
                    next_outgoing_id=0,
                    incoming_window=65536,
                    outgoing_window=65536,
                    handle_max=4095,
                    offered_capabilities=None,
                    desired_capabilities=None,
                    properties=None,
                ),
            )
        elif performative == ATTACH:
            self._attach(channel, f)
        elif performative == FLOW:
            link = self.links.get((channel, f[4])) if f[4] is not None else None
            if link is not None and link.role_sender:
                link.credit = (f[5] or 0) + f[6] - link.delivery_count
                self.pump(link)
        elif performative == TRANSFER:
            self._transfer(channel, f)
        elif performative == DETACH:
            link = self.links.pop((channel, f[0]), None)
            if link is not None:
                link.closed = True
                self.ns.readers = [r for r in self.ns.readers if r is not link]
                self.send(channel, amqp.DetachFrame(handle=link.handle, closed=True, error=None))
        elif performative == END:
            for key in [k for k in self.links if k[0] == channel]:
                self.links[key].closed = True
                self.ns.readers = [r for r in self.ns.readers if r is not self.links[key]]
                del self.links[key]
            self.send(channel, amqp.EndFrame(error=None))
        elif performative == CLOSE:
            self.send(0, amqp.CloseFrame(error=None))
            self.alive = False

    @staticmethod
    def _path(address) -> str:
        address = text(address) or ""
        return urlparse(address).path.lstrip("/") if "://" in address else address

    def _attach(self, channel: int, f: list):
        name, remote_handle, client_is_receiver = f[0], f[1], f[2]
        source, target = Source(*f[5]) if f[5] else Source(), Target(*f[6]) if f[6] else Target()
        address = source.address if client_is_receiver else target.address
        link = Link(
            self,
            channel,
            next(self.next_handle),
            remote_handle,
            client_is_receiver,
            self._path(address),
            settled=f[3] == 1,
        )
        properties = dict(f[13] or {})
        error = None
        try:
            self._admit(link, source, properties)
        except Refused as refused:
            error = refused.error
        self.send(
            channel,
            amqp.AttachFrame(
                name=name,
                handle=link.handle,
                role=not client_is_receiver,
                send_settle_mode=f[3],
                rcv_settle_mode=f[4],
                source=source,
                target=target,
                unsettled=None,
                incomplete_unsettled=False,
                initial_delivery_count=0 if client_is_receiver else None,
                max_message_size=1024 * 1024,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=properties or None,
            ),
        )
        if error is not None:
            self.send(channel, amqp.DetachFrame(handle=link.handle, closed=True, error=error))
            return
        self.links[(channel, remote_handle)] = link
        if not client_is_receiver:
            self.send(channel, self._flow(link, credit=500))
        elif link.partition is not None:
            self.ns.readers.append(link)

    def _admit(self, link: Link, source: Source, properties: dict):
        """Refuse what Event Hubs refuses; place a reader at its start position."""
        if link.path in ("$cbs", "$management"):
            return
        if not self.authorized:
            raise Refused(
                "amqp:unauthorized-access", "Unauthorized access: put a valid token on $cbs first."
            )
        parts = link.path.split("/")
        self.ns.check_hub(parts[0])
        if not link.role_sender:  # the client publishes
            if len(parts) == 3 and parts[1].lower() == "partitions":
                self.ns.partition(parts[2])
            elif len(parts) != 1:
                raise Refused(
                    "amqp:not-found", f"The messaging entity '{link.path}' could not be found."
                )
            return
        if (
            len(parts) != 5
            or parts[1].lower() != "consumergroups"
            or parts[3].lower() != "partitions"
        ):
            raise Refused(
                "amqp:not-found", f"The messaging entity '{link.path}' could not be found."
            )
        if parts[2].lower() not in self.ns.consumer_groups:
            raise Refused(
                "amqp:not-found",
                f"The messaging entity '{parts[0]}/ConsumerGroups/{parts[2]}' could not be found.",
            )
        link.partition, link.group = self.ns.partition(parts[4]), parts[2]
        selector = next(
            (
                text(v)
                for v in (source.filters or {}).values()
                if "amqp.annotation" in (text(v) or "")
            ),
            None,
        )
        link.position = link.partition.start(selector)
        link.epoch = properties.get(EPOCH)
        if link.epoch is not None:
            for other in [
                r
                for r in self.ns.readers
                if r.partition is link.partition
                and r.group == link.group
                and (r.epoch is None or r.epoch <= link.epoch)
            ]:
                self.ns.readers.remove(other)
                other.closed = True
                other.connection.send(
                    other.channel,
                    amqp.DetachFrame(
                        handle=other.handle,
                        closed=True,
                        error=AMQPError(
                            condition=b"amqp:link:stolen",
                            description=f"New receiver with epoch {link.epoch} took partition "
                            f"{link.partition.id} over.",
                        ),
                    ),
                )

    def _flow(self, link: Link, credit: int):
        return amqp.FlowFrame(
            next_incoming_id=0,
            incoming_window=65536,
            next_outgoing_id=self.next_outgoing[link.channel],
            outgoing_window=65536,
            handle=link.handle,
            delivery_count=link.delivery_count,
            link_credit=credit,
            available=None,
            drain=None,
            echo=None,
            properties=None,
        )

    def _transfer(self, channel: int, f: list):
        link = self.links.get((channel, f[0]))
        key = (channel, f[0])
        if (
            key not in self.partial
        ):  # the first frame of a delivery (continuations may repeat its id)
            self.partial[key] = {
                "id": f[1],
                "format": f[3],
                "settled": f[4],
                "payload": bytearray(),
            }
        delivery = self.partial[key]
        delivery["payload"] += bytes(f[-1])
        if f[5]:  # more frames follow
            return
        del self.partial[key]
        if link is None:
            return
        link.delivery_count += 1
        state = Accepted()
        try:
            self._deliver(link, delivery)
        except Refused as refused:
            state = Rejected(error=refused.error)
        if not delivery["settled"]:
            self.send(
                channel,
                amqp.DispositionFrame(
                    role=True,
                    first=delivery["id"],
                    last=None,
                    settled=True,
                    state=state,
                    batchable=None,
                ),
            )
        if link.delivery_count % 250 == 0:
            self.send(channel, self._flow(link, credit=500))

    def _deliver(self, link: Link, delivery: dict):
        message = decode_payload(memoryview(delivery["payload"]))
        if link.path == "$cbs":
            return self._reply(link, message, *self._put_token(message))
        if link.path == "$management":
            return self._reply(link, message, *self.ns.read(message))
        if delivery["format"] == BATCH_FORMAT:
            self.ns.publish(link, [decode_payload(memoryview(d)) for d in message.data or []])
        else:
            self.ns.publish(link, [message])

    def _put_token(self, request: Message):
        props = {text(k): v for k, v in (request.application_properties or {}).items()}
        if text(props.get("operation")) != "put-token":
            return 400, "Unsupported $cbs operation.", None
        problem = self.ns.check_token(request.value)
        if problem:
            return 401, problem, None
        self.authorized = True
        return 202, "Accepted", None

    def _reply(self, link: Link, request: Message, status: int, description: str, body):
        """Answer on this connection's receiving link of the same node, correlated by message id."""
        response = Message(
            properties=Properties(correlation_id=request.properties.message_id),
            application_properties={"status-code": status, "status-description": description},
            value=body,
        )
        reply_link = next(
            (
                candidate
                for candidate in self.links.values()
                if candidate.role_sender and candidate.path == link.path
            ),
            None,
        )
        if reply_link is not None:
            reply_link.replies.append(bytes(encode_payload(bytearray(), response)))
            self.pump(reply_link)

    def pump(self, link: Link) -> None:
        """Send what the link's credit allows: pending replies, then the partition's events."""
        with self.ns.lock:
            while link.credit > 0 and not link.closed and link.replies:
                self._send_message(link, link.replies.pop(0))
            if link.partition is None:
                return
            events = link.partition.events
            while link.credit > 0 and not link.closed and link.position < len(events):
                self._send_message(link, events[link.position].payload)
                link.position += 1

    def _send_message(self, link: Link, payload: bytes):
        delivery_id = self.next_outgoing[link.channel]
        self.next_outgoing[link.channel] += 1
        self.send(
            link.channel,
            amqp.TransferFrame(
                handle=link.handle,
                delivery_id=delivery_id,
                delivery_tag=struct.pack(">I", delivery_id),
                message_format=0,
                settled=True,
                more=False,
                rcv_settle_mode=None,
                state=None,
                resume=None,
                aborted=None,
                batchable=None,
                payload=payload,
            ),
        )
        link.delivery_count += 1
        link.credit -= 1


@functools.cache
def _resolver(partitions: int):
    from azure.eventhub._buffered_producer._partition_resolver import PartitionResolver

    return PartitionResolver([str(i) for i in range(partitions)])


def partition_for_key(key: str, partitions: int) -> str:
    """The service's partition-key hash, as the SDK reproduces it for its buffered producer."""
    return _resolver(partitions).get_partition_id_by_partition_key(key)


class EventHubsEndpoint:
    """Listen on 127.0.0.1:port; a thread per connection."""

    def __init__(self, port: int, hub: str, partitions: int = 4, consumer_groups=("$Default",)):
        self.namespace = Namespace(hub, partitions, consumer_groups)
        self.port, self.hub = port, hub
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, self.hub)

    def _accept(self):
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            Connection(self.namespace, sock).start()

    def start(self) -> "EventHubsEndpoint":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.close()


def measure_sdk_throughput(events: int, port: int) -> dict:
    """Publish `events` simulated events with the project's publisher and read them back with
    `receive_batch`, against this endpoint running in its own process (it must not share the
    SDK's GIL); events per second each way."""
    import json
    import subprocess

    from azure.eventhub import EventHubConsumerClient

    from patient_flow_dagster.ingestion.eventhubs_amqp import EventHubsTarget, publish
    from patient_flow_dagster.ingestion.simulator import simulate

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "patient_flow_dagster_tests.eventhubs_endpoint",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        connection = server.stdout.readline().strip()
        sim = simulate(events, seed=5)
        started = time.perf_counter()
        publish(
            sim.events,
            EventHubsTarget("patient-events", connection_string=connection),
            progress=None,
        )
        publish_seconds = time.perf_counter() - started
        received, done = [0], threading.Event()

        def on_batch(_context, batch):
            received[0] += len(batch)
            if received[0] >= events:
                done.set()

        client = EventHubConsumerClient.from_connection_string(connection, "$Default")
        started = time.perf_counter()
        worker = threading.Thread(
            target=client.receive_batch,
            daemon=True,
            kwargs=dict(on_event_batch=on_batch, max_batch_size=1_000, starting_position="-1"),
        )
        worker.start()
        done.wait(600)
        receive_seconds = time.perf_counter() - started
        client.close()
        report = {
            "events": events,
            "publish_events_per_second": round(events / publish_seconds),
            "receive_events_per_second": round(received[0] / receive_seconds),
            "received": received[0],
        }
        print(json.dumps(report))
        return report
    finally:
        server.terminate()
        server.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5673)
    parser.add_argument("--hub", default="patient-events")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--consumer-group", action="append", default=None)
    parser.add_argument(
        "--bench",
        type=int,
        default=None,
        metavar="EVENTS",
        help="measure the SDK's publish and receive throughput, then exit",
    )
    args = parser.parse_args(argv)
    if args.bench:
        measure_sdk_throughput(args.bench, args.port)
        return 0
    endpoint = EventHubsEndpoint(
        args.port, args.hub, args.partitions, args.consumer_group or ["$Default"]
    ).start()
    print(endpoint.connection_string, flush=True)
    endpoint.thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
