"""`finops reserve`, `finops release`, and holds in `finops budgets status` and `finops check`,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from finops.cli.main import app
from tests.conftest import make_ledger, needs_tiktoken

MODEL = "gpt-4o-2024-08-06"  # $10 per million output tokens: 1,000 output tokens cost exactly $0.01
BUDGET = """
budgets:
  - flow: support-gpt-en
    owner: "@dana"
    daily_cap_usd: 0.05
    on_breach: block
"""

runner = CliRunner()


def finops(*args: str) -> tuple[int, Any, str]:
    """Exit code, stdout as JSON when it is JSON, stderr."""
    result = runner.invoke(app, list(args))
    try:
        out: Any = json.loads(result.stdout)
    except ValueError:
        out = result.stdout
    return result.exit_code, out, result.stderr


def setup(tmp_path: Path, db_url: str) -> list[str]:
    """A database at head and a $0.05 blocking budget; the options that point at both."""
    make_ledger(db_url).close()
    folder = tmp_path / "budgets"
    folder.mkdir()
    (folder / "team.yaml").write_text(BUDGET)
    return ["--db", db_url, "--budgets", str(folder)]


def test_reserve_allows_denies_shows_the_hold_and_release_frees_it(tmp_path: Path, db_url: str) -> None:
    at = setup(tmp_path, db_url)
    worst_case = ["--model", MODEL, "--input-tokens", "0", "--max-output-tokens", "1000"]
    code, allowed, _ = finops("reserve", "support-gpt-en", *worst_case, "--tag", "team=support", *at)
    assert code == 0 and allowed["allow"] is True and allowed["estimate_usd"] == "0.010000000"
    assert allowed["reservation_id"].startswith("rsv_") and allowed["remaining_usd"] == "0.040000000"

    code, denied, _ = finops("reserve", "support-gpt-en", "--estimate-usd", "0.05", *at)
    assert code == 4 and denied["decision"] == "deny" and "support-gpt-en" in denied["reason"]
    assert "reservation_id" not in denied

    code, checked, _ = finops("check", "support-gpt-en", *at)
    assert code == 0 and (checked["held_usd"], checked["remaining_usd"]) == ("0.010000000", "0.040000000")
    code, (status,), _ = finops("budgets", "status", "--format", "json", *at)
    assert (status["spend_usd"], status["held_usd"], status["remaining_usd"]) == (
        "0.000000000",
        "0.010000000",
        "0.040000000",
    )
    code, table, _ = finops("budgets", "status", *at)
    header, row = table.splitlines()[:2]
    assert "held" in header.split() and row.split()[3:6] == ["0.00", "0.01", "0.05"]  # spend held cap

    assert finops("release", allowed["reservation_id"], "--db", db_url)[:2] == (
        0,
        {"reservation_id": allowed["reservation_id"], "status": "released"},
    )
    assert finops("release", allowed["reservation_id"], "--db", db_url)[1]["status"] == "released"
    assert finops("check", "support-gpt-en", *at)[1]["held_usd"] == "0.000000000"
    code, whole, _ = finops("reserve", "support-gpt-en", "--estimate-usd", "0.05", "--ttl", "30", *at)
    assert code == 0 and whole["allow"] is True  # reaching the cap exactly is allowed


@needs_tiktoken
def test_reserve_from_a_prompt_file_is_idempotent_by_request_id(tmp_path: Path, db_url: str) -> None:
    at = setup(tmp_path, db_url)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Summarise the ticket of customer 4711 in two sentences, politely.")
    ask = ["--model", MODEL, "--prompt-file", str(prompt), "--max-output-tokens", "1000"]
    code, first, _ = finops("reserve", "support-gpt-en", *ask, "--request-id", "call-1", *at)
    assert code == 0 and first["allow"] is True
    assert first["estimate"] == "priced"
    assert Decimal(first["estimate_usd"]) > Decimal("0.01")  # the input tokens cost too
    assert "4711" not in json.dumps(first)  # the prompt is counted, never echoed
    code, again, _ = finops("reserve", "support-gpt-en", *ask, "--request-id", "call-1", *at)
    assert code == 0 and again["reservation_id"] == first["reservation_id"] and again["replayed"] is True
    assert finops("check", "support-gpt-en", *at)[1]["held_usd"] == first["estimate_usd"]  # held once


def test_reserve_errors_are_one_line_and_never_allow(tmp_path: Path, db_url: str) -> None:
    at = setup(tmp_path, db_url)
    code, _, err = finops("reserve", "support-gpt-en", "--model", MODEL, *at)
    assert code == 2 and err.startswith("error: say what to hold") and err.count("\n") == 1
    code, _, err = finops("reserve", "support-gpt-en", "--estimate-usd", "lots", *at)
    assert code == 2 and "--estimate-usd takes a number of dollars" in err
    both = ["--input-tokens", "5", "--prompt-file", str(tmp_path / "p.txt")]
    code, _, err = finops("reserve", "support-gpt-en", "--model", MODEL, *both, *at)
    assert code == 2 and "not both" in err
    code, _, err = finops("reserve", "support-gpt-en", "--ttl", "0", "--estimate-usd", "0", *at)
    assert code == 2 and "ttl_s must be between" in err
    unpriced = ["--model", "no-such-model", "--input-tokens", "5", "--max-output-tokens", "5"]
    code, denied, _ = finops("reserve", "support-gpt-en", *unpriced, *at)
    assert code == 4 and "no price" in denied["reason"]  # fail closed on a blocking budget
    code, _, err = finops("release", "rsv_nothing", "--db", db_url)
    assert code == 2 and "no reservation 'rsv_nothing'" in err
    missing = str(tmp_path / "missing.db")
    code, _, err = finops("reserve", "support-gpt-en", "--estimate-usd", "0", "--db", missing)
    assert code == 1 and err.startswith("error: no finops database") and err.count("\n") == 1
    assert not Path(missing).exists()
