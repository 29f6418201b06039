"""The finops command as a person uses it: output, exit codes, one-line errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops import __version__
from finops.cli.main import app
from tests.conftest import make_ledger, usage, write_jsonl

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("FINOPS_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("FINOPS_PRICE_OVERRIDES", raising=False)
    make_ledger(f"sqlite:///{path}").close()  # read commands never create a database
    return path


def finops(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    assert finops("--version")[:2] == (0, f"finops {__version__}\n")


def test_demo_then_spend_and_running_the_demo_again_stores_nothing_twice(db: Path) -> None:
    code, out, _ = finops("demo", "--days", "3")
    assert code == 0, out
    assert "Spend by flow" in out and "support-gpt-en" in out and "have no price" in out
    code, out, _ = finops("demo", "--days", "3")
    assert code == 0 and "stored 0," in out
    code, out, _ = finops("spend", "--by", "flow", "--since", "4d", "--format", "json")
    doc = json.loads(out)
    assert Decimal(doc["total_usd"]) == sum(Decimal(r["cost_usd"]) for r in doc["rows"])
    assert doc["unpriced"]["records"] > 0


def test_spend_json_is_exact_and_grouped(db: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "u.jsonl", (usage(i) for i in range(300)))
    assert finops("ingest", str(tmp_path / "u.jsonl"))[0] == 0
    code, out, _ = finops(
        "spend", "--by", "model,day", "--month", "2026-11", "--flow", "support-*", "--format", "json"
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["group_by"] == ["model", "day"]
    assert doc["period"] == {
        "start": "2026-11-01T00:00:00+00:00",
        "end": "2026-12-01T00:00:00+00:00",
        "timezone": "UTC",
    }
    assert {r["model"] for r in doc["rows"]} == {"gpt-4o-2024-08-06", "gpt-4o-mini", "claude-sonnet-4-5"}
    assert all(
        set(r) >= {"model", "day", "cost_usd", "requests", "input_tokens", "output_tokens"}
        for r in doc["rows"]
    )
    assert Decimal(doc["total_usd"]) == sum(Decimal(r["cost_usd"]) for r in doc["rows"])
    assert sum(r["requests"] for r in doc["rows"]) == sum(
        usage(i)["flow"].startswith("support-") for i in range(300)
    )


def test_spend_csv_and_top_keep_totals(db: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "u.jsonl", (usage(i) for i in range(90)))
    finops("ingest", str(tmp_path / "u.jsonl"))
    code, out, _ = finops("spend", "--by", "flow,model", "--top", "2", "--format", "csv")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("flow,model,cost_usd,records,requests")
    assert len(lines) == 1 + 2 + 1 and lines[-1].startswith("(7 more),(7 more),")
    total = json.loads(finops("spend", "--format", "json")[1])["total_usd"]
    assert sum(Decimal(line.split(",")[2]) for line in lines[1:]) == Decimal(total)


def test_spend_by_tag_and_tag_filter(db: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "u.jsonl", [usage(1), usage(2), usage(3, tags={"env": "dev"})])
    finops("ingest", str(tmp_path / "u.jsonl"))
    doc = json.loads(finops("spend", "--by", "tag:team", "--format", "json")[1])
    assert sorted(r["tag:team"] for r in doc["rows"]) == ["(none)", "platform", "search"]
    doc = json.loads(finops("spend", "--by", "flow", "--tag", "env=prod", "--format", "json")[1])
    assert sum(r["records"] for r in doc["rows"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["spend", "--by", "colour"], "cannot group by 'colour'"),
        (["spend", "--month", "2026-13"], "month must look like 2026-11"),
        (["spend", "--since", "2026-11-05", "--until", "2026-11-01"], "--since must be before --until"),
        (["spend", "--since", "last tuesday"], "cannot read 'last tuesday' as a time"),
        (["spend", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["spend", "--tag", "team"], "--tag takes KEY=VALUE"),
        (["spend", "--month", "2026-11", "--today"], "use one of --since, --month, --today"),
        (["prices", "import", "x.json", "--effective-from", "soon"], "--effective-from takes a date"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(db: Path, args: list[str], message: str) -> None:
    code, out, err = finops(*args)
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err + out
    assert err.count("\n") == 1


def test_missing_file_is_an_error_not_a_traceback(db: Path, tmp_path: Path) -> None:
    code, _, err = finops("ingest", str(tmp_path / "nope.jsonl"))
    assert code == 1 and err == f"error: {tmp_path / 'nope.jsonl'}: no such file or directory\n"


def test_ingest_strict_exits_3_when_a_line_is_rejected(db: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "u.jsonl", [usage(1), "{broken"])
    code, out, _ = finops("ingest", "--strict", str(tmp_path / "u.jsonl"))
    assert code == 3
    assert "stored 1, duplicates 0, rejected 1" in out and "invalid JSON" in out and "u.jsonl:2)" in out
    code, out, _ = finops("dead-letters", "--format", "json")
    doc = json.loads(out)
    assert doc["total"] == 1 and doc["dead_letters"][0]["line"] == 2


def test_prices_show_list_and_unknown(db: Path) -> None:
    code, out, _ = finops("prices", "show", "gpt-4o-2024-08-06")
    assert code == 0 and "openai/gpt-4o" in out and "source:" in out and "batch" in out
    doc = json.loads(finops("prices", "show", "claude-sonnet-4-5", "--format", "json")[1])
    assert doc["in_effect"]["standard"]["input"] == "3" and doc["in_effect"]["layer"] == "catalog"
    code, _, err = finops("prices", "show", "acme-9000")
    assert code == 1 and "no price for unknown/acme-9000" in err
    code, out, _ = finops("prices", "list", "--provider", "anthropic")
    assert code == 0 and "claude-sonnet-4-5" in out and "gpt-4o" not in out


def test_prices_unpriced_then_override_then_reprice(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_jsonl(
        tmp_path / "u.jsonl",
        [
            usage(
                1,
                model="acme-llm-9",
                provider="acme",
                input_tokens=1_000_000,
                cached_input_tokens=0,
                output_tokens=1_000_000,
                reasoning_tokens=0,
            )
        ],
    )
    finops("ingest", str(tmp_path / "u.jsonl"))
    code, out, _ = finops("prices", "unpriced")
    assert code == 0 and "acme-llm-9" in out and "no" in out
    overrides = tmp_path / "prices.yaml"
    overrides.write_text(
        "prices:\n  - provider: acme\n    model: acme-llm-9\n    effective_from: 2026-01-01\n"
        "    source: contract 42\n    standard: {input: 0.5, output: 1.5}\n"
    )
    monkeypatch.setenv("FINOPS_PRICE_OVERRIDES", str(overrides))
    code, out, _ = finops("reprice", "--since", "2026-11-01")
    assert code == 0 and "changed 1" in out and "+$2.000000000" in out
    assert json.loads(finops("spend", "--format", "json")[1])["total_usd"] == "2.000000000"
    assert "Every stored record is priced" in finops("prices", "unpriced")[1]


def test_db_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    code, out, _ = finops("db", "upgrade")
    assert code == 0 and "empty -> 0009_live_holds" in out
    assert "already at 0009_live_holds" in finops("db", "upgrade")[1]
    assert "up to date" in finops("db", "current")[1]
