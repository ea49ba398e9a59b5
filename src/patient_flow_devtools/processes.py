"""Helpers for the local services the project starts (broker, dagster dev, Azurite)."""

import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group started with start_new_session=True; SIGKILL it if it lingers
    (`dagster dev` can ignore SIGTERM)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
