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
    """12 points with extent along x, y and z (past surface matching's minimum of 10 and its
    flatness check, so that only the values can refuse it), the last one's x written as ``value``."""
    header = "ply\nformat ascii 1.0\nelement vertex 12\n" + "".join(f"property double {n}\n" for n in ("x", "y", "z", "nx", "ny", "nz"))
    rows = [f"{i % 3} {i % 4} {i % 5} 0 0 1\n" for i in range(11)] + [f"{value} 1 2 0 0 1\n"]
    return (header + "end_header\n" + "".join(rows)).encode()


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
    response = alive(
        "face_process", lambda: platform.http.post(f"{platform.gateway}/process", files={"image": ("x.png", data)}, timeout=60)
    )
    thread.join()
    assert response.status_code == status, (case, response.text)
    assert response.json()["detail"]
    assert normal["status"] == 200
    submitted = platform.http.post(
        f"{platform.gateway}/api/v1/match/template", files={"image": ("x.png", data), "template": ("t.png", _saved("PNG"))}, timeout=60
    )
    assert submitted.status_code == status, (case, submitted.text)  # refused before any task exists


@pytest.mark.parametrize("value", ["3.5e38", "1e308", "-1e39", "nan", "1e20"])
def test_ply_values_beyond_float32_never_reach_opencv(platform, value):
    response = platform.http.post(
        f"{platform.gateway}/api/v1/match/surface",
        files={"model_file": ("m.ply", _ply(value)), "scene_file": ("s.ply", _ply("1"))},
        timeout=60,
    )
    if response.status_code == 201:  # the header was fine: the worker reads the values and ends the task
        from tests.integration.test_runtime import _finished

        task = _finished(platform, response.json()["uid"])
        assert task["status"] == "error", task
        assert "1 of 12 PLY vertices hold NaN, infinite or out-of-range values" in task["error"], task
    else:  # refused at submission: for the same reason
        assert response.status_code == 400, response.text
        assert "NaN, infinite or out-of-range" in response.json()["detail"], response.text


def test_parsers_answer_4xx(platform):
    gateway, http = platform.gateway, platform.http
    png = _saved("PNG")
    big_field = http.post(
        f"{gateway}/api/v1/match/template", files={"image": png, "template": png}, data={"method": "x" * 600_000}, timeout=60
    )
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


# --- what reaches a function, what the logs keep (the hostile sweep) -------------------------------


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """A request sent as it is (no client library fixes it); the answer's status, headers, body."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(request)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    return int(status_line.split(" ")[1]), {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}, body


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _strict_json(data: bytes | str):
    """JSON as the standard has it (NaN and Infinity are not)."""
    return json.loads(data, parse_constant=lambda name: pytest.fail(f"{name} in an answer is not JSON"))


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/health", "SCRIPT_NAME: /nope"),
        ("/api/v1/tasks", "SCRIPT_NAME: /api/v1"),
        ("/api/v1/tasks", "PATH_INFO: /health"),
        ("/health", "X-Forwarded-Ssl: on"),
        ("/health", "X-Forwarded-Proto: https"),
        ("/api/v1/tasks", "X_Forwarded_For: 6.6.6.6"),
        ("/api/v1/tasks", "Forwarded: for=6.6.6.6;proto=https"),
        ("/api/v1/tasks", "X-Real-IP: 6.6.6.6"),
    ],
)
def test_a_clients_server_and_forwarding_headers_change_nothing(platform, path, header):
    name, _, value = header.partition(": ")
    plain = platform.http.get(f"{platform.gateway}{path}", timeout=30)
    sent = platform.http.get(f"{platform.gateway}{path}", headers={name: value}, timeout=30)
    assert (sent.status_code, sent.headers["Content-Type"]) == (plain.status_code, "application/json"), sent.text
    assert sent.json().keys() == plain.json().keys()


def test_a_function_trusts_no_forwarder_and_answers_what_it_cannot_parse_in_json(platform):
    port = _port(platform.state["functions"]["health"])
    status, headers, body = _raw(
        port,
        b"GET /health HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: /nope\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Ssl: on\r\nConnection: close\r\n\r\n",
    )
    assert (status, headers["content-type"]) == (401, "application/json"), body  # routed as sent: only the token is missing
    for malformed in (b"GARBAGE\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"):
        status, headers, body = _raw(port, malformed)
        assert status == 400 and headers["content-type"] == "application/json" and _strict_json(body)["detail"]


def test_a_malformed_key_is_neither_echoed_nor_logged_and_logs_are_private(platform):
    import stat

    for header in (f"Authorization: Bearer {platform.key}\x00", f"X-API-Key: {platform.key}\x7f"):
        status, headers, body = _raw(
            _port(platform.gateway), b"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\n" + header.encode() + b"\r\nConnection: close\r\n\r\n"
        )
        assert status == 400 and headers["content-type"].startswith("application/json") and headers["x-content-type-options"] == "nosniff"
        assert _strict_json(body)["detail"].startswith("Malformed HTTP request") and platform.key.encode() not in body
    assert "refused a malformed request" in platform.log("gateway") and platform.key not in platform.log("gateway")
    logs = list((platform.run_dir / "logs").glob("*.log"))
    assert logs and {log.name: stat.S_IMODE(log.stat().st_mode) for log in logs} == {log.name: 0o600 for log in logs}


def test_no_500_for_far_dates_or_a_nul_in_a_console_name(platform):
    far = platform.http.get(f"{platform.gateway}/api/data/statByDate", params={"startDate": "9999-12-20"}, timeout=30)
    assert far.status_code == 200, far.text
    days = [day["stat_date"] for day in far.json()]
    assert (days[0], days[-1], len(days)) == ("9999-12-20", "9999-12-30", 11)  # the window stops at the last date taken
    for path in ("/console/%00", "/console/api.js%00.html", "/console/%0a"):
        response = platform.http.get(f"{platform.gateway}{path}", timeout=30)
        assert response.status_code == 404 and response.json()["detail"], (path, response.text)
    assert "\x00" not in platform.log("console")


def test_a_file_name_not_in_utf8_is_refused_alone_and_the_others_inspected(platform):
    from tests.conftest import SHARED_DATA

    good = sorted((SHARED_DATA / "defects" / "neu_det" / "images").glob("crazing_*.jpg"))[:2]
    parts = [(path.name.encode(), path.read_bytes()) for path in good]
    parts.insert(1, (b"bad-\xff\xfe.jpg", good[0].read_bytes()))
    body = (
        b"".join(
            b'--B\r\nContent-Disposition: form-data; name="images"; filename="' + name + b'"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n"
            for name, data in parts
        )
        + b"--B--\r\n"
    )
    response = platform.http.post(
        f"{platform.gateway}/api/detect", data=body, timeout=60, headers={"Content-Type": "multipart/form-data; boundary=B"}
    )
    assert response.status_code == 200, response.text
    first, refused, last = response.json()
    assert (first["name"], last["name"]) == (good[0].name, good[1].name) and first["figId"] and last["figId"]
    assert refused["status"] == 400 and "not UTF-8" in refused["details"] and refused["name"].startswith("bad-")


def test_answers_are_valid_json_typed_never_sniffed_and_the_docs_confined(platform):
    png = _saved("PNG")
    steps = '[{"tool": "template", "params": {"threshold": NaN}}, {"tool": "template", "params": {"threshold": "-inf"}}]'
    chain = platform.http.post(
        f"{platform.gateway}/api/v1/match/chain",
        files={"image": ("i.png", png), "template": ("t.png", png)},
        data={"steps": steps},
        timeout=60,
    )
    assert chain.status_code == 422 and chain.headers["X-Content-Type-Options"] == "nosniff"
    assert [error["input"] for error in _strict_json(chain.text)["detail"]] == ["NaN", "-inf"], chain.text
    for path in ("/api/v1/tasks", "/openapi.json", "/docs", "/nowhere"):
        assert platform.http.get(f"{platform.gateway}{path}", timeout=30).headers["X-Content-Type-Options"] == "nosniff", path
    policy = platform.http.get(f"{platform.gateway}/docs", timeout=30).headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert platform.http.get(f"{platform.gateway}/docs/visionfn-docs.js", timeout=30).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/settings/template%2F", "/api/v1/settings/template%2f", "/api/v1/settings/%2Ftemplate"])
def test_an_encoded_slash_is_no_trailing_slash(platform, path):
    assert platform.http.get(f"{platform.gateway}/api/v1/settings/template", timeout=30).status_code == 200
    response = platform.http.get(f"{platform.gateway}{path}", timeout=30)
    assert 400 <= response.status_code < 500 and response.json()["detail"], response.text
