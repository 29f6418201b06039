"""`finops reserve` and `finops release`: admission control from a shell, on the database itself
(like `finops check`), for gateways and scripts that do not talk to the daemon."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from finops.cli.alerts import DENY_EXIT, BudgetsOpt
from finops.cli.common import DbOpt, budgets_for, err_console, ledger_for, tag_pair
from finops.errors import UsageError

__all__ = ["register"]

#: Reservations made from the command line share this source (a request id is unique per source).
CLI_SOURCE = "cli"


def reserve(
    flow: Annotated[str, typer.Argument(help="The flow about to spend.")],
    estimate_usd: Annotated[
        str | None, typer.Option("--estimate-usd", help="Dollars to hold (else priced from --model ...).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="The model the call uses.")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Its provider, if ambiguous.")] = None,
    input_tokens: Annotated[
        int | None, typer.Option("--input-tokens", min=0, help="Input tokens of the call.")
    ] = None,
    prompt_file: Annotated[
        Path | None,
        typer.Option("--prompt-file", help="The prompt's text, counted with tiktoken (never stored)."),
    ] = None,
    max_output_tokens: Annotated[
        int | None, typer.Option("--max-output-tokens", min=0, help="The call's output token limit.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE tags of the call.")] = None,
    ttl: Annotated[int, typer.Option("--ttl", help="Seconds before an unsettled hold lapses.")] = 120,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Idempotency key: the same id gets the same answer.")
    ] = None,
    budgets: BudgetsOpt = None,
    db: DbOpt = None,
) -> None:
    """Hold money for one call on FLOW: exit 0 allow (JSON with reservation_id), 4 deny, 1 error."""
    from finops.render.budget_docs import reserve_document
    from finops.usecases.admission import ReserveRequest
    from finops.usecases.admission import reserve as reserve_call

    if input_tokens is not None and prompt_file is not None:
        raise UsageError("give --input-tokens or --prompt-file, not both")
    req = ReserveRequest(
        flow=flow,
        tags=dict(tag_pair(t) for t in tag or []),
        estimate_usd=_dollars(estimate_usd),
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        prompt=_prompt(prompt_file) if prompt_file is not None else None,
        max_output_tokens=max_output_tokens,
        ttl_s=ttl,
        request_id=request_id,
    )
    err = err_console()
    ledger = ledger_for(db)
    try:
        result = reserve_call(ledger, budgets_for(ledger, budgets, err), req, source=CLI_SOURCE)
    finally:
        ledger.close()
    typer.echo(json.dumps(reserve_document(result), indent=2))
    if not result.allow:
        raise typer.Exit(DENY_EXIT)


def _dollars(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise UsageError(f"--estimate-usd takes a number of dollars, got {text!r}") from None
    if not amount.is_finite() or amount < 0:
        raise UsageError(f"--estimate-usd takes a non-negative number of dollars, got {text!r}")
    return amount


def _prompt(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = type(exc).__name__
        raise UsageError(f"--prompt-file {path}: cannot read it as UTF-8 text ({why})") from None


def release(
    reservation_id: Annotated[str, typer.Argument(metavar="ID", help="The reservation_id to release.")],
    db: DbOpt = None,
) -> None:
    """Release a hold (the call failed or was not made); releasing twice is harmless."""
    from finops.usecases.admission import release as release_call

    ledger = ledger_for(db)
    try:
        status = release_call(ledger, reservation_id)
    finally:
        ledger.close()
    typer.echo(json.dumps({"reservation_id": reservation_id, "status": status}))


def register(app: typer.Typer) -> None:
    app.command("reserve")(reserve)
    app.command("release")(release)
