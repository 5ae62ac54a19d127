"""The web app under a bounded burst: 50 upscale requests from 10 concurrent clients on the loopback
address, one job at a time and a bounded queue; every request is answered, or refused with the
busy message, and the server's memory stays bounded. Uploads it must refuse: a decompression bomb,
a file that is not an image, one over the size limit."""

from __future__ import annotations

import concurrent.futures
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402


def upscale(client: Client, path, seed: int = 0):
    return client.predict(handle_file(str(path)), 2.0, "", "ddim", 2, 1.0, seed, 1, api_name="/upscale")


def png_bomb(path, side: int = 30000) -> None:
    """A valid PNG header claiming side x side pixels, with almost no data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


@pytest.mark.slow
def test_a_burst_is_answered_or_refused_as_busy_and_memory_stays_bounded(server, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (16, 16, 3), dtype=np.uint8)).save(photo)
    upscale(Client(server.url, verbose=False), photo)  # warm-up: first-request allocations are not growth
    before = server.rss_mb()

    def client_session(index: int) -> list[str]:
        # Outputs are not downloaded during the burst: Gradio rewrites its content-addressed cache file
        # when two requests make the same image (here every request's bicubic), and a download racing
        # that rewrite is cut short. One result is downloaded and checked below, alone.
        client = Client(server.url, verbose=False, download_files=False)
        outcomes = []
        for request in range(5):
            try:  # one seed per request, as users' requests differ (identical outputs share one cached file)
                compare, gallery, files = upscale(client, photo, seed=10 * index + request)
                assert len(gallery) == 1 and len(files) == 1
                outcomes.append("answered")
            except Exception as error:  # the client raises the server's refusal
                assert "queue is full" in str(error).lower(), error
                outcomes.append("busy")
        return outcomes

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        outcomes = [outcome for session in pool.map(client_session, range(10)) for outcome in session]
    assert len(outcomes) == 50 and outcomes.count("answered") >= 10, outcomes
    assert server.rss_mb() < before + 300, (before, server.rss_mb())
    _, gallery, _ = upscale(Client(server.url, verbose=False), photo, seed=99)
    assert Image.open(gallery[0]["image"]).size == (32, 32)


def test_bad_uploads_are_refused(server, tmp_path):
    client = Client(server.url, verbose=False)
    png_bomb(tmp_path / "bomb.png")
    (tmp_path / "text.png").write_bytes(b"this is not an image")
    for path in (tmp_path / "bomb.png", tmp_path / "text.png"):
        with pytest.raises(Exception) as refused:
            upscale(client, path)
        assert "queue is full" not in str(refused.value).lower()
    before = server.rss_mb()
    assert before < 2000  # the bomb was not decoded (30000 x 30000 x 3 bytes is 2.7 GB)


def test_serve_refuses_bad_options_in_one_line(capsys):
    from arbiscale.cli.main import main

    assert main(["serve", "--port", "http"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--port" in err
