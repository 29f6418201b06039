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

    result = subprocess.run(
        [str(validator), "--block-download", "--validate-version", "1.2", "--data-file", str(out)],
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
    assert status["InvoiceId-C-003-C"] == "PASS", "the OR rule, the actual requirement, must pass"
    assert status["InvoiceId-C-004-C"] == "PASS"
    for column in ("BilledCost", "ChargePeriodStart", "PricingQuantity", "ServiceCategory", "ProviderName"):
        assert status[f"{column}-C-000-M"] == "PASS", column
    passed = int(summary.group(2))
    assert passed >= 130, summary.group(0)  # the mandatory column rules ran, not skipped
    print(f"\nfocus-validator on {len(rows)} rows of {month}: {summary.group(0)}; failed: {sorted(failed)}")
