"""The daemon's cycle in process: budgets re-read, alerts after ingest, schedules once, retention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from typer.testing import CliRunner

from finops.cli.main import app
from finops.daemon.cycle import Daemon
from finops.daemon.parse_pool import BodyProblem
from finops.errors import ConfigError
from finops.settings import Settings
from finops.storage.tables import alert_outbox, prompts, provider_usage, schedule_runs, usage_records
from finops.usecases.ledger import Ledger
from finops.usecases.retention import run_retention
from tests.conftest import usage
from tests.provider_fakes import OPENAI_KEY, FakeProvider, openai_fake
from tests.slack_fake import TOKEN, FakeSlack
from tests.slack_fake import slack as slack_fixture  # noqa: F401  (the `slack` fixture)

__all__ = ["openai_fake"]  # a fixture, used by name

GOOD = """\
budgets:
  - flow: support-gpt-en
    owner: "@dana"
    slack_channel: "#support-costs"
    daily_cap_usd: 0.05
    thresholds: [0.5, 1.0]
"""


def _settings(db_url: str, budgets: Path, slack: FakeSlack | None = None, **more: Any) -> Settings:
    base: dict[str, Any] = {"database_url": db_url, "budgets_dir": budgets, "cycle_s": 0.2}
    if slack is not None:
        base.update(slack_bot_token=SecretStr(TOKEN), slack_base_url=slack.base_url, slack_timeout_s=2.0)
    return Settings(**{**base, **more})


@pytest.fixture
def budgets(tmp_path: Path) -> Path:
    folder = tmp_path / "budgets"
    folder.mkdir()
    (folder / "support.yaml").write_text(GOOD)
    return folder


def _count(ledger: Ledger, table: Any, *where: Any) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def test_a_batch_over_the_cap_alerts_the_owner_in_the_next_cycle(
    db_url: str, budgets: Path, slack: FakeSlack
) -> None:
    daemon = Daemon(_settings(db_url, budgets, slack), create=True)
    daemon.start()
    try:
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        batch = [usage(i, flow="support-gpt-en", ts=now, tags={}) for i in range(40)]
        result = daemon.service.usage(batch, source="app")
        assert result.stored == 40
        for _ in range(200):  # the ingest wakes the cycle; no need to wait for FINOPS_CYCLE_S
            if slack.posts("#support-costs"):
                break
            threading.Event().wait(0.05)
        daemon.cycle()  # and more cycles send nothing again
        texts = [p.text or "" for p in slack.posts("#support-costs")]
        (text,) = texts  # one message for the jump: 100% (50% is recorded, silently)
        assert "support-gpt-en passed 100%" in text
    finally:
        daemon.shutdown()


def test_a_broken_edit_keeps_the_last_good_budgets_and_tells_the_owner_once(
    db_url: str, budgets: Path, slack: FakeSlack
) -> None:
    daemon = Daemon(_settings(db_url, budgets, slack, slack_default_channel="#finops"), create=True)
    try:
        daemon.cycle()
        assert [b.key for b in daemon.budgets.budgets] == ["support-gpt-en"]
        (budgets / "support.yaml").write_text(GOOD.replace("daily_cap_usd: 0.05", "daily_cap_usd: lots"))
        daemon.cycle()
        assert [b.key for b in daemon.budgets.budgets] == ["support-gpt-en"]  # still enforced
        daemon.cycle()
        told = slack.posts("#support-costs")
        assert len(told) == 1  # once per broken version of the file
        text = told[0].text or ""
        assert "@dana" in text and "support.yaml:5" in text and "last good version" in text
        (budgets / "support.yaml").write_text(GOOD.replace("0.05", "7"))
        daemon.cycle()
        assert daemon.budgets.budgets[0].daily_cap_usd == 7
        assert daemon.budgets.current.errors_by_file == {}
    finally:
        daemon.shutdown()


def test_two_replicas_post_the_digest_and_the_monthly_report_once(
    db_url: str, budgets: Path, slack: FakeSlack
) -> None:
    settings = _settings(
        db_url,
        budgets,
        slack,
        digest_channel="#finops-digest",
        schedule_tz="Europe/Berlin",
        digest_time="08:30",
    )
    replicas = [Daemon(settings, create=True), Daemon(settings, create=True)]
    try:
        replicas[0].service.usage([usage(1, ts="2026-11-30T12:00:00Z")], source="app")
        before = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 08:00 in Berlin: not yet
        for r in replicas:
            assert {job for job, _, _ in r.cycle(before).jobs} <= {"retention", "partitions"}
        assert slack.posts("#finops-digest") == []
        due = datetime(2026, 12, 1, 7, 45, tzinfo=UTC)  # 08:45 in Berlin, on the 1st
        reports = []
        threads = [threading.Thread(target=lambda r=r: reports.append(r.cycle(due))) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ran = sorted(job for report in reports for job, _, _ in report.jobs)
        assert ran.count("daily-digest") == 1 and ran.count("monthly-report") == 1
        for r in replicas:
            r.cycle(due)
        posts = slack.posts("#finops-digest")
        assert len([p for p in posts if "2026-11-30" in (p.text or "")]) == 1
        assert len(slack.uploads) == 1 and slack.uploads[0]["filename"] == "finops-report-2026-11.html"
        with replicas[0].ledger.engine.connect() as conn:
            runs = {(r.job, r.period) for r in conn.execute(select(schedule_runs))}
        assert {("daily-digest", "2026-12-01"), ("monthly-report", "2026-11")} <= runs
        later = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)  # days later: the November report is not sent again
        assert "monthly-report" not in {job for job, _, _ in replicas[1].cycle(later).jobs}
        assert len(slack.uploads) == 1
    finally:
        for r in replicas:
            r.shutdown()


def test_retention_deletes_old_raw_records_keeps_totals_and_refuses_late_ones(
    db_url: str, budgets: Path, tmp_path: Path
) -> None:
    daemon = Daemon(_settings(db_url, budgets, retention_days=40, prompt_preview=True), create=True)
    try:
        words = ("alpha", "beta", "gamma", "delta", "epsilon")
        old = [usage(i, ts="2026-09-01T10:00:00Z", prompt=f"old prompt {words[i]}") for i in range(5)]
        new = [usage(100 + i, ts="2026-11-20T10:00:00Z") for i in range(3)]
        assert daemon.service.usage([*old, *new], source="app").stored == 8
        runner = CliRunner()
        args = ["spend", "--db", db_url, "--format", "json", "--since", "2026-08-01", "--by", "flow"]
        before = runner.invoke(app, args).stdout
        result = run_retention(daemon.ledger, now=datetime(2026, 11, 22, 3, 0, tzinfo=UTC))
        assert result.usage_deleted == 5
        assert result.previews_cleared == 5
        assert _count(daemon.ledger, usage_records) == 3
        assert _count(daemon.ledger, prompts, prompts.c.preview.is_not(None)) == 0
        assert runner.invoke(app, args).stdout == before  # totals come from the rollups, unchanged
        late = daemon.service.usage([old[0]], source="app")  # re-sent: it must not count twice
        assert late.stored == 0 and "too old" in late.rejections[0]["reason"]
        again = run_retention(daemon.ledger, now=datetime(2026, 11, 22, 3, 0, tzinfo=UTC))
        assert again.usage_deleted == 0
    finally:
        daemon.shutdown()


def test_outbox_pending_and_errors_show_in_metrics(db_url: str, budgets: Path) -> None:
    daemon = Daemon(_settings(db_url, budgets), create=True)  # no Slack: alerts wait in the outbox
    try:
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        daemon.service.usage(
            [usage(i, flow="support-gpt-en", ts=now, tags={}) for i in range(40)], source="a"
        )
        report = daemon.cycle()
        assert report.new_alerts == 1 and report.errors == []  # the jump to 100%: one alert
        assert _count(daemon.ledger, alert_outbox, alert_outbox.c.status == "pending") == 1
        assert b"finops_outbox_pending 1.0" in daemon.metrics.render()
    finally:
        daemon.shutdown()


def test_tokens_must_be_well_formed_and_required_off_loopback(sqlite_url: str, budgets: Path) -> None:
    with pytest.raises(ConfigError, match="source=token"):
        Daemon(
            _settings(sqlite_url, budgets, ingest_tokens=SecretStr("just-a-token-without-source")),
            create=True,
        )
    with pytest.raises(ConfigError, match=r"listen on 127\.0\.0\.1"):
        Daemon(_settings(sqlite_url, budgets, host="0.0.0.0"), create=True)


def test_run_once_runs_a_cycle_and_exits(sqlite_url: str, budgets: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "--once", "--init", "--db", sqlite_url, "--budgets", str(budgets)]
    )
    assert result.exit_code == 0, result.output
    assert "1 budget: 0 new alerts" in result.stdout and "retention" in result.stdout


def test_the_daemon_polls_a_provider_once_per_interval_across_replicas(
    sqlite_url: str, budgets: Path, openai_fake: FakeProvider
) -> None:
    from finops.daemon.pollers_wiring import configured_pollers, reconcile_job

    today = datetime.now(UTC).date()
    openai_fake.add_usage(
        today, model="gpt-4o-2024-08-06", project_id="p", input_tokens=1000, output_tokens=10
    )
    openai_fake.add_cost(today, "0.5", line_item="gpt-4o-2024-08-06, input", project_id="p")
    settings = _settings(
        sqlite_url, budgets, openai_admin_key=SecretStr(OPENAI_KEY), openai_base_url=openai_fake.base_url
    )
    assert set(configured_pollers(settings)) == {"openai"}
    replicas = [Daemon(settings, pollers=configured_pollers(settings), create=True) for _ in range(2)]
    try:
        now = datetime.now(UTC)
        lines = [line for r in replicas for line in r.poll(now)]
        assert "1 bucket" in lines[0] or "bucket(s)" in lines[0]
        assert lines[1] == "openai: polled by another replica this interval"
        with replicas[0].ledger.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(provider_usage)) == 1
        assert b"finops_provider_poll_last_success_timestamp_seconds" in replicas[0].metrics.render()
        job = reconcile_job(settings)
        assert job is not None and job.due(now) == now.date().isoformat()
        assert job.run(replicas[0].ledger, now, job.due(now) or "").endswith("alerted")
    finally:
        for r in replicas:
            r.shutdown()


def test_a_daemon_down_on_the_first_posts_the_monthly_report_when_it_is_back(
    sqlite_url: str, budgets: Path, slack: FakeSlack
) -> None:
    settings = _settings(sqlite_url, budgets, slack, digest_channel="#finops-digest")
    daemon = Daemon(settings, create=True)
    try:
        report = daemon.cycle(datetime(2026, 11, 3, 15, 0, tzinfo=UTC))  # a new install: October was empty
        assert (
            "monthly-report",
            "2026-10",
            "report 2026-10: no usage that month, nothing posted",
        ) in report.jobs
        daemon.service.usage([usage(1, ts="2026-11-30T12:00:00Z")], source="app")
        report = daemon.cycle(datetime(2026, 12, 3, 15, 0, tzinfo=UTC))
        assert ("monthly-report", "2026-11") in {(job, period) for job, period, _ in report.jobs}
        assert [u["filename"] for u in slack.uploads] == ["finops-report-2026-11.html"]
    finally:
        daemon.shutdown()


def test_settings_from_a_toml_file_and_variables_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from finops.settings import load_settings

    config = tmp_path / "finops.toml"
    config.write_text('port = 9100\nretention_days = 40\ningest_tokens = "app=0123456789abcdef0"\n')
    monkeypatch.setenv("FINOPS_PORT", "9200")
    settings = load_settings(config)
    assert (settings.port, settings.retention_days) == (9200, 40)
    assert settings.source_tokens() == {"0123456789abcdef0": "app"}
    missing = CliRunner().invoke(app, ["run", "--once", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 1 and "nope.toml does not exist" in missing.stderr
    config.write_text("retention_days = 1\n")
    invalid = CliRunner().invoke(app, ["run", "--once", "--config", str(config)])
    assert (invalid.exit_code, invalid.stderr) == (
        1,
        f"error: retention_days=1 in {config} is not valid: it takes a whole number of days at least 35\n",
    )


def test_settings_mistakes_are_config_errors(sqlite_url: str, budgets: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="digest_time"):
        _settings(sqlite_url, budgets, digest_time="24:30")
    with pytest.raises(ValidationError, match="unknown time zone 'Europe/Berln'"):
        _settings(sqlite_url, budgets, schedule_tz="Europe/Berln")
    port = CliRunner().invoke(app, ["run", "--once", "--db", sqlite_url, "--port", "99999"])
    assert port.exit_code == 2 and "--port" in port.stderr  # a bad argument, reported by click


def test_shutdown_does_not_wait_for_a_slow_slack_to_drain_the_outbox(
    sqlite_url: str, budgets: Path, slack: FakeSlack
) -> None:
    from finops.storage.alerts import enqueue
    from finops.storage.db import write_transaction
    from tests.slack_fake import slow

    daemon = Daemon(_settings(sqlite_url, budgets, slack), create=True)
    with write_transaction(daemon.ledger.engine) as conn:
        for i in range(6):
            enqueue(
                conn,
                dedupe_key=f"m{i}",
                channel="#slow",
                payload={"type": "message", "text": f"m{i}", "blocks": []},
                now_us=0,
            )
    slack.always(slow(1.0))
    daemon.start()
    for _ in range(200):  # until the first send is under way
        if slack.requests:
            break
        threading.Event().wait(0.02)
    daemon.shutdown()
    with daemon.ledger.engine.connect() as conn:
        pending = conn.scalar(
            select(func.count()).select_from(alert_outbox).where(alert_outbox.c.status == "pending")
        )
    assert pending is not None and pending >= 3  # left for the next start, not sent during shutdown


def test_a_new_price_reaches_the_parser_process(sqlite_url: str, budgets: Path, tmp_path: Path) -> None:
    """Large bodies are priced in a parser process; a price added while the daemon runs applies
    to the next batch (the parser restarts with the new book)."""
    import json

    overrides = tmp_path / "prices.yaml"
    overrides.write_text("prices: []\n")
    daemon = Daemon(_settings(sqlite_url, budgets, price_overrides=overrides, ingest_workers=1), create=True)
    daemon.start()
    try:

        def batch(start: int) -> bytes:
            records = [
                usage(start + i, provider="self_hosted", model="acme-llama-70b-internal", prompt="x" * 100)
                for i in range(200)
            ]
            return json.dumps(records).encode()  # over 32 KiB: parsed in the parser process

        first = daemon.service.usage_body(batch(0), ndjson=False, source="app")
        assert not isinstance(first, BodyProblem) and (first.stored, first.unpriced) == (200, 200)
        overrides.write_text(
            "prices:\n  - provider: self_hosted\n    model: acme-llama-70b-internal\n"
            "    effective_from: 2026-01-01\n    standard: {input: 0.20, output: 0.60}\n"
        )
        daemon.cycle()  # sees the changed file and reloads the book
        second = daemon.service.usage_body(batch(1000), ndjson=False, source="app")
        assert not isinstance(second, BodyProblem) and (second.stored, second.unpriced) == (200, 0)
        assert second.notes == [] or all("estimate" not in n for n in second.notes)
    finally:
        daemon.shutdown()
