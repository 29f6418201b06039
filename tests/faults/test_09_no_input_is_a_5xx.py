"""Issue 10, item 9: no request gets a 5xx because of what it sends.

Found: ``GET /v1/spend?since=99999999d`` (OverflowError), ``?flow=%00`` on PostgreSQL (a NUL
reaching the database), ``POST /v1/litellm`` with ``null`` answered 200 with nothing received;
and, looking at every route, a usage ``status`` that is a list (TypeError) and an OTLP time past
the year 9999 (OverflowError). Each is now a 400 (the request as a whole) or a rejection with its
reason (one record; its batch-mates are stored). Real daemon, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import usage
from tests.daemon_proc import DaemonProcess
from tests.test_litellm_logs import payload
from tests.test_otlp import EXPORT


@pytest.fixture
def daemon(tmp_path: Path, db_url: str) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path, db_url).start()
    yield proc
    proc.stop(signal.SIGKILL)


def _refused(answer: httpx.Response, *words: str) -> None:
    """A 400 whose one-line JSON error names what to fix."""
    assert answer.status_code == 400, (answer.request.url, answer.status_code, answer.text)
    error = str(answer.json()["error"])
    assert "\n" not in error and all(word in error for word in words), error


_PERIODS = [
    ("since=99999999d", "since"),
    ("since=9999999999999999999999999999999999w", "since"),
    ("until=0001-01-01T00:00:00%2B14:00", "until"),
    ("since=1969-12-31", "since"),
    ("until=2200-01-02", "until"),
    ("month=9999-12", "month"),
    ("month=0001-01&tz=Pacific/Kiritimati", "month"),
]
_LONG = "x" * 1025
_PARAMETERS = [
    ("/v1/spend?flow=%00", "flow"),
    ("/v1/spend?model=gpt%00", "model"),
    ("/v1/spend?provider=%00", "provider"),
    ("/v1/spend?tag=team%00=a", "tag"),
    ("/v1/spend?tag=team=%1b[2J", "tag"),
    ("/v1/spend?by=flow%0d%0a", "by"),
    (f"/v1/spend?flow={_LONG}", "flow"),
    ("/v1/budgets/%00/check", "flow"),
    ("/v1/budgets/support%1b[2J/check", "flow"),
    (f"/v1/budgets/{_LONG}/check", "flow"),
    ("/v1/budgets/support/check?tag=team=%00", "tag"),
    ("/v1/budgets/support/check?estimate_usd=1%00", "estimate_usd"),
    ("/v1/spend?" + "&".join(f"flow=f{i}" for i in range(1001)), "1,000"),
]
_NASTY = ["\x00", "a\x00b", "\x1b[31m", "\r\n", "x" * 5000, "\ufeff\uffff", "%", "'; DROP TABLE x; --",
          "1e999", "-1", "0", "9" * 30, "NaN", "../../etc/passwd", " ", ""]  # fmt: skip
_GET_PARAMETERS = {
    "/v1/spend": ["by", "since", "until", "month", "today", "tz", "top", "flow", "model", "provider", "tag"],
    "/v1/budgets/support-gpt-en/check": ["estimate_usd", "tag"],
}


def test_no_query_gets_a_5xx_and_bad_ones_a_400_that_says_why(daemon: DaemonProcess) -> None:
    seen: dict[int, int] = {}
    with daemon.client() as client:
        for query, option in _PERIODS:
            _refused(client.get(f"/v1/spend?{query}"), option)
        assert client.get("/v1/spend?since=1970-01-01&until=2199-12-31").status_code == 200
        for url, word in _PARAMETERS:
            _refused(client.get(url), word)
        _refused(client.post("/v1/litellm?kind=%00", json=[]), "kind")
        assert client.get("/v1/spend?flow=support-gpt-en&tag=team=support").status_code == 200
        for path, names in _GET_PARAMETERS.items():  # every parameter of every GET route
            for name in names:
                for value in _NASTY:
                    for sent in (value, f"k={value}", f"{value}=v") if name == "tag" else (value,):
                        answer = client.get(path, params={name: sent})
                        assert answer.status_code < 500, (path, name, sent, answer.text)
                        seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
        for value in _NASTY:
            answer = client.get(f"/v1/budgets/{quote(value, safe='')}/check")
            assert answer.status_code < 500, (value, answer.text)
    assert seen.get(400, 0) > 50 and seen.get(200, 0) > 10, seen


def test_bodies_of_the_wrong_shape_are_refused_and_their_batch_mates_stored(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        for body in ("null", "true", "1", '"x"', "{}"):
            for kind in ("standard", "spendlogs"):
                answer = client.post(
                    f"/v1/litellm?kind={kind}", content=body, headers={"Content-Type": "application/json"}
                )
                assert answer.status_code in (400, 422), (body, answer.text)
                doc = answer.json()
                reason = doc.get("error") or doc["rejections"][0]["reason"]
                assert reason and "\n" not in reason, (body, doc)
        mixed = client.post("/v1/litellm", json=[None, payload(id="lite-1"), 7])
        assert mixed.status_code == 200, mixed.text
        assert (mixed.json()["received"], mixed.json()["stored"], mixed.json()["rejected"]) == (3, 1, 2)
        assert all("JSON object" in r["reason"] for r in mixed.json()["rejections"]), mixed.text
        lines = "\n".join(["null", json.dumps(payload(id="lite-2")), "[]"])
        ndjson = client.post("/v1/litellm", content=lines, headers={"Content-Type": "application/x-ndjson"})
        assert (ndjson.status_code, ndjson.json()["stored"], ndjson.json()["rejected"]) == (200, 1, 2)
        assert sorted(r["index"] for r in ndjson.json()["rejections"]) == [1, 3]  # line numbers

        # found by looking at every route: a status that is a list or an object (TypeError)...
        for n, status in enumerate(([1], {"code": 2})):
            answer = client.post("/v1/usage", json=[usage(2 * n, status=status), usage(2 * n + 1)])
            assert answer.status_code == 200, answer.text
            assert (answer.json()["stored"], answer.json()["rejected"]) == (1, 1), answer.text
            assert "status" in answer.json()["rejections"][0]["reason"]
        # ...and a span that ends after the year 9999 (OverflowError): rejected, its neighbour stored
        export = copy.deepcopy(EXPORT)
        spans = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
        late = {**copy.deepcopy(spans[0]), "spanId": "00f067aa0ba902ff"}
        late["startTimeUnixNano"] = late["endTimeUnixNano"] = "9" * 30
        spans.append(late)
        traced = client.post("/v1/traces", json=export)
        assert traced.status_code == 200, traced.text
        assert traced.json()["partialSuccess"]["rejectedSpans"] == 1, traced.text
