"""Real local services for tests, each started in its own process group and stopped after."""

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from patient_flow_devtools.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[1]
AZURITE = ROOT / "tools" / "node_modules" / ".bin" / "azurite-blob"
# Hadoop's WASB driver reaches the storage emulator at this fixed address.
AZURITE_PORT = 10000
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    f"BlobEndpoint=http://127.0.0.1:{AZURITE_PORT}/devstoreaccount1;"
)


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            raise RuntimeError(f"service on port {port} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")
        time.sleep(0.2)


stop_group = stop_process_group


def free_port() -> int:
    """A loopback port that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def azurite(workdir: Path, port: int = AZURITE_PORT):
    """Azurite's Blob service (npm package, installed by ./run setup) on 127.0.0.1:`port`.
    Spark's WASB driver needs the emulator's fixed port 10000; SDK-only users pass a free port,
    so that test modules on parallel workers do not collide."""
    assert AZURITE.exists(), f"{AZURITE} missing: run ./run setup (npm install in tools/)"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is already in use"
    node = shutil.which("node")
    assert node, "Node.js is needed to run Azurite"
    process = subprocess.Popen(
        [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process)
        yield AZURITE_CONNECTION_STRING.replace(f":{AZURITE_PORT}/", f":{port}/")
    finally:
        # In-memory: nothing to flush, and a graceful stop waits for idle keep-alive connections.
        stop_group(process, timeout=1)
