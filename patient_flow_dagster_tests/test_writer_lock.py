"""One writer per lake: a second run waits for the run writing the lake, then gives up with
one line naming it, having written nothing; a killed holder leaves no stale lock."""

import signal
import subprocess
import sys
import time

import pytest
from dagster import DagsterInstance, materialize

from patient_flow_dagster.definitions import LAKE_ASSETS
from patient_flow_dagster.resources.lake import DeltaLake
from patient_flow_dagster.resources.writer_lock import LakeBusy, WriterLock

pytestmark = pytest.mark.faults

HOLD = """
import sys, time
from patient_flow_dagster.resources.writer_lock import WriterLock

lock = WriterLock(sys.argv[1], "run-A")
lock.acquire(5)
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_writer_waits_then_fails_naming_the_holder_and_writes_nothing(lakehouse):
    lake_root = str(lakehouse.root / "lake")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, lake_root], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        resources = {
            **lakehouse.resources(),
            "lake": DeltaLake(root=lake_root, writer_lock_timeout=2),
        }
        started = time.monotonic()
        result = materialize(
            LAKE_ASSETS,
            resources=resources,
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
        waited = time.monotonic() - started
        assert not result.success and waited >= 2
        messages = " ".join(
            str(event.event_specific_data) + (event.message or "") for event in result.all_events
        )
        assert "is being written by run run-A (pid" in messages
        assert "waited 2 s (PATIENT_FLOW_LAKE_LOCK_TIMEOUT)" in messages
        # Nothing written: only the lock's folder exists under the lake.
        assert [p.name for p in (lakehouse.root / "lake").iterdir()] == ["_lock"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The OS released the killed holder's lock: the next writer takes it at once.
    lock = WriterLock(lake_root, "run-B")
    started = time.monotonic()
    lock.acquire(timeout=5)
    assert time.monotonic() - started < 1
    lock.release()


def test_the_lock_names_its_holder_and_times_out(tmp_path):
    first, second = WriterLock(str(tmp_path), "run-1"), WriterLock(str(tmp_path), "run-2")
    first.acquire(1)
    try:
        waited = []
        try:
            second.acquire(0.5, on_wait=waited.append)
        except LakeBusy as busy:
            assert str(busy).startswith(f"the lake {tmp_path} is being written by run run-1 (pid ")
        else:
            raise AssertionError("a second writer took a held lock")
        assert len(waited) == 1 and waited[0].startswith("run run-1")
    finally:
        first.release()
    second.acquire(1)  # free again
    second.release()
