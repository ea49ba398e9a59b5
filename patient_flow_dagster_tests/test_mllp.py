"""HL7 v2 ADT over MLLP on real sockets: the mapping to contract v2, acknowledgements a sender
can trust (AA only once durable, AE naming the field, garbage closed), concurrent senders, and
a listener killed mid-stream that loses and doubles nothing."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import hl7
import pyarrow.parquet as pq
import pytest
from hl7.client import MLLPClient

from patient_flow_dagster.ingestion import hl7_adt
from patient_flow_dagster.ingestion.mllp import MllpListener
from patient_flow_dagster.model.reference import packaged

PLACES = hl7_adt.Places.of(packaged())

# A sample of python-hl7's own test corpus (tests/samples.py, from the Victorian Department of
# Health's VINAH sample messages): an outpatient A04 without a visit number.
VINAH_A04 = "\r".join(
    [
        "MSH|^~\\&||ABCHS||AUSDHSV|20070101112951||ADT^A04^ADT_A01|12334456778890|P|2.5|||NE|NE"
        "|AU|ASCII",
        "EVN|A04|20060705000000",
        "PID|1||0000112234^^^100^A||XXXXXXXXXX^^^^^^S||10131113|1||4|^^RICHMOND^^3121||||1201"
        "||||||||1100|||||||||AAA",
        "PD1||2",
        "NK1|1||1||||||||||||||||||2",
        "PV1|1|O||||^^^^^1",
    ]
)


def adt(trigger="A01", control="C1", visit="V1", place="ICU^^9^1", klass="I", **fields):
    """An ADT message of hospital 1 (America/New_York) in its local time (no offset)."""
    evn = (
        f"EVN|{trigger}|{fields.get('recorded', '20260710081000')}||||{fields.get('occurred', '')}"
    )
    pv1 = ["PV1", "1", klass, place] + [""] * 15 + [visit] + [""] * 25
    pv1[44] = fields.get("admitted", "20260710080500")
    pv1 += [fields.get("discharged", "")]
    return "\r".join(
        [
            f"MSH|^~\\&|EPIC|RIVERSIDE|PFLOW|LAKE|20260710081000||ADT^{trigger}^ADT_A01|{control}"
            f"|P|2.5.1|{fields.get('sequence', '')}",
            evn,
            f"PID|1||{fields.get('patient', 'MRN1')}^^^RIVERSIDE^MR||DOE^JANE||"
            f"{fields.get('born', '19660312')}|{fields.get('sex', 'F')}",
            "|".join(pv1),
        ]
    )


def test_the_mapping_of_each_trigger_and_field():
    event = hl7_adt.to_event(hl7_adt.parse(adt(sequence="42")), PLACES)
    assert event == {
        "event_id": "RIVERSIDE:C1",
        "event_type": "ADMIT",
        "encounter_id": "V1",
        "event_time": "2026-07-10T12:10:00",  # 08:10 EDT, no offset: the hospital's zone
        "sequence": 42,
        "patient_id": "MRN1",
        "gender": "Female",
        "age": 60,
        "department": "ICU",
        "bed_id": 9,
        "hospital_id": 1,
        "admission_time": "2026-07-10T12:05:00",
        "discharge_time": None,
    }
    types = {
        trigger: hl7_adt.to_event(hl7_adt.parse(adt(trigger)), PLACES)["event_type"]
        for trigger in ("A01", "A02", "A03", "A08", "A11", "A12", "A13", "A05")
    }
    assert types == {
        "A01": "ADMIT",
        "A02": "TRANSFER",
        "A03": "DISCHARGE",
        "A08": "UPDATE",
        "A11": "CANCEL_ADMIT",
        "A12": "CANCEL_TRANSFER",
        "A13": "CANCEL_DISCHARGE",
        "A05": "A05",  # lands as sent: the known_event_type rule quarantines it by name
    }
    registered = [hl7_adt.to_event(hl7_adt.parse(adt("A04", klass=k)), PLACES) for k in "EO"]
    assert [e["event_type"] for e in registered] == ["ADMIT", "A04"]
    # EVN-6 (occurred) wins over EVN-2 (recorded); an explicit offset is kept.
    occurred = hl7_adt.to_event(hl7_adt.parse(adt(occurred="20260710075900-0400")), PLACES)
    assert occurred["event_time"] == "2026-07-10T11:59:00"
    # The day before the 60th birthday: still 59.
    assert hl7_adt.to_event(hl7_adt.parse(adt(born="19660711")), PLACES)["age"] == 59


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (adt(visit=""), "PV1-19"),
        (adt(patient=""), "PID-3"),
        (adt(recorded="10 July 2026"), "EVN-2"),
        (adt(place="ROOF^^9^1"), "PV1-3.1"),
        (adt(place="ICU^^9^NOWHERE"), "PV1-3.4"),
        (VINAH_A04, "PV1-19"),  # third-party sample: parses, and is refused by name
    ],
)
def test_content_errors_name_the_field_in_an_AE(message, field):
    parsed = hl7_adt.parse(message)
    with pytest.raises(hl7_adt.ContentError) as refused:
        hl7_adt.to_event(parsed, PLACES)
    assert refused.value.field == field
    ack = hl7.parse(hl7_adt.acknowledgement(parsed, "AE", refused.value))
    assert str(ack.segment("MSA")(1)) == "AE"
    assert str(ack.segment("MSA")(2)) == str(parsed.segment("MSH")(10))
    segment, _, rest = field.partition("-")
    assert str(ack.segment("ERR")(2)).startswith(f"{segment}^1^{rest.split('.')[0]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def landed(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


@pytest.fixture
def listener(tmp_path):
    port = free_port()
    mllp = MllpListener(
        packaged(),
        tmp_path / "landing",
        tmp_path / "dead",
        tmp_path / "wal" / "write-ahead.jsonl",
        batch_events=50,
        batch_seconds=0.5,
        max_frame_bytes=64_000,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(mllp.serve("127.0.0.1", port)), daemon=True
    )
    thread.start()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield mllp, port, tmp_path
    loop.call_soon_threadsafe(mllp.stopping.set)
    thread.join(10)


def test_four_concurrent_senders_each_acknowledged_in_order(listener):
    _, port, tmp_path = listener
    acks: dict[int, list[str]] = {}

    def send(sender: int) -> None:
        with MLLPClient("127.0.0.1", port) as client:
            acks[sender] = []
            for n in range(25):
                reply = client.send_message(adt(control=f"S{sender}-{n}", visit=f"V{sender}-{n}"))
                msa = hl7.parse(reply.strip(b"\x0b\x1c\r").decode()).segment("MSA")
                acks[sender].append(f"{msa(1)}:{msa(2)}")

    senders = [threading.Thread(target=send, args=(s,)) for s in range(4)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(30)
    assert acks == {s: [f"AA:S{s}-{n}" for n in range(25)] for s in range(4)}
    time.sleep(1.0)  # the batch's time runs out: landed
    ids = [row["event_id"] for row in landed(tmp_path / "landing")]
    assert sorted(ids) == sorted(f"RIVERSIDE:S{s}-{n}" for s in range(4) for n in range(25))


def test_garbage_oversize_and_half_frames_close_only_their_connection(listener):
    mllp, port, tmp_path = listener
    for payload in (
        b"\x0bthis is not HL7\x1c\r",  # a frame, but not a message
        b"GET / HTTP/1.1\r\n\r\n\x1c\r",  # not even a frame
        b"\x0b" + b"MSH|" + b"x" * 70_000 + b"\x1c\r",  # over the size limit
        b"\x0b" + adt(control="HALF").encode()[:40],  # a sender that disconnects mid-frame
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(payload)
            raw.shutdown(socket.SHUT_WR)
            assert raw.recv(100) == b""  # closed, nothing acknowledged
    with MLLPClient("127.0.0.1", port) as client:
        reply = client.send_message(adt(control="AFTER"))
    assert b"MSA|AA|AFTER" in reply
    rejected = hl7.parse(
        MLLPClient("127.0.0.1", port)
        .send_message(adt(visit="", control="NOVISIT"))
        .strip(b"\x0b\x1c\r")
        .decode()
    )
    assert str(rejected.segment("MSA")(1)) == "AE"
    time.sleep(1.0)
    assert [row["event_id"] for row in landed(tmp_path / "landing")] == ["RIVERSIDE:AFTER"]
    dead = "".join(p.read_text() for p in (tmp_path / "dead").glob("*.jsonl"))
    assert "PV1-19: no visit number" in dead and "NOVISIT" in dead
    assert mllp.closed_connections == 3  # the half frame is the sender's own close


def test_a_killed_listener_loses_and_doubles_nothing(tmp_path):
    """SIGKILL mid-stream; the sender resends what it never saw acknowledged; the restarted
    listener first lands the write-ahead file. Every message sent is landed; a message landed
    twice carries one event id, which silver keeps once."""
    port = free_port()
    command = [
        sys.executable, "-c", "import sys; from patient_flow_dagster.cli import main; "
        "sys.exit(main(sys.argv[1:]))", "ingest", "--from", "mllp",
        "--port", str(port), "--landing", str(tmp_path / "landing"),
        "--batch-events", "1000", "--batch-seconds", "30", "--idle-exit", "3",
    ]  # fmt: skip

    def start():
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return process
            except OSError:
                time.sleep(0.05)
        raise AssertionError(process.stdout.read().decode())

    process, acknowledged, sent = start(), set(), [f"K{n}" for n in range(60)]
    client = MLLPClient("127.0.0.1", port)
    for n, control in enumerate(sent):
        if n == 30:
            os.kill(process.pid, signal.SIGKILL)  # nothing landed yet: all in the write-ahead file
            process.wait()
            break
        reply = client.send_message(adt(control=control, visit=control))
        assert b"MSA|AA|" + control.encode() in reply
        acknowledged.add(control)
    client.close()
    process = start()
    with MLLPClient("127.0.0.1", port) as client:
        for control in sent:
            if control not in acknowledged:
                client.send_message(adt(control=control, visit=control))
        client.send_message(adt(control="K0", visit="K0"))  # a resend of an acknowledged one
    process.wait(30)
    ids = [row["event_id"] for row in landed(tmp_path / "landing")]
    assert set(ids) == {f"RIVERSIDE:{c}" for c in sent}  # nothing lost
    assert len(ids) == len(sent) + 1  # the one resend; the same event id, kept once by silver


def test_the_whole_chain_gives_the_gold_of_the_same_events_sent_as_parquet(tmp_path, spark):
    """simulate --to mllp -> listener -> landing -> Dagster -> gold, beside the same lifecycles
    written as Parquet: the same encounters, segments, patients and census."""
    from datetime import datetime, timedelta, timezone

    from pyspark.sql import functions as F

    from patient_flow_dagster.ingestion.landing_writer import write_events
    from patient_flow_dagster.ingestion.mllp import send
    from patient_flow_dagster.ingestion.simulator import (
        LIFECYCLE_DIRTY_KINDS,
        simulate_lifecycles,
    )
    from patient_flow_dagster.model import tables as t
    from patient_flow_dagster_tests.conftest import Lakehouse

    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    clean = {kind: 0.0 for kind in LIFECYCLE_DIRTY_KINDS}
    events = simulate_lifecycles(300, seed=12, now=now, span_days=2, dirty_rates=clean).events
    as_of = {"ops": {"gold_kpis": {"config": {"as_of": now.isoformat()}}}}

    direct = Lakehouse(tmp_path / "direct", spark)
    write_events(events, direct.landing_dir)
    assert direct.materialize(run_config=as_of, checks=False).success

    via = Lakehouse(tmp_path / "mllp", spark)
    port = free_port()
    mllp = MllpListener(
        packaged(), via.landing_dir, tmp_path / "dead", tmp_path / "wal" / "w.jsonl", 100, 0.5
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(mllp.serve("127.0.0.1", port)), daemon=True
    )
    thread.start()
    time.sleep(0.5)
    assert send(events, "127.0.0.1", port, packaged()) == {"AA": len(events)}
    loop.call_soon_threadsafe(mllp.stopping.set)
    thread.join(10)
    assert via.materialize(run_config=as_of, checks=False).success

    def rows(house, table, *drop):
        frame = house.table(table).drop(*drop)
        for name, kind in frame.dtypes:  # HL7 carries 1/10,000 s: compare to the second
            if kind == "timestamp":
                frame = frame.withColumn(name, F.date_trunc("second", name))
        return sorted(map(tuple, frame.collect()), key=repr)

    for table, drop in (
        (t.FACT_ADMISSIONS, ("length_of_stay_hours",)),
        (t.FACT_MOVEMENTS, ("length_of_stay_hours",)),
        (t.DIM_PATIENT, ()),
        (t.DEPARTMENT_CENSUS_HOURLY, ()),
    ):
        assert rows(via, table, *drop) == rows(direct, table, *drop), table
    assert via.count(t.FACT_ADMISSIONS) > 50
