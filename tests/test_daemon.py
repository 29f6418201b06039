"""The real daemon as a subprocess: HTTP ingest and OTLP to `finops spend`, shutdown and crashes.

Nothing acknowledged may be lost: a 2xx is sent only after the batch committed, so after a
SIGTERM (graceful) or a SIGKILL (crash) every record of every acknowledged batch is stored once.
"""

from __future__ import annotations

import gzip
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from finops.cli.main import app
from finops.storage.db import create_engine_for
from finops.storage.tables import dead_letters, usage_records
from tests.conftest import usage
from tests.daemon_proc import OTHER_TOKEN, TOKEN, DaemonProcess
from tests.test_otlp import EXPORT

runner = CliRunner()


def _spend(db_url: str, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["spend", "--db", db_url, "--format", "json", "--month", "2026-11", *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _stored(db_url: str) -> dict[tuple[str, str], int]:
    """(source, record id) -> how many times it is stored."""
    engine = create_engine_for(db_url)
    u = usage_records.c
    with engine.connect() as conn:
        rows = conn.execute(select(u.source, u.record_id, func.count()).group_by(u.source, u.record_id))
        found = {(s, r): n for s, r, n in rows}
    engine.dispose()
    return found


@pytest.fixture
def daemon(tmp_path: Path, db_url: str) -> Any:
    proc = DaemonProcess(tmp_path, db_url).start()
    yield proc
    proc.stop(signal.SIGKILL)


def test_http_usage_and_otlp_show_up_in_finops_spend(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        batch = [usage(i, flow="support-gpt-en") for i in range(10)]
        answer = client.post("/v1/usage", json=batch)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "received": 10,
            "stored": 10,
            "duplicates": 0,
            "rejected": 0,
            "unpriced": 0,
            "rejections": [],
        }
        traces = client.post("/v1/traces", json=EXPORT)
        assert traces.status_code == 200 and traces.json() == {}
        again = client.post("/v1/usage", json=batch[:3])  # a retried batch: duplicates are successes
        assert again.status_code == 200 and again.json()["duplicates"] == 3 and again.json()["stored"] == 0
    doc = _spend(daemon.db_url, "--by", "flow")
    flows = {row["flow"]: row for row in doc["rows"]}
    assert flows["support-gpt-en"]["records"] == 11  # ten records and one OTLP span
    assert flows["code-review"]["records"] == 1
    # the source is the token's, never the payload's
    assert set(_stored(daemon.db_url)) >= {("app", "req-0")}
    with daemon.client() as client:
        over_http = client.get("/v1/spend", params={"by": "flow", "month": "2026-11"})
    assert over_http.status_code == 200
    assert over_http.json()["total_usd"] == doc["total_usd"]


def test_rejections_come_back_per_record_and_are_dead_letters(daemon: DaemonProcess) -> None:
    good, bad = usage(1), {"id": "x-1", "ts": "yesterday", "model": "gpt-4o"}
    parts = {**usage(2), "cached_input_tokens": 5000, "input_tokens": 10}
    with daemon.client() as client:
        answer = client.post("/v1/usage", json=[good, bad, parts])
        assert answer.status_code == 200
        doc = answer.json()
        assert (doc["stored"], doc["rejected"]) == (1, 2)
        assert [r["index"] for r in doc["rejections"]] == [1, 2]
        assert doc["rejections"][0]["id"] == "x-1" and "ISO 8601" in doc["rejections"][0]["reason"]
        assert "exceed input_tokens" in doc["rejections"][1]["reason"]
        everything_bad = client.post("/v1/usage", json=bad)
        assert everything_bad.status_code == 422 and everything_bad.json()["rejected"] == 1
        conflict = client.post("/v1/usage", json={**good, "output_tokens": 1})
        assert conflict.status_code == 422 and "conflict" in conflict.json()["rejections"][0]["reason"]
        ndjson = "\n".join([json.dumps(usage(3)), "{not json", json.dumps(usage(4))])
        lines = client.post("/v1/usage", content=ndjson, headers={"Content-Type": "application/x-ndjson"})
        assert lines.json()["stored"] == 2 and lines.json()["rejections"][0]["index"] == 2
        not_json = client.post("/v1/usage", content=b"{oops")
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    engine = create_engine_for(daemon.db_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(dead_letters)) >= 4
    engine.dispose()


def test_tokens_are_required_and_name_the_source(daemon: DaemonProcess) -> None:
    record = usage(7)
    missing = httpx.post(daemon.base + "/v1/usage", json=record)
    assert missing.status_code == 401 and "FINOPS_INGEST_TOKENS" in missing.json()["error"]
    wrong = httpx.post(daemon.base + "/v1/usage", json=record, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401
    with daemon.client(OTHER_TOKEN) as client:
        assert client.post("/v1/usage", json={**record, "source": "app"}).json()["stored"] == 1
    assert ("gateway", "req-7") in _stored(daemon.db_url)
    assert ("app", "req-7") not in _stored(daemon.db_url)
    assert httpx.get(daemon.base + "/v1/spend").status_code == 401
    assert httpx.get(daemon.base + "/healthz").json()["status"] == "ok"
    metrics = httpx.get(daemon.base + "/metrics").text
    assert 'finops_http_requests_total{route="usage",status="401"} 2.0' in metrics


def _raw_request(port: int, head: bytes, body: bytes) -> bytes:
    """Send bytes as they are (a lying Content-Length, chunked) and read the answer."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head + body)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before reading it all: that is the point
            pass
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_body_limit_holds_whatever_the_headers_say(tmp_path: Path, db_url: str) -> None:
    proc = DaemonProcess(tmp_path, db_url, FINOPS_MAX_BODY_BYTES="65536").start()
    try:
        big = json.dumps([usage(i) for i in range(400)]).encode()  # ~130 kB
        assert len(big) > 65536
        auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
        declared = _raw_request(
            proc.port,
            b"POST /v1/usage HTTP/1.1\r\nHost: x\r\n" + auth + f"Content-Length: {len(big)}\r\n\r\n".encode(),
            b"",  # refused on the header alone: the body is never read
        )
        assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
        assert b"FINOPS_MAX_BODY_BYTES" in declared
        chunked_body = b"".join(
            f"{len(big[i : i + 8192]):x}\r\n".encode() + big[i : i + 8192] + b"\r\n"
            for i in range(0, 81920, 8192)
        )  # just past the limit, with no Content-Length to go by
        chunked = _raw_request(
            proc.port,
            b"POST /v1/usage HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n",
            chunked_body + b"0\r\n\r\n",
        )
        assert chunked.startswith(b"HTTP/1.1 413"), chunked[:200]
        lying = _raw_request(  # says 100 bytes, sends 130 kB: only 100 are read, and they are not JSON
            proc.port,
            b"POST /v1/usage HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 100\r\n\r\n",
            big,
        )
        assert lying.startswith(b"HTTP/1.1 400"), lying[:200]
        bomb = gzip.compress(b"[" + b" " * 10_000_000 + b"]")
        with proc.client() as client:
            zipped = client.post("/v1/usage", content=bomb, headers={"Content-Encoding": "gzip"})
            assert zipped.status_code == 413
            small = gzip.compress(json.dumps([usage(1)]).encode())
            ok = client.post("/v1/usage", content=small, headers={"Content-Encoding": "gzip"})
            assert ok.status_code == 200 and ok.json()["stored"] == 1
        assert len(_stored(db_url)) == 1  # nothing of the refused bodies was stored
        assert httpx.get(proc.base + "/healthz").status_code == 200  # and the daemon is fine
    finally:
        proc.stop(signal.SIGKILL)


def _load(
    proc: DaemonProcess, batches: list[list[dict[str, Any]]], acked: list[int], workers: int = 4
) -> None:
    """Post batches from ``workers`` threads until done or the daemon goes away; note the 2xx ones."""
    lock = threading.Lock()
    queue = list(enumerate(batches))

    def worker() -> None:
        with proc.client() as client:
            while True:
                with lock:
                    if not queue:
                        return
                    index, batch = queue.pop(0)
                try:
                    answer = client.post("/v1/usage", json=batch)
                except httpx.HTTPError:
                    return
                if 200 <= answer.status_code < 300:
                    assert answer.json()["stored"] + answer.json()["duplicates"] == len(batch)
                    with lock:
                        acked.append(index)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


def _batches(n: int, size: int = 500) -> list[list[dict[str, Any]]]:
    return [[usage(b * size + i) for i in range(size)] for b in range(n)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sigterm_during_a_load_of_50k_loses_nothing_acknowledged(tmp_path: Path, db_url: str) -> None:
    proc = DaemonProcess(tmp_path, db_url).start()
    batches = _batches(100)  # 50,000 records
    acked: list[int] = []
    loader = threading.Thread(target=_load, args=(proc, batches, acked))
    loader.start()
    while len(acked) < 15:
        time.sleep(0.01)
    assert proc.stop(signal.SIGTERM) == 0  # a clean stop exits 0
    loader.join()
    stored = _stored(db_url)
    assert all(n == 1 for n in stored.values())
    for index in acked:
        for record in batches[index]:
            assert ("app", record["id"]) in stored
    assert len(acked) < len(batches), "the daemon stopped before the load ended"
    events = [line.get("msg") for line in proc.logs()]
    assert "signal received" in events and "finops daemon stopped" in events


def test_sigkill_then_restart_keeps_every_acknowledged_record_once(tmp_path: Path, db_url: str) -> None:
    proc = DaemonProcess(tmp_path, db_url).start()
    batches = _batches(40, size=250)
    acked: list[int] = []
    loader = threading.Thread(target=_load, args=(proc, batches, acked))
    loader.start()
    while len(acked) < 8:
        time.sleep(0.01)
    proc.stop(signal.SIGKILL)
    loader.join()
    first = _stored(db_url)
    for index in acked:
        assert all(("app", r["id"]) in first for r in batches[index])
    proc.start()  # the restarted daemon; the client retries every batch, acknowledged or not
    retried: list[int] = []
    _load(proc, batches, retried)
    assert sorted(retried) == list(range(len(batches)))
    stored = _stored(db_url)
    assert len(stored) == 40 * 250 and all(n == 1 for n in stored.values())
    total = _spend(db_url)["totals"]["records"]
    assert total == 40 * 250  # the rollups agree: nothing counted twice
    proc.stop()


def test_litellm_logging_payloads_over_http(daemon: DaemonProcess) -> None:
    from tests.test_litellm_logs import payload

    first, second = payload(id="chatcmpl-1"), payload(id="chatcmpl-2", cache_hit=True)
    with daemon.client() as client:
        answer = client.post("/v1/litellm", json=[first, second])
        assert answer.status_code == 200, answer.text
        assert (answer.json()["stored"], answer.json()["skipped"]) == (1, 1)  # a cache hit costs nothing
        again = client.post(
            "/v1/litellm", content=json.dumps(first), headers={"Content-Type": "application/x-ndjson"}
        )
        assert again.json()["duplicates"] == 1
        wrong = client.post("/v1/litellm", params={"kind": "csv"}, json=[first])
        assert wrong.status_code == 400 and "standard, spendlogs" in wrong.json()["error"]
    flows = {row["flow"]: row for row in _spend(daemon.db_url, "--by", "flow")["rows"]}
    assert flows["support-gpt-en"]["records"] == 1 and flows["support-gpt-en"]["reasoning_tokens"] == 320


def _as_protobuf(export: dict[str, Any]) -> bytes:
    """The OTLP/JSON export as the protobuf an exporter on its default protocol sends."""
    import base64
    import copy

    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    doc = copy.deepcopy(export)
    for resource_spans in doc["resourceSpans"]:
        for scope in resource_spans["scopeSpans"]:
            for span in scope["spans"]:
                for name in ("traceId", "spanId"):  # hex in OTLP/JSON, base64 in protobuf's JSON mapping
                    span[name] = base64.b64encode(bytes.fromhex(span[name])).decode()
    return bytes(ParseDict(doc, ExportTraceServiceRequest()).SerializeToString())


def test_otlp_protobuf_and_json_of_the_same_spans_are_stored_once(daemon: DaemonProcess) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    with daemon.client() as client:
        answer = client.post(
            "/v1/traces", content=_as_protobuf(EXPORT), headers={"Content-Type": "application/x-protobuf"}
        )
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-protobuf"
        response = ExportTraceServiceResponse()
        response.ParseFromString(answer.content)
        assert not response.HasField("partial_success")
        again = client.post("/v1/traces", json=EXPORT)  # the same spans as OTLP/JSON: duplicates
        assert again.status_code == 200
        garbage = client.post(
            "/v1/traces", content=b"\xff\x00junk", headers={"Content-Type": "application/x-protobuf"}
        )
        assert garbage.status_code == 400 and "ExportTraceServiceRequest" in garbage.json()["error"]
    stored = _stored(daemon.db_url)
    assert len(stored) == 2 and all(n == 1 for n in stored.values())
    assert ("app", "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7") in stored
    assert _spend(daemon.db_url)["totals"]["records"] == 2


def test_bodies_are_read_as_senders_write_them_and_bad_ones_get_json_errors(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        members = gzip.compress(json.dumps(usage(1)).encode() + b"\n") + gzip.compress(
            json.dumps(usage(2)).encode() + b"\n"
        )  # two gzip members, as `cat a.gz b.gz` makes
        both = client.post(
            "/v1/usage",
            content=members,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"},
        )
        assert both.json()["stored"] == 2
        junk = client.post(
            "/v1/usage",
            content=gzip.compress(json.dumps(usage(3)).encode()) + b"junk",
            headers={"Content-Encoding": "gzip"},
        )
        assert junk.status_code == 400 and "gzip" in junk.json()["error"]
        separator = {**usage(4), "flow": "support\u2028gpt"}  # a raw U+2028 inside a JSON string
        line = json.dumps(separator, ensure_ascii=False).encode()
        one = client.post("/v1/usage", content=line, headers={"Content-Type": "application/x-ndjson"})
        assert one.json()["stored"] == 1 and one.json()["rejected"] == 0
        malformed = client.post("/v1/traces", json={"resourceSpans": "x"})
        assert malformed.status_code == 400 and "ExportTraceServiceRequest" in malformed.json()["error"]
        huge = client.get("/v1/budgets/support/check", params={"estimate_usd": "1e999999999"})
        assert huge.status_code == 400 and "estimate_usd" in huge.json()["error"]
        from tests.test_litellm_logs import payload

        bad_line = "\n".join([json.dumps(payload(id="l-1")), "{nope"])
        lite = client.post("/v1/litellm", content=bad_line, headers={"Content-Type": "application/x-ndjson"})
        assert lite.status_code == 200 and lite.json()["stored"] == 1
        assert lite.json()["rejections"][0]["reason"].startswith("invalid JSON")
