"""The demo's last complete month, exported as FOCUS, checked by the FinOps Foundation's own
validator (PyPI focus-validator 2.2.1, FOCUS 1.2, its bundled rules, nothing downloaded).

The validator needs Python >= 3.12 in its own virtualenv: ``.ci/focus-validator`` makes one (CI
runs it and sets FINOPS_FOCUS_VALIDATOR). Where it is absent the test is skipped with that reason,
except under CI=true, where it fails.

One rule cannot pass in any dataset: in the validator's 1.2 model, InvoiceId-C-004-C ("MUST be null
when the charge is not associated with an invoice") and InvoiceId-C-005-C ("MUST NOT be null when it
is") lost their conditions, so every row breaks one of them. Their parent, InvoiceId-C-003-C, is
the OR of the two and is the actual requirement. finops's usage is not invoiced (InvoiceId null), so
C-004 and C-003 pass and C-005 is the one failure the summary counts. Any other failure fails here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The upstream defect described above: the only failure tolerated.
KNOWN_UPSTREAM = {"InvoiceId-C-005-C"}


def _validator() -> Path:
    given = os.environ.get("FINOPS_FOCUS_VALIDATOR")
    path = Path(given) if given else REPO / ".venv-focus" / "bin" / "focus-validator"
    if not path.is_file():
        why = (
            f"the FOCUS validator is not at {path}: run .ci/focus-validator (it needs Python 3.12) "
            "or set FINOPS_FOCUS_VALIDATOR"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    return path


def _site_packages(validator: Path) -> Path:
    """The validator finds its bundled rules relative to the folder holding its package."""
    python = validator.parent / "python"
    where = "import focus_validator, os; print(os.path.dirname(os.path.dirname(focus_validator.__file__)))"
    out = subprocess.run(
        [str(python), "-c", where],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return Path(out.stdout.strip())


def _last_complete_month() -> str:
    now = datetime.now(UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def _validate(validator: Path, data: Path) -> tuple[set[str], dict[str, str], re.Match[str]]:
    """The validator's failed rules (only the known upstream one allowed), each rule's state, and
    its summary line."""
    result = subprocess.run(
        [str(validator), "--block-download", "--validate-version", "1.2", "--data-file", str(data)],
        capture_output=True, text=True, cwd=_site_packages(validator), timeout=600,
    )  # fmt: skip
    report = result.stdout + result.stderr
    summary = re.search(r"Total: (\d+) \| Pass: (\d+) \| Fail: (\d+) \| Skipped: (\d+)", report)
    assert summary is not None, report[-3000:]
    # each rule's line is "<icon> <rule>: PASS|FAIL|SKIPPED" (the icon is ASCII on a non-UTF-8 console)
    status = dict(
        re.findall(r"^\S+ ([A-Za-z]+-[A-Z]-\d{3}-[A-Z]): (PASS|FAIL|SKIPPED)", report, flags=re.MULTILINE)
    )
    failed = {rule for rule, state in status.items() if state == "FAIL"}
    assert failed <= KNOWN_UPSTREAM, (
        f"the validator failed {sorted(failed - KNOWN_UPSTREAM)}:\n{report[-3000:]}"
    )
    assert int(summary.group(3)) == len(failed)
    return failed, status, summary


def test_the_demo_month_passes_the_focus_validator(tmp_path: Path) -> None:
    validator = _validator()
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    month = _last_complete_month()

    def finops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "finops", *args, "--db", db], capture_output=True, text=True, cwd=tmp_path,
            timeout=300,
        )  # fmt: skip

    assert (done := finops("demo")).returncode == 0, done.stderr
    out = tmp_path / "focus.csv"
    assert (done := finops("export", "focus", "--month", month, "--out", str(out))).returncode == 0, (
        done.stderr
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert len(rows) > 100
    spend = json.loads(finops("spend", "--month", month, "--format", "json").stdout)
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal(spend["total_usd"])  # exact, as decimals

    failed, status, summary = _validate(validator, out)
    assert status["InvoiceId-C-003-C"] == "PASS", "the OR rule, the actual requirement, must pass"
    assert status["InvoiceId-C-004-C"] == "PASS"
    for column in ("BilledCost", "ChargePeriodStart", "PricingQuantity", "ServiceCategory", "ProviderName"):
        assert status[f"{column}-C-000-M"] == "PASS", column
    passed = int(summary.group(2))
    assert passed >= 130, summary.group(0)  # the mandatory column rules ran, not skipped
    print(f"\nfocus-validator on {len(rows)} rows of {month}: {summary.group(0)}; failed: {sorted(failed)}")


HOSTILE_PRICES = """\
prices:
  - provider: ácme
    model: modèle-ü
    effective_from: 2026-01-01
    standard: {input: "1.1", output: "3.3"}
    long_context:
      - above: 1000
        standard: {input: "2.2", output: "4.4"}
      - above: 5000
        standard: {input: "3.3", output: "5.5"}
discounts:
  - match: "openai/*"
    percent_off: 12.3456789012345678
    effective_from: 2026-01-01
"""


def test_hostile_names_in_berlin_by_the_hour_pass_the_focus_validator(tmp_path: Path) -> None:
    """Names from usage data (unicode, commas, quotes, backslashes) in the columns FOCUS holds to
    ASCII, a many-decimal discount, several long-context tiers, DST's last Sunday of October."""
    validator = _validator()
    prices = tmp_path / "prices.yaml"
    prices.write_text(HOSTILE_PRICES, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'h.db'}"
    flows = ['équipe,"données"', "a\\b;=HYPERLINK(1)", "日本語" + "x" * 120, "plain"]
    records = [
        {"id": f"r{i}", "ts": ts, "provider": provider, "model": model, "flow": flow,
         "input_tokens": 900 + 1_000 * i, "cached_input_tokens": i, "output_tokens": 7 + i,
         "tags": {"clé": "väl,\"ue\""}}
        for i, (ts, (provider, model), flow) in enumerate(
            (ts, pm, flow)
            for ts in ("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-31T22:59:59Z")
            for pm in (("ácme", "modèle-ü"), ("openai", "gpt-4o"))
            for flow in flows
        )
    ]  # fmt: skip
    usage = tmp_path / "u.jsonl"
    usage.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    env = {**os.environ, "FINOPS_PRICE_OVERRIDES": str(prices)}

    def finops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "finops", *args, "--db", db], capture_output=True, text=True, cwd=tmp_path,
            timeout=300, env=env,
        )  # fmt: skip

    assert (done := finops("ingest", str(usage))).returncode == 0, done.stderr
    out = tmp_path / "focus.csv"
    args = ("--month", "2026-10", "--tz", "Europe/Berlin")
    assert (done := finops("export", "focus", *args, "--grain", "hour", "--out", str(out))).returncode == 0, (
        done.stderr
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    assert {r["x_Flow"] for r in rows} == set(flows)
    assert any(r["SkuId"].startswith("mod\\xe8le-\\xfc/") for r in rows)
    spend = json.loads(finops("spend", *args, "--format", "json").stdout)
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal(spend["total_usd"])
    _validate(validator, out)
