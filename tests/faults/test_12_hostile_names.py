"""Item 12 (names): a flow, model or tag key with an ESC sequence, CR/LF, a right-to-left override
or only spaces is refused with its reason; nothing finops prints afterwards carries such bytes.
(The threshold limit of item 12 is tests/faults/test_12_threshold_limit.py.)"""

from __future__ import annotations

import re

from typer.testing import CliRunner

from finops.cli.main import app
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import usage

NAMES = {
    "flow": ["a\x1b[2J\x1b[31mred", "a\r\nb", "abc\u202eexe.gpj", "   ", "\u200b", "tab\there"],
    "model": ["gpt-4o\x1b]0;pwned\x07", "gpt\n4o", " \u2066 "],
}
TERMINAL_BYTES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b-\u200f]")


def test_hostile_names_are_refused_and_never_printed(ledger: Ledger) -> None:
    batch = [usage(0)]
    for field, values in NAMES.items():
        batch += [usage(1 + len(batch), **{field: v}) for v in values]
    batch += [usage(99, tags={"\x1b[8m": "hidden"}), usage(98, tags={" ": "blank"})]
    summary = ingest_objects(ledger, batch, source="gw")
    assert (summary.stored, summary.rejected) == (1, len(batch) - 1)
    url = ledger.settings.database_url
    for args in (
        ["spend", "--by", "flow,model"],
        ["dead-letters"],
        ["spend", "--by", "tag:team", "--format", "csv"],
    ):
        result = CliRunner().invoke(app, [*args, "--db", url])
        assert result.exit_code == 0, result.output
        assert not TERMINAL_BYTES.search(result.stdout), (args, result.stdout)
