"""Item 7: prompts, emails and secrets sent to finops, in good records and in bad ones, appear in
no table, no log line and no metric; dead letters keep where, why and a keyed hash."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, String, Text, select
from sqlalchemy.exc import DBAPIError

from finops.daemon.logs import format_exception
from finops.storage.db import create_engine_for, describe_db_error
from tests.conftest import usage
from tests.daemon_proc import DaemonProcess
from tests.test_litellm_logs import payload

PROMPT = "Patient Jane Roe, SSN 987-65-4321, diagnosis K50.9"
EMAIL = "jane.roe.secret@example.org"
TOKEN_LIKE = "sk-live-7d1c0ffee51ab5ecret"
SECRETS = (PROMPT, EMAIL, TOKEN_LIKE, "987-65-4321", "jane.roe")


def hostile_bodies() -> list[tuple[str, str, bytes]]:
    """(path, content type, body): good and bad records that carry the secrets."""
    good = usage(1, prompt=PROMPT, user=EMAIL)
    bad_ts = usage(2, prompt=PROMPT, user=EMAIL, ts="not a time " + TOKEN_LIKE)
    messages = usage(3, prompt=[{"role": "user", "content": PROMPT}], user=EMAIL, tags={"team": "x"})
    not_json = '{"id": "4", "prompt": "' + PROMPT + '", "user": "' + EMAIL + '"'  # cut short
    ndjson = "\n".join([json.dumps(good), not_json, json.dumps(bad_ts), json.dumps(messages), EMAIL])
    outcome_bad = {
        "id": "o1",
        "ts": "2026-11-03T10:00:00Z",
        "status": "maybe",
        "note": PROMPT,
        "event": EMAIL,
    }
    outcome_lines = "\n".join([json.dumps(outcome_bad), "not json " + EMAIL])
    litellm = payload(id="chatcmpl-secret", messages=[{"role": "user", "content": PROMPT}], end_user=EMAIL)
    litellm_bad = {**payload(id="chatcmpl-bad"), "startTime": "when " + TOKEN_LIKE}
    return [
        ("/v1/usage", "application/x-ndjson", ndjson.encode()),
        ("/v1/usage", "application/json", json.dumps([bad_ts, {"prompt": PROMPT, "user": EMAIL}]).encode()),
        ("/v1/usage", "application/json", gzip.compress(("[" + PROMPT + EMAIL).encode())),
        ("/v1/outcomes", "application/x-ndjson", outcome_lines.encode()),
        ("/v1/outcomes", "application/json", json.dumps([outcome_bad]).encode()),
        ("/v1/litellm", "application/json", json.dumps([litellm, litellm_bad]).encode()),
        ("/v1/traces", "application/json", json.dumps({"resourceSpans": PROMPT}).encode()),
        ("/v1/spend", "", b""),
    ]


def _every_text_in_the_database(url: str) -> str:
    engine = create_engine_for(url)
    meta = MetaData()
    meta.reflect(engine)
    texts = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            if columns:
                texts.extend(str(v) for row in conn.execute(select(*columns)) for v in row if v is not None)
    engine.dispose()
    return "\n".join(texts)


def test_secrets_sent_to_every_endpoint_are_kept_nowhere(tmp_path: Path, db_url: str) -> None:
    daemon = DaemonProcess(tmp_path, db_url, FINOPS_PROMPT_PREVIEW="false").start()
    try:
        with daemon.client() as client:
            for path, kind, body in hostile_bodies():
                headers: dict[str, Any] = {"Content-Type": kind} if kind else {}
                if body[:2] == b"\x1f\x8b":
                    headers["Content-Encoding"] = "gzip"
                if path == "/v1/spend":
                    answer = client.get(path, params={"flow": EMAIL, "by": "flow"})
                else:
                    answer = client.post(path, content=body, headers=headers)
                assert answer.status_code < 500, (path, answer.status_code, answer.text)
            metrics = httpx.get(daemon.base + "/metrics").text
    finally:
        assert daemon.stop() == 0
    stored = _every_text_in_the_database(db_url)
    assert "hmac-sha256:" in stored  # the dead letters are there, as digests
    logs = daemon.log.read_text()
    for secret in SECRETS:
        assert secret not in stored, secret
        assert secret not in logs, secret
        assert secret not in metrics, secret


@pytest.mark.postgres
def test_a_failed_statement_is_described_without_its_values(postgres_url: str) -> None:
    """PostgreSQL writes the refused value into its message, and SQLAlchemy the parameters into
    the exception: finops hides the parameters and shows only the kind and SQLSTATE."""
    engine = create_engine_for(postgres_url)
    with pytest.raises(DBAPIError) as failed, engine.connect() as conn:
        conn.exec_driver_sql("SELECT %s::bigint", (EMAIL,))
    assert "parameters hidden" in str(failed.value)
    assert EMAIL in str(failed.value.orig)  # the server's own message: never shown by finops
    assert describe_db_error(failed.value) == "InvalidTextRepresentation (SQLSTATE 22P02)"
    logged = format_exception((type(failed.value), failed.value, failed.value.__traceback__))
    assert "InvalidTextRepresentation (SQLSTATE 22P02)" in logged and EMAIL not in logged
    engine.dispose()
