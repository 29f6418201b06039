"""The FOCUS export: every token class, tier, a long-context call and a discount, exact to the ledger
to the nano-dollar on SQLite and PostgreSQL; unpriced usage left out and counted, never $0; the CLI
(CSV and Parquet) and the daemon's streamed CSV give the same rows."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert

from finops.domain.focus import COLUMNS, allocate
from finops.domain.money import format_usd
from finops.render.focus import csv_chunks
from finops.storage.retention import FINAL_KEY
from finops.storage.tables import meta
from finops.usecases.export_focus import focus_export
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery, run_spend
from tests.conftest import make_ledger, write_jsonl
from tests.daemon_proc import TOKEN, DaemonProcess
from tests.faults.test_08_database_outage import ThrowawayPostgres, throwaway_postgres  # noqa: F401

BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")
OVERRIDES = """\
discounts:
  - match: "anthropic/*"
    percent_off: 12.5
    effective_from: 2026-01-01
    note: "enterprise agreement"
"""


def _call(i: str, ts: str, model: str, **more: Any) -> dict[str, Any]:
    provider = "anthropic" if model.startswith("claude") else "openai"
    return {"id": i, "ts": ts, "provider": provider, "model": model, "flow": "support", **more}


RECORDS = [
    # every class of gpt-5.4 in the standard tier: uncached and cached input, output and reasoning
    _call(
        "a1",
        "2026-11-03T10:00:00Z",
        "gpt-5.4",
        input_tokens=12_345,
        cached_input_tokens=2_000,
        output_tokens=3_001,
        reasoning_tokens=1_234,
        tags={"team": "care"},
    ),
    _call("a2", "2026-11-03T11:30:00Z", "gpt-5.4", input_tokens=7, output_tokens=3, tags={"team": "care"}),
    # a long-context call (above 272,000 input tokens: the whole call at the higher rates)
    _call(
        "lc",
        "2026-11-04T08:00:00Z",
        "gpt-5.4",
        input_tokens=300_001,
        cached_input_tokens=100_000,
        output_tokens=4_000,
    ),
    # the other tiers
    _call(
        "t1", "2026-11-05T09:00:00Z", "gpt-5.4", input_tokens=1_000, output_tokens=500, service_tier="batch"
    ),
    _call(
        "t2", "2026-11-05T09:00:01Z", "gpt-5.4", input_tokens=1_001, output_tokens=501, service_tier="flex"
    ),
    _call(
        "t3",
        "2026-11-05T09:00:02Z",
        "gpt-5.4",
        input_tokens=1_002,
        output_tokens=502,
        service_tier="priority",
    ),
    # cache writes (5 minutes and 1 hour) and reads, under a 12.5% discount
    _call(
        "c1",
        "2026-11-06T12:00:00Z",
        "claude-sonnet-4-5",
        input_tokens=50_000,
        cached_input_tokens=20_000,
        cache_write_tokens=10_000,
        cache_write_1h_tokens=5_000,
        output_tokens=2_000,
        flow="review",
    ),
    _call(
        "c2", "2026-11-06T12:10:00Z", "claude-sonnet-4-5", input_tokens=333, output_tokens=77, flow="review"
    ),
    # the same local day in Berlin as in UTC, except this one: 2026-12-01 00:30 in Berlin
    _call("edge", "2026-11-30T23:30:00Z", "gpt-5.4", input_tokens=999, output_tokens=111),
    # before the month in UTC, in it in Berlin? No: 2026-10-31 23:30 UTC is 00:30 Nov 1 in Berlin
    _call("early", "2026-10-31T23:30:00Z", "gpt-5.4", input_tokens=555, output_tokens=55),
    # no price: counted and left out
    _call(
        "u1",
        "2026-11-07T07:00:00Z",
        "acme-internal-9",
        input_tokens=1_000,
        output_tokens=100,
        provider="acme",
    ),
]


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    overrides = tmp_path / "prices.yaml"
    overrides.write_text(OVERRIDES)
    ledger = make_ledger(db_url, price_overrides=overrides)
    summary = ingest_objects(ledger, RECORDS, source="app")
    assert (summary.stored, summary.unpriced) == (len(RECORDS), 1)
    yield ledger
    ledger.close()


def _total(ledger: Ledger, tz: ZoneInfo) -> int:
    start = datetime(2026, 11, 1, tzinfo=tz).astimezone(UTC)
    end = datetime(2026, 12, 1, tzinfo=tz).astimezone(UTC)
    with ledger.engine.connect() as conn:
        return run_spend(conn, SpendQuery(start=start, end=end, tz=tz)).total["cost_nanos"]


def _nanos(text: str) -> int:
    return int(Decimal(text) * 10**9)


@pytest.mark.parametrize("tz", [UTC_ZONE, BERLIN, ZoneInfo("Asia/Kolkata")], ids=["UTC", "Berlin", "Kolkata"])
@pytest.mark.parametrize("grain", ["day", "hour"])
def test_billed_cost_adds_up_to_the_ledger_to_the_nano_dollar(
    seeded: Ledger, tz: ZoneInfo, grain: str
) -> None:
    export = focus_export(seeded, "2026-11", tz=tz, grain=grain)  # type: ignore[arg-type]
    billed = sum(_nanos(r["BilledCost"]) for r in export.rows)
    assert billed == export.billed_nanos == _total(seeded, tz)
    assert all(len(r["BilledCost"].split(".")[1]) == 9 for r in export.rows)  # nine decimals kept
    assert export.unpriced_records == 1 and export.unpriced_models == {"acme/acme-internal-9": 1}
    assert not any("acme" in r["SkuId"] for r in export.rows)  # never a $0 row
    ids = {r["ChargeDescription"] for r in export.rows}
    assert len(ids) >= 6
    # each row of a group says which of its classes it is (reasoning and 1-hour writes share a meter)
    by_group = Counter((r["ChargePeriodStart"], r["x_Flow"], r["Tags"], r["SkuPriceId"].split("/", 1)[0],
                        r["x_PriceBookVersion"], r["SkuPriceId"].split("/")[-1], r["ChargeDescription"])
                       for r in export.rows)  # fmt: skip
    assert max(by_group.values()) == 1
    assert "Reasoning Output Tokens of gpt-5.4 (standard) for support" in ids
    assert any(r.startswith("Input Tokens of gpt-5.4 (standard, above 272000 input tokens)") for r in ids)
    for r in export.rows:
        assert set(r) == set(COLUMNS)
        assert (
            r["BillingPeriodStart"] <= r["ChargePeriodStart"] < r["ChargePeriodEnd"] <= r["BillingPeriodEnd"]
        )
        assert r["ChargeCategory"] == "Usage" and r["ChargeClass"] == "" and r["BillingCurrency"] == "USD"
        assert r["BilledCost"] == r["EffectiveCost"] == r["ContractedCost"]


def test_the_month_follows_the_zone(seeded: Ledger) -> None:
    utc = focus_export(seeded, "2026-11", tz=UTC_ZONE)
    berlin = focus_export(seeded, "2026-11", tz=BERLIN)
    assert utc.billing_start.isoformat() == "2026-11-01T00:00:00+00:00"
    assert berlin.billing_start.isoformat() == "2026-10-31T23:00:00+00:00"
    starts = {r["ChargePeriodStart"] for r in berlin.rows}
    assert "2026-10-31T23:00:00Z" in starts  # the call at 00:30 on Nov 1 in Berlin
    assert "2026-11-30T23:00:00Z" not in starts  # 00:30 on Dec 1 in Berlin is December's
    assert utc.records == berlin.records == len(RECORDS) - 2  # each leaves one edge call out


def test_token_classes_quantities_and_unit_prices(seeded: Ledger) -> None:
    rows = focus_export(seeded, "2026-11", tz=UTC_ZONE).rows
    consumed: Counter[str] = Counter()
    for r in rows:
        consumed[r["SkuId"]] += int(r["ConsumedQuantity"])
        assert Decimal(r["PricingQuantity"]) * 1_000_000 == int(r["ConsumedQuantity"])
        assert (r["ConsumedUnit"], r["PricingUnit"]) == ("Tokens", "1000000 Tokens")
    inp = 12_345 - 2_000 + 7 + 300_001 - 100_000 + 1_000 + 1_001 + 1_002 + 999
    assert consumed["gpt-5.4/input"] == inp
    assert consumed["gpt-5.4/input-cached"] == 2_000 + 100_000
    assert consumed["gpt-5.4/output"] == 3_001 - 1_234 + 3 + 4_000 + 500 + 501 + 502 + 111
    assert consumed["gpt-5.4/output-reasoning"] == 1_234
    assert consumed["claude-sonnet-4-5/input"] == 50_000 - 20_000 - 10_000 - 5_000 + 333
    assert consumed["claude-sonnet-4-5/input-cache-write"] == 10_000
    assert consumed["claude-sonnet-4-5/input-cache-write-1h"] == 5_000
    meters = {r["SkuId"].split("/", 1)[1]: r["SkuMeter"] for r in rows}
    assert meters == {
        "input": "Input Tokens",
        "input-cached": "Cached Input Tokens",
        "input-cache-write": "Cache Write Tokens",
        "input-cache-write-1h": "Cache Write Tokens",
        "output": "Output Tokens",
        "output-reasoning": "Output Tokens",
    }
    by_price = {(r["SkuPriceId"].split("@")[0]): r for r in rows}
    # the catalog's gpt-5.4 prices per million: standard 2.50 in / 15.00 out; above 272k: 5.00 / 22.50
    assert by_price["gpt-5.4/input/standard/0"]["ListUnitPrice"] == "2.5"
    assert by_price["gpt-5.4/input/standard/272000"]["ListUnitPrice"] == "5"
    assert by_price["gpt-5.4/output/standard/272000"]["ListUnitPrice"] == "22.5"
    assert by_price["gpt-5.4/input/priority/0"]["ListUnitPrice"] == "5"
    assert by_price["gpt-5.4/input/batch/0"]["ListUnitPrice"] == "1.25"
    long = json.loads(by_price["gpt-5.4/input/standard/272000"]["SkuPriceDetails"])
    assert long == {
        "ModelId": "gpt-5.4",
        "TokenDirection": "Input",
        "TokenCacheAction": "Uncached",
        "x_TokenClass": "input",
        "x_ServiceTier": "standard",
        "x_ContextTier": "above 272000 input tokens",
    }
    # the long-context call alone: 200,001 uncached at $5, 100,000 cached at $0.50, 4,000 out at $22.50
    lc = [r for r in rows if "/272000@" in r["SkuPriceId"]]
    assert sum(_nanos(r["BilledCost"]) for r in lc) == (200_001 * 5_000 + 100_000 * 500 + 4_000 * 22_500)


def test_a_discount_shows_as_list_above_billed(seeded: Ledger) -> None:
    rows = [r for r in focus_export(seeded, "2026-11", tz=UTC_ZONE).rows if r["SkuId"].startswith("claude")]
    assert rows
    for r in rows:
        details = json.loads(r["SkuPriceDetails"])
        assert details["x_Discount"] == "0.125"
        assert Decimal(r["ContractedUnitPrice"]) == Decimal(r["ListUnitPrice"]) * Decimal("0.875")
        assert _nanos(r["ListCost"]) > _nanos(r["BilledCost"])
        assert r["PublisherName"] == r["ProviderName"] == "Anthropic" and r["ServiceName"] == "Anthropic API"
    write = next(r for r in rows if r["SkuId"].endswith("/input-cache-write-1h"))
    assert write["ListUnitPrice"] == "6" and write["ListCost"] == format_usd(5_000 * 6_000)


def test_tags_flow_and_call_counts(seeded: Ledger) -> None:
    rows = focus_export(seeded, "2026-11", tz=UTC_ZONE).rows
    care = [r for r in rows if json.loads(r["Tags"]) == {"flow": "support", "team": "care"}]
    assert care and all(r["x_Flow"] == "support" and r["x_Requests"] == "2" for r in care)
    assert all(r["x_UnpricedRecords"] == "0" for r in rows)


@given(st.integers(0, 10**15), st.lists(st.integers(0, 10**12), min_size=1, max_size=8))
def test_allocate_adds_up_and_stays_within_one_of_the_exact_share(total: int, weights: list[int]) -> None:
    shares = allocate(total, weights)
    assert sum(shares) == total and all(s >= 0 for s in shares)
    whole = sum(weights)
    if whole:
        for share, w in zip(shares, weights, strict=True):
            assert abs(share * whole - total * w) < whole  # |share - exact| < 1


def test_a_month_partly_deleted_by_retention_is_refused(seeded: Ledger) -> None:
    from finops.errors import UsageError

    with seeded.engine.begin() as conn:
        conn.execute(
            insert(meta).values(
                key=FINAL_KEY, value=str(int(datetime(2026, 11, 10, tzinfo=UTC).timestamp() * 1e6))
            )
        )
    with pytest.raises(UsageError, match="deleted by retention"):
        focus_export(seeded, "2026-11", tz=UTC_ZONE)
    assert focus_export(seeded, "2026-12", tz=UTC_ZONE).rows == []


# --------------------------------------------------------------------- the CLI and the daemon


def _finops(tmp: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops", *args, "--db", db],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=120,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, DaemonProcess]]:
    tmp = tmp_path_factory.mktemp("focus")
    db = f"sqlite:///{tmp / 'f.db'}"
    done = _finops(tmp, db, "ingest", str(write_jsonl(tmp / "u.jsonl", RECORDS)))
    assert done.returncode == 0, done.stderr
    daemon = DaemonProcess(tmp, db).start()
    yield tmp, db, daemon
    daemon.stop()


def test_cli_writes_csv_and_parquet_with_the_same_rows(site: tuple[Path, str, DaemonProcess]) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow: pip install 'finops[parquet]'")
    tmp, db, _ = site
    done = _finops(tmp, db, "export", "focus", "--month", "2026-11", "--out", str(tmp / "nov.csv"))
    assert done.returncode == 0, done.stderr
    assert "left out 1 unpriced record" in done.stderr and "acme/acme-internal-9" in done.stderr
    spend = json.loads(_finops(tmp, db, "spend", "--month", "2026-11", "--format", "json").stdout)
    rows = list(csv.DictReader(io.StringIO((tmp / "nov.csv").read_text(encoding="utf-8"), newline="")))
    assert sum(_nanos(r["BilledCost"]) for r in rows) == _nanos(spend["total_usd"])
    assert f"BilledCost ${spend['total_usd']}" in done.stderr
    done = _finops(
        tmp,
        db,
        "export",
        "focus",
        "--month",
        "2026-11",
        "--format",
        "parquet",
        "--out",
        str(tmp / "nov.parquet"),
    )
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp / "nov.parquet")
    assert table.column_names == list(COLUMNS)
    assert [f"{v:.9f}" for v in table.column("BilledCost").to_pylist()] == [r["BilledCost"] for r in rows]
    assert str(table.schema.field("BilledCost").type) == "decimal128(38, 18)"
    assert table.column("ChargePeriodStart").to_pylist()[0].tzinfo is not None
    assert not list(tmp.glob("*.partial"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2026-13"], "2026-13"),
        (["--month", "2026-11", "--tz", "Mars/Olympus"], "Mars/Olympus"),
        (["--month", "2026-11", "--grain", "week"], "week"),
    ],
)
def test_cli_errors_are_one_line(
    site: tuple[Path, str, DaemonProcess], args: list[str], message: str
) -> None:
    tmp, db, _ = site
    done = _finops(tmp, db, "export", "focus", *args, "--out", str(tmp / "bad.csv"))
    assert done.returncode in (1, 2) and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp / "bad.csv").exists()


def test_cli_refuses_a_folder_that_does_not_exist(site: tuple[Path, str, DaemonProcess]) -> None:
    tmp, db, _ = site
    done = _finops(tmp, db, "export", "focus", "--month", "2026-11", "--out", str(tmp / "no" / "such.csv"))
    assert done.returncode != 0 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_the_daemon_streams_the_same_csv(site: tuple[Path, str, DaemonProcess]) -> None:
    tmp, db, daemon = site
    assert (
        _finops(tmp, db, "export", "focus", "--month", "2026-11", "--out", str(tmp / "cli.csv")).returncode
        == 0
    )
    with daemon.client() as client:
        r = client.get("/v1/export/focus", params={"month": "2026-11"})
        assert r.status_code == 200, r.text
        assert r.content == (tmp / "cli.csv").read_bytes()
        assert r.headers["content-type"].startswith("text/csv")
        assert r.headers["x-finops-unpriced-records"] == "1"
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert format_usd(sum(_nanos(x["BilledCost"]) for x in rows)) == r.headers["x-finops-billed-usd"]
        assert client.get("/v1/export/focus").status_code == 400
        bad = client.get("/v1/export/focus", params={"month": "2026-11", "grain": "week"})
        assert bad.status_code == 400 and "grain" in bad.json()["error"]
        assert client.get("/v1/export/focus", params={"month": "x"}).status_code == 400
    assert httpx.get(daemon.base + "/v1/export/focus?month=2026-11").status_code == 401
    assert TOKEN  # the daemon's ingest token opened it above


def test_csv_chunks_stream_in_pieces_that_make_one_file() -> None:
    rows = [dict.fromkeys(COLUMNS, str(i)) for i in range(2_500)]
    pieces = list(csv_chunks(rows, every=1_000))
    assert len(pieces) == 3
    parsed = list(csv.DictReader(io.StringIO("".join(pieces))))
    assert [r["BilledCost"] for r in parsed] == [str(i) for i in range(2_500)]


def test_hostile_names_survive_the_csv(sqlite_ledger: Ledger) -> None:
    flow = 'a,"b";c =HYPERLINK("x")'
    record = _call("h1", "2026-11-03T10:00:00Z", "gpt-5.4", input_tokens=10, output_tokens=1, flow=flow)
    ingest_objects(sqlite_ledger, [{**record, "tags": {"équipe": 'données, "x"'}}], source="app")
    export = focus_export(sqlite_ledger, "2026-11", tz=UTC_ZONE)
    parsed = list(csv.DictReader(io.StringIO("".join(csv_chunks(export.rows)), newline="")))
    assert [r["x_Flow"] for r in parsed] == [flow, flow]
    assert json.loads(parsed[0]["Tags"]) == {"flow": flow, "équipe": 'données, "x"'}
    assert parsed == export.rows


def test_columns_focus_holds_to_ascii_are_ascii_and_names_stay_apart() -> None:
    from finops.domain.focus import ascii_text

    names = ["café", "caf\\xe9", "caf\\\\xe9", "plain", "日本", "a\\b"]
    escaped = [ascii_text(n) for n in names]
    assert all(e.isascii() for e in escaped) and len(set(escaped)) == len(names)
    assert ascii_text("café") == "caf\\xe9" and ascii_text("plain") == "plain"


def test_cli_write_failures_are_one_line_and_leave_no_file(site: tuple[Path, str, DaemonProcess]) -> None:
    tmp, db, _ = site
    done = _finops(tmp, db, "export", "focus", "--month", "2026-11", "--out", "/proc/focus.csv")
    assert done.returncode != 0 and "cannot write" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    # year 1 west of UTC starts before the first instant datetime holds
    done = _finops(
        tmp,
        db,
        "export",
        "focus",
        "--month",
        "0001-01",
        "--tz",
        "Pacific/Pago_Pago",
        "--out",
        str(tmp / "y.csv"),
    )
    assert done.returncode != 0 and "out of range" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp / "y.csv").exists()


def test_cli_leaves_a_users_partial_file_alone(site: tuple[Path, str, DaemonProcess]) -> None:
    tmp, db, _ = site
    mine = tmp / "mine.csv.partial"
    mine.write_text("my own notes")
    done = _finops(tmp, db, "export", "focus", "--month", "2026-11", "--out", str(tmp / "mine.csv"))
    assert done.returncode == 0, done.stderr
    assert mine.read_text() == "my own notes"
    assert (tmp / "mine.csv").stat().st_mode & 0o777 != 0o600  # an ordinary file, not a temp file's
    assert not [p for p in tmp.glob(".mine.csv.*")]


def test_parquet_keeps_unit_prices_of_a_many_decimal_discount(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow: pip install 'finops[parquet]'")
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        'discounts:\n  - match: "openai/*"\n    percent_off: 12.3456789012345678\n'
        "    effective_from: 2026-01-01\n"
    )
    db = f"sqlite:///{tmp_path / 'd.db'}"
    env = {**os.environ, "FINOPS_PRICE_OVERRIDES": str(prices)}

    def finops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "finops", *args, "--db", db], capture_output=True, text=True, cwd=tmp_path,
            timeout=120, env=env,
        )  # fmt: skip

    assert finops("ingest", str(write_jsonl(tmp_path / "u.jsonl", RECORDS[:2]))).returncode == 0
    for fmt, name in (("csv", "d.csv"), ("parquet", "d.parquet")):
        done = finops("export", "focus", "--month", "2026-11", "--format", fmt, "--out", str(tmp_path / name))
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "d.csv").read_text(encoding="utf-8"), newline="")))
    assert any(len(r["ContractedUnitPrice"].split(".")[-1]) > 18 for r in rows)
    table = pq.read_table(tmp_path / "d.parquet")
    assert table.column("ContractedUnitPrice").to_pylist() == [
        Decimal(r["ContractedUnitPrice"]) for r in rows
    ]
    assert table.column("BilledCost").to_pylist() == [Decimal(r["BilledCost"]) for r in rows]


def test_the_daemon_refuses_ambiguous_or_odd_parameters_in_one_line(
    site: tuple[Path, str, DaemonProcess],
) -> None:
    _, _, daemon = site
    with daemon.client() as client:
        twice = client.get("/v1/export/focus", params=[("month", "2026-11"), ("month", "2026-10")])
        assert twice.status_code == 400 and "month is given 2 times" in twice.json()["error"]
        for name in ("tz", "grain"):
            r = client.get("/v1/export/focus", params=[("month", "2026-11"), (name, "UTC"), (name, "day")])
            assert r.status_code == 400, r.text
        # a month in other digits or with spaces is the same month, named once in the file's name
        nov = client.get("/v1/export/focus", params={"month": "2026-11"})
        for month in ("\u0662\u0660\u0662\u0666-\u0661\u0661", " 2026-11 "):
            r = client.get("/v1/export/focus", params={"month": month})
            assert r.status_code == 200, r.text
            assert r.headers["content-disposition"] == 'attachment; filename="finops-focus-2026-11.csv"'
            assert r.content == nov.content
        early = client.get("/v1/export/focus", params={"month": "0001-01", "tz": "Pacific/Pago_Pago"})
        assert early.status_code == 400 and "out of range" in early.json()["error"]


def test_discounts_finer_than_a_basis_point_keep_their_own_price_version(db_url: str, tmp_path: Path) -> None:
    """12.34% then 12.345%: the truncated basis points made one version of both, and the export
    showed the 12.345% calls at 12.34%'s unit price."""
    overrides = tmp_path / "prices.yaml"
    overrides.write_text(
        'discounts:\n  - match: "openai/*"\n    percent_off: 12.34\n    effective_from: 2026-01-01\n'
        '    until: 2026-11-15\n  - match: "openai/*"\n    percent_off: 12.345\n'
        "    effective_from: 2026-11-15\n"
    )
    ledger = make_ledger(db_url, price_overrides=overrides)
    try:
        calls = [
            _call(
                f"d{i}",
                f"2026-11-{13 + i}T12:00:00Z",
                "gpt-5.4",
                input_tokens=1_000_000,
                output_tokens=1_000_000,
            )
            for i in range(4)
        ]
        ingest_objects(ledger, calls, source="app")
        rows = focus_export(ledger, "2026-11", tz=UTC_ZONE).rows
        assert len({r["x_PriceBookVersion"] for r in rows}) == 2
        for r in rows:  # one call of a million tokens a row: the unit price is the cost
            assert Decimal(r["ContractedUnitPrice"]) * Decimal(r["PricingQuantity"]) == Decimal(
                r["ContractedCost"]
            )
        assert sum(_nanos(r["BilledCost"]) for r in rows) == _total(ledger, UTC_ZONE)
    finally:
        ledger.close()


def test_an_outcome_counts_once_in_a_day_and_a_flow_tag_cannot_take_the_flows_place(ledger: Ledger) -> None:
    from finops.usecases.ingest import IngestSummary
    from finops.usecases.outcomes import ingest_outcome_objects

    calls = [
        _call(
            "s1", "2026-11-10T10:00:00Z", "gpt-5.4", input_tokens=10, output_tokens=1, tags={"flow": "spoof"}
        ),
        _call(
            "s2", "2026-11-10T12:00:00Z", "gpt-5.4", input_tokens=10, output_tokens=1, tags={"flow": "spoof"}
        ),
    ]
    ingest_objects(ledger, calls, source="app")
    outcome = {"id": "o1", "ts": "2026-11-10T13:00:00Z", "status": "success", "request_ids": ["s1", "s2"]}
    assert (
        ingest_outcome_objects(
            ledger, [outcome], source="app", location="api", summary=IngestSummary()
        ).linked
        == 2
    )
    day = focus_export(ledger, "2026-11", tz=UTC_ZONE).rows
    assert {(r["x_Requests"], r["x_SuccessfulOutcomes"]) for r in day} == {("2", "1")}  # one outcome, not two
    assert {json.loads(r["Tags"])["flow"] for r in day} == {"support"}
    hour = focus_export(ledger, "2026-11", tz=UTC_ZONE, grain="hour").rows
    assert {(r["x_Requests"], r["x_SuccessfulOutcomes"]) for r in hour} == {("1", "1")}  # in each group


def test_the_daemon_answers_503_while_the_database_is_down(
    throwaway_postgres: ThrowawayPostgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    pg = throwaway_postgres
    daemon = DaemonProcess(tmp_path, pg.url).start()
    try:
        with daemon.client() as c:
            assert c.post("/v1/usage", json=RECORDS[:2]).json()["stored"] == 2
            assert c.get("/v1/export/focus", params={"month": "2026-11"}).status_code == 200
            pg.stop()
            for _ in range(2):  # the first request finds the outage, the next ones know it
                r = c.get("/v1/export/focus", params={"month": "2026-11"})
                assert r.status_code == 503 and r.headers["retry-after"], (r.status_code, r.text[-300:])
                assert "Traceback" not in r.text and "BilledCost" not in r.text
            pg.start()
    finally:
        daemon.stop()


def test_cli_says_when_a_month_has_no_priced_usage(site: tuple[Path, str, DaemonProcess]) -> None:
    tmp, db, _ = site
    done = _finops(tmp, db, "export", "focus", "--month", "2026-07", "--out", str(tmp / "jul.csv"))
    assert done.returncode == 0, done.stderr
    assert "2026-07 has no priced usage in UTC: the file is its header alone" in done.stderr
    assert (tmp / "jul.csv").read_bytes() == (",".join(COLUMNS) + "\r\n").encode()
