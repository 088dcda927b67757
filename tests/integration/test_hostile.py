"""Hostile input through the gateway: each case a clear 4xx, the function that got it keeps
serving (same process, no restart), and a normal request sent meanwhile succeeds."""

import io
import json
import struct
import threading
import zlib

import pytest
from PIL import Image

from tests.conftest import CROWD_PHOTO, shared_data


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims a huge size (no pixel data worth decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _png_with_chunk(kind: bytes, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    extra = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return data[:33] + extra + data[33:]  # after IHDR


def _saved(format_name: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format=format_name)
    return buffer.getvalue()


def _ply(value: str) -> bytes:
    header = "ply\nformat ascii 1.0\nelement vertex 2\n" + "".join(f"property double {n}\n" for n in ("x", "y", "z", "nx", "ny", "nz"))
    return (header + "end_header\n0 0 0 0 0 1\n" + f"{value} 0 0 0 0 1\n").encode()


BIG_TEXT = zlib.compress(b"a" * 20_000_000)
IMAGE_CASES = [
    ("side of 32767 px", _png_header_only(32767, 1), 413),
    ("1 x 400000", _png_header_only(1, 400_000), 413),
    ("zTXt chunk inflating to 20 MB", _png_with_chunk(b"zTXt", b"comment\0\0" + BIG_TEXT), 400),
    ("iCCP chunk inflating to 20 MB", _png_with_chunk(b"iCCP", b"icc\0\0" + BIG_TEXT), 400),
    ("PPM", _saved("PPM"), 415),
    ("malformed PPM", b"P6\n99999999 99999999\n255\n\x00", 415),
    ("TGA", _saved("TGA"), 415),
    ("EPS", _saved("EPS"), 415),
]


@pytest.fixture(scope="module")
def alive(platform):
    """Asserts afterwards that a function kept its process (no restart) and still answers."""
    def check(function: str, answer) -> None:
        before = json.loads((platform.run_dir / "state.json").read_text())["processes"][function]
        result = answer()
        after = json.loads((platform.run_dir / "state.json").read_text())["processes"][function]
        assert (after["pid"], after["restarts"]) == (before["pid"], before["restarts"]), function
        return result
    return check


@pytest.mark.parametrize(("case", "data", "status"), IMAGE_CASES, ids=[case for case, _, _ in IMAGE_CASES])
def test_hostile_images_are_4xx_and_the_face_function_keeps_serving(platform, alive, case, data, status):
    normal: dict = {}
    crowd = shared_data(CROWD_PHOTO)

    def in_flight():
        normal["status"] = platform.http.post(f"{platform.gateway}/detect", files={"image": crowd}, timeout=60).status_code

    thread = threading.Thread(target=in_flight)
    thread.start()
    response = alive("face_process", lambda: platform.http.post(f"{platform.gateway}/process", files={"image": ("x.png", data)}, timeout=60))
    thread.join()
    assert response.status_code == status, (case, response.text)
    assert response.json()["detail"]
    assert normal["status"] == 200
    submitted = platform.http.post(f"{platform.gateway}/api/v1/match/template",
                                   files={"image": ("x.png", data), "template": ("t.png", _saved("PNG"))}, timeout=60)
    assert submitted.status_code == status, (case, submitted.text)  # refused before any task exists


@pytest.mark.parametrize("value", ["3.5e38", "1e308", "-1e39", "nan", "1e20"])
def test_ply_values_beyond_float32_never_reach_opencv(platform, value):
    response = platform.http.post(f"{platform.gateway}/api/v1/match/surface",
                                  files={"model_file": ("m.ply", _ply(value)), "scene_file": ("s.ply", _ply("1"))}, timeout=60)
    if response.status_code == 201:  # the header was fine: the worker reads the values and ends the task
        from tests.integration.test_runtime import _finished
        task = _finished(platform, response.json()["uid"])
        assert task["status"] == "error" and "NaN, infinite or out-of-range" in task["error"], task
    else:
        assert response.status_code == 400, response.text


def test_parsers_answer_4xx(platform):
    gateway, http = platform.gateway, platform.http
    png = _saved("PNG")
    big_field = http.post(f"{gateway}/api/v1/match/template", files={"image": png, "template": png},
                          data={"method": "x" * 600_000}, timeout=60)
    assert big_field.status_code == 413, big_field.text
    many_parts = http.post(f"{gateway}/api/v1/match/template", files=[("f", b"x")] * 1100 + [("image", png)], timeout=60)
    assert many_parts.status_code == 413, many_parts.text
    assert http.get(f"{gateway}/api/v1/tasks", params={"offset": 2**63}, timeout=10).status_code == 422
    deep = "[" * 5000 + "]" * 5000
    nested = http.put(f"{gateway}/api/v1/settings/template", data=deep, headers={"Content-Type": "application/json"}, timeout=10)
    assert nested.status_code == 400 and "nested deeper" in nested.json()["detail"]
    assert http.get(f"{gateway}/api/v1/files//x", timeout=10).status_code == 404
    assert http.get(f"{gateway}/api/v1/files/results/../../etc/passwd", timeout=10).status_code == 404


def test_slow_clients_cannot_hold_a_functions_threads(platform):
    """More half-sent requests than the function has threads: they are dropped after
    VISIONFN_REQUEST_READ_TIMEOUT (2 s in the tests) and everyone else is served."""
    import socket

    port = int(platform.state["functions"]["tasks"].rsplit(":", 1)[1])
    stalled = []
    for _ in range(12):  # gunicorn runs 8 threads here
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        client.sendall(b"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\n")  # the headers never end
        stalled.append(client)
    try:
        assert platform.http.get(f"{platform.gateway}/api/v1/tasks", timeout=30).status_code == 200
        for client in stalled:  # each was dropped (closed, or answered with an error), none is held
            answer = client.recv(1024)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]
    finally:
        for client in stalled:
            client.close()
