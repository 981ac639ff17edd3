"""Hostile requests through a real ``newsrec serve`` (gunicorn, 2 workers) over raw sockets:
what only the server shows, because gunicorn parses the request before Flask sees it.

Every answer is the JSON error shape with the right status, whether Flask or gunicorn wrote it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time

import pytest

from tests.test_reliability import Server

pytestmark = pytest.mark.slow

MIB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("hostile-http"), workers=2, threads=2) as running:
        yield running
    logs = running.logs()
    assert "Traceback" not in logs, logs[-3000:]


def exchange(server: Server, request: bytes, timeout: float = 20.0) -> tuple[int, dict, bytes]:
    """Send raw bytes, read the whole answer (the server closes the connection); returns
    (status, headers with lower-case names, body)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):  # the server answered before reading everything
            pass
        data = b""
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), data[:300]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(lines[0].split()[1]), headers, body


def json_error(status: int, headers: dict, body: bytes, want: int) -> dict:
    assert status == want, (status, body[:300])
    assert headers["content-type"].startswith("application/json"), headers
    doc = json.loads(body)
    assert set(doc) == {"error", "message"} and doc["error"] and doc["message"], doc
    assert "<html" not in body.decode("utf-8", "replace").lower()
    return doc


def chunked(body: bytes, size: int = 64 * 1024) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def post_chunked(server: Server, body: bytes) -> tuple[int, dict, bytes]:
    head = (f"POST /v1/events HTTP/1.1\r\nHost: test\r\nX-API-Key: {server.site_key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    return exchange(server, head + chunked(body))


def stored_events(server: Server, user_id: str) -> int:
    conn = sqlite3.connect(server.db)
    try:
        return conn.execute("SELECT COUNT(*) FROM events e JOIN users u ON u.key = e.user_key WHERE u.user_id = ?",
                            (user_id,)).fetchone()[0]
    finally:
        conn.close()


def test_a_chunked_body_over_the_limit_is_413_however_it_ends(server):
    event = {"user_id": "chunked-reader", "article_id": "a1", "event": "click", "ts": 1_793_466_000}
    small = json.dumps(event).encode()
    assert post_chunked(server, small)[0] == 200  # chunked bodies are read
    assert stored_events(server, "chunked-reader") == 1
    padded = json.dumps(dict(event, event_id="padded")).encode() + b" " * (MIB + 100)  # valid JSON if cut at 1 MiB
    doc = json_error(*post_chunked(server, padded), 413)
    assert doc["error"] == "payload_too_large" and str(MIB) in doc["message"]
    cut = b'{"events": [' + b",".join([small] * 20_000) + b"]}"  # cut at 1 MiB: malformed JSON, yet 413
    assert len(cut) > MIB
    assert json_error(*post_chunked(server, cut), 413)["error"] == "payload_too_large"
    assert stored_events(server, "chunked-reader") == 1


@pytest.mark.parametrize("name,body", [
    ("chunk shorter than its size", b'5\r\n{"ev\r\n0\r\n\r\n'),  # the size's last byte is the CR
    ("chunk size not hex", b"zz\r\n{}\r\n0\r\n\r\n"),
])
def test_a_malformed_chunked_body_is_400_and_stores_nothing(server, name, body):
    """gunicorn raises while Flask reads such a body: a 400 in the JSON shape, not a 500 with a
    traceback in the log."""
    head = (f"POST /v1/events HTTP/1.1\r\nHost: test\r\nX-API-Key: {server.site_key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    doc = json_error(*exchange(server, head + body), 400)
    assert doc["error"] == "bad_request" and "chunk" in doc["message"], doc
    assert "Traceback" not in server.logs()


@pytest.mark.parametrize("name,request_bytes,status,code", [
    ("uri too long", b"GET /v1/users/" + b"u" * 9000 + b"/feed HTTP/1.1\r\nHost: test\r\n\r\n", 414, "uri_too_long"),
    ("header too large", b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431,
     "request_header_fields_too_large"),
    ("malformed request line", b"GARBAGE\r\n\r\n", 400, "bad_request"),
    ("bad http version", b"GET /healthz HTTP/9.9\r\nHost: test\r\n\r\n", 400, "bad_request"),
    ("malformed header", b"GET /healthz HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n", 400, "bad_request"),
    ("unsupported transfer coding", b"POST /v1/events HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
     "bad_request"),
])
def test_errors_gunicorn_answers_itself_are_json(server, name, request_bytes, status, code):
    status_got, headers, body = exchange(server, request_bytes)
    doc = json_error(status_got, headers, body, status)
    assert doc["error"] == code, doc
    assert headers.get("connection", "").lower() == "close"


def test_a_key_in_a_malformed_request_is_not_echoed_to_the_log(server):
    status, headers, body = exchange(server, f"GET /x HTTP/1.1\r\nHost: t\r\nBad Header: {server.site_key}\r\n\r\n".encode())
    json_error(status, headers, body, 400)
    assert server.site_key not in server.logs()


def test_non_ascii_credentials_are_401_through_gunicorn(server):
    for header in (b"Authorization: Bearer v1.\xff\xfe.1999999999.abcdefghijklmnopqrstuvwxyz",
                   b"X-API-Key: " + server.site_key.encode() + b"\xa0",
                   b"X-API-Key: nr_site_\xff" + b"a" * 40):
        status, headers, body = exchange(server, b"GET /v1/users/u1/feed HTTP/1.1\r\nHost: test\r\n" + header +
                                         b"\r\nConnection: close\r\n\r\n")
        assert json_error(status, headers, body, 401)["error"] == "unauthorized"
