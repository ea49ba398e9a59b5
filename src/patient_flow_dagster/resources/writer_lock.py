"""One writer per lake: a run that writes a local lake holds an OS file lock beside it.

The run queue serializes the runs the daemon launches; this also covers runs started from a
terminal (`dagster asset materialize`, `patient-flow demo`) and tests. The lock is `flock` on
`<lake>/_lock/writer.lock`: the OS releases it when the holding process ends, even on SIGKILL,
so it is never stale. Its content names the holder (run, process, host, since), which is what a
waiting writer reports when it gives up.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO


class LakeBusy(RuntimeError):
    """Another run holds the lake for longer than this one may wait."""


class WriterLock:
    def __init__(self, lake_root: str, run_id: str):
        self.path = Path(lake_root) / "_lock" / "writer.lock"
        self.run_id = run_id
        self.handle: TextIO | None = None

    def holder(self) -> str:
        """Who holds the lock, in words (from the lock file's content)."""
        try:
            held = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            held = {}
        if not held:
            return "another process"
        return (
            f"run {held.get('run_id')} (pid {held.get('pid')} on {held.get('host')}, "
            f"since {held.get('since')})"
        )

    def acquire(self, timeout: float, on_wait=None) -> None:
        """Take the lock, waiting up to `timeout` seconds; `on_wait(holder)` is called once
        when it has to wait. Raise LakeBusy naming the holder after the timeout."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        deadline, told = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise LakeBusy(
                        f"the lake {self.path.parent.parent} is being written by "
                        f"{self.holder()}; waited {timeout:.0f} s "
                        "(PATIENT_FLOW_LAKE_LOCK_TIMEOUT)"
                    ) from None
                if on_wait and not told:
                    on_wait(self.holder())
                    told = True
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "run_id": self.run_id,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            )
        )
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.flush()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
