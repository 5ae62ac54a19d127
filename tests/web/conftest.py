"""The web app in its own process on the loopback address, with the tiny random models: one app per
pytest process (each xdist worker) for all the web tests it runs."""

from __future__ import annotations

import socket
import time
import urllib.request
from dataclasses import dataclass

import pytest

START_S = 120


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def rss_mb(self) -> float:
        """The app process's resident memory now."""
        with open(f"/proc/{self.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server(tiny_models, tmp_path_factory, fork_process):
    """The running app (`Server`), started once (a process forked from this one: no fresh interpreter's imports)
    and killed after the last test."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    argv = ["serve", "--model", tiny_models / "sr", "--gen-model", tiny_models / "gen", "--port", port, "--max-side", 512, "--device", "cpu"]
    process = fork_process(argv, log)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + START_S
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if not process.is_alive() or time.time() > deadline:
                process.kill()
                pytest.fail(f"the app did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    yield Server(url, process.pid)
    process.kill()  # nothing to save; a graceful stop of the app takes seconds
    process.join(timeout=30)
