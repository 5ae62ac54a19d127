"""The web app in its own process on the loopback address, with the tiny random models: one app per
pytest process (each xdist worker) for all the web tests it runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
def server(tiny_models, tmp_path_factory):
    """The running app (`Server`), started once (it takes seconds: a fresh interpreter importing gradio) and
    stopped after the last test."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "arbiscale.cli.main",
        "serve",
        "--model",
        str(tiny_models / "sr"),
        "--gen-model",
        str(tiny_models / "gen"),
        "--port",
        str(port),
        "--max-side",
        "512",
        "--device",
        "cpu",
    ]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + START_S
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                pytest.fail(f"the app did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
    yield Server(url, process.pid)
    process.terminate()
    process.wait(timeout=30)
