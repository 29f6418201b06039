"""The LiteLLM proxy guard against a real finops daemon, with the real LiteLLM (``mock_response``:
no network). Each call goes the way LiteLLM's proxy takes it: ``async_pre_call_hook`` (the guard
reserves or raises), ``litellm.acompletion`` (LiteLLM fires the guard's log events, which settle),
and on an exception ``async_post_call_failure_hook`` (the guard releases)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from finops.domain.money import format_usd
from tests.daemon_proc import TOKEN, DaemonProcess, free_port

if TYPE_CHECKING:
    import litellm
    from litellm.caching.dual_cache import DualCache
    from litellm.proxy._types import UserAPIKeyAuth

    from finops.integrations.litellm import FinopsGuard, GuardSettings

# LiteLLM imports some providers on first use, and pydantic warns about one of their types.
pytestmark = pytest.mark.filterwarnings("ignore:Items? .* the `ReadOnly` qualifier:UserWarning")


@pytest.fixture(scope="module", autouse=True)
def _import_litellm() -> None:
    """LiteLLM (and the guard, which imports it) is imported when the first test here runs, not
    when pytest collects the suite: every xdist worker collects every module, and the import
    costs a second of CPU. The names are this module's globals, as a top-level import made them."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM would fetch its price map
    module = pytest.importorskip("litellm", reason="LiteLLM is not installed: pip install -e '.[dev]'")
    from litellm.caching.dual_cache import DualCache
    from litellm.proxy._types import UserAPIKeyAuth

    from finops.integrations.litellm import FinopsGuard, GuardSettings

    globals().update(
        litellm=module,
        DualCache=DualCache,
        UserAPIKeyAuth=UserAPIKeyAuth,
        FinopsGuard=FinopsGuard,
        GuardSettings=GuardSettings,
    )


MODEL = "gpt-4o-2024-08-06"  # $2.50 per million input tokens, $10 per million output tokens
FLOW = "support-bot"
ZERO = format_usd(0)
MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]


def budget_folder(tmp: Path, cap_usd: str) -> Path:
    folder = tmp / "budgets"
    folder.mkdir()
    (folder / "support.yaml").write_text(
        f'budgets:\n  - flow: {FLOW}\n    owner: "@dana"\n'
        f"    daily_cap_usd: {cap_usd}\n    on_breach: block\n"
    )
    return folder


def request(input_tokens: int, *, reply: Any = None) -> dict[str, Any]:
    """A chat request as the proxy hands it to its hooks; the mock answers 1,000 output tokens."""
    return {
        "model": MODEL,
        "messages": [dict(m) for m in MESSAGES],
        "max_tokens": 1000,
        "metadata": {"tags": [f"flow:{FLOW}"]},
        "mock_response": reply
        if reply is not None
        else {
            "model": MODEL,
            "choices": [{"message": {"role": "assistant", "content": "On its way."}}],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": 1000,
                "total_tokens": input_tokens + 1000,
            },
        },
    }


async def through_proxy(guard: FinopsGuard, data: dict[str, Any]) -> Any:
    """What LiteLLM's proxy does around a call: pre-call hooks, the call, the failure hook."""
    key = UserAPIKeyAuth()
    try:
        data = await guard.async_pre_call_hook(key, DualCache(), data, "acompletion")
        return await litellm.acompletion(**data)
    except Exception as exc:
        # by keyword, as the proxy passes it (tests/test_litellm_proxy.py runs the real proxy)
        await guard.async_post_call_failure_hook(data, exc, key, traceback_str="Traceback ...")
        raise


async def settled(daemon: DaemonProcess, spend_usd: str) -> dict[str, Any]:
    """LiteLLM fires its log events as tasks of the running loop, after the call returns: keep the
    loop running (as the proxy's does) until the holds have become spend, or 20 s have passed."""
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(
        base_url=daemon.base, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        while True:
            answer = await client.get(f"/v1/budgets/{FLOW}/check")
            assert answer.status_code == 200, answer.text
            doc: dict[str, Any] = answer.json()
            if (doc["spend_usd"], doc["held_usd"]) == (spend_usd, ZERO) or time.monotonic() > deadline:
                return doc
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def proxy_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for every call, as in the proxy: LiteLLM's logging worker stays on the loop
    it started on, so events of calls on a later loop would never be delivered."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


#: Where LiteLLM keeps callbacks; it adds a logger only if none of its class is there yet, so each
#: test empties them all (else the events of its calls go to an earlier test's guard).
_CALLBACK_LISTS = ("callbacks", "input_callback", "success_callback", "failure_callback",
                   "_async_success_callback", "_async_failure_callback")  # fmt: skip


@pytest.fixture
def guarded(tmp_path: Path, db_url: str) -> Iterator[Any]:
    def start(cap_usd: str, more_budgets: str = "") -> tuple[DaemonProcess, FinopsGuard]:
        folder = budget_folder(tmp_path, cap_usd)
        if more_budgets:
            (folder / "more.yaml").write_text(more_budgets)
        daemon = DaemonProcess(tmp_path, db_url, budgets=folder).start()
        started.append(daemon)
        guard = FinopsGuard(GuardSettings(url=daemon.base, token=TOKEN, ttl_s=60))
        for name in _CALLBACK_LISTS:
            setattr(litellm, name, [])
        litellm.callbacks = [guard]  # as the proxy's `litellm_settings: callbacks:` does
        return daemon, guard

    started: list[DaemonProcess] = []
    before = {name: list(getattr(litellm, name)) for name in _CALLBACK_LISTS}
    yield start
    for name, value in before.items():
        setattr(litellm, name, value)
    for daemon in started:
        daemon.stop()


def test_twenty_concurrent_calls_never_pass_a_blocking_cap(
    guarded: Any, proxy_loop: asyncio.AbstractEventLoop
) -> None:
    daemon, guard = guarded("0.05")
    inputs = litellm.token_counter(model=MODEL, messages=MESSAGES)
    per_call = inputs * 2_500 + 1000 * 10_000  # nano-dollars: the estimate and the actual cost agree

    async def run() -> tuple[list[Any], dict[str, Any]]:
        calls = [through_proxy(guard, request(inputs)) for _ in range(20)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        doc = await settled(daemon, format_usd(4 * per_call))
        await guard.aclose()
        return outcomes, doc

    outcomes, doc = proxy_loop.run_until_complete(run())
    answered = [o for o in outcomes if isinstance(o, litellm.ModelResponse)]
    refused = [o for o in outcomes if isinstance(o, litellm.BudgetExceededError)]
    assert len(answered) + len(refused) == 20, [o for o in outcomes if isinstance(o, Exception)]
    # $0.05 holds four calls of $0.01 and a few input tokens each; a fifth would pass the cap.
    assert len(answered) == 50_000_000 // per_call == 4
    assert refused[0].status_code == litellm.budget_exceeded_status_code
    assert "finops: budget support-bot would be exceeded" in refused[0].message
    assert (doc["spend_usd"], doc["held_usd"]) == (format_usd(4 * per_call), ZERO)
    assert 4 * per_call <= 50_000_000
    assert doc["decision"] == "allow"  # the cap is not reached: $0.0099 is left, less than one call


def test_a_failed_call_releases_its_hold_and_refused_calls_are_never_made(
    guarded: Any, proxy_loop: asyncio.AbstractEventLoop
) -> None:
    daemon, guard = guarded("0.015")  # room for one call of $0.01 and a few input tokens
    inputs = litellm.token_counter(model=MODEL, messages=MESSAGES)
    per_call = inputs * 2_500 + 1000 * 10_000

    async def run() -> tuple[list[Any], dict[str, Any]]:
        outcomes = []
        calls = [request(inputs, reply=Exception("the provider failed")), request(inputs), request(inputs)]
        calls.append({**request(inputs), "model": "house-model"})  # no price: its cost has no bound
        for data in calls:
            try:
                outcomes.append(await through_proxy(guard, data))
            except Exception as exc:
                outcomes.append(exc)
        doc = await settled(daemon, format_usd(per_call))
        await guard.aclose()
        return outcomes, doc

    (failed, answered, refused, unpriced), doc = proxy_loop.run_until_complete(run())
    assert isinstance(failed, litellm.InternalServerError), (
        failed
    )  # the provider's error, as LiteLLM raises it
    assert isinstance(answered, litellm.ModelResponse), answered  # the failed call's hold was released
    assert isinstance(refused, litellm.BudgetExceededError), refused
    assert isinstance(unpriced, litellm.BudgetExceededError), unpriced
    assert "the model has no price" in unpriced.message
    # the failed call is recorded at its cost ($0), the answered one at its own; nothing is held
    assert (doc["spend_usd"], doc["held_usd"]) == (format_usd(per_call), ZERO)


def test_the_hold_and_the_usage_carry_the_same_flow_and_tags(
    guarded: Any, proxy_loop: asyncio.AbstractEventLoop
) -> None:
    """A budget on a flow glob and the team tag: the proxy's key metadata (team alias) and a
    ``finops.flow=`` tag reach the hold as they reach the usage record, so both count against it."""
    team = (
        "budgets:\n  - name: support-team\n    match: {flow: 'support-*', tags: {team: support}}\n"
        '    owner: "@dana"\n    daily_cap_usd: 0.015\n    on_breach: block\n'
    )
    daemon, guard = guarded("1", team)  # the flow budget does not cover support-chat; the team one does
    inputs = litellm.token_counter(model=MODEL, messages=MESSAGES)
    per_call = inputs * 2_500 + 1000 * 10_000

    def team_call() -> dict[str, Any]:
        data = request(inputs)
        data["metadata"] = {"tags": ["finops.flow=support-chat"], "user_api_key_team_alias": "support"}
        return data

    async def run() -> tuple[list[Any], dict[str, Any]]:
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(await through_proxy(guard, team_call()))
            except Exception as exc:
                outcomes.append(exc)
        async with httpx.AsyncClient(base_url=daemon.base, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            deadline = time.monotonic() + 20
            while True:
                doc = (await c.get("/v1/budgets/support-chat/check", params={"tag": "team=support"})).json()
                if doc["held_usd"] == ZERO or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        await guard.aclose()
        return outcomes, doc

    (answered, refused), doc = proxy_loop.run_until_complete(run())
    assert isinstance(answered, litellm.ModelResponse), answered
    assert isinstance(refused, litellm.BudgetExceededError), refused
    assert "budget support-team would be exceeded" in refused.message
    assert (doc["budget"], doc["spend_usd"], doc["held_usd"]) == ("support-team", format_usd(per_call), ZERO)


def test_fail_closed_when_finops_is_unreachable_unless_told_to_fail_open(
    proxy_loop: asyncio.AbstractEventLoop,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    async def call(fail_open: bool) -> Any:
        guard = FinopsGuard(GuardSettings(url=nowhere, token=TOKEN, fail_open=fail_open, timeout_s=2))
        try:
            return await through_proxy(guard, request(10))
        except Exception as exc:
            return exc
        finally:
            await guard.aclose()

    closed = proxy_loop.run_until_complete(call(False))
    assert isinstance(closed, litellm.ServiceUnavailableError), closed
    assert "is unreachable" in str(closed) and "FINOPS_GUARD_FAIL_OPEN=true" in str(closed)
    assert isinstance(proxy_loop.run_until_complete(call(True)), litellm.ModelResponse)


def test_settings_from_the_environment_say_which_variable_is_wrong() -> None:
    settings = GuardSettings.from_env(
        {"FINOPS_GUARD_URL": "http://finops:8787/", "FINOPS_GUARD_MODELS": "fast=openai/gpt-4o-mini"}
    )
    assert (settings.url, settings.fail_open, settings.models) == (
        "http://finops:8787",
        False,
        {"fast": "openai/gpt-4o-mini"},
    )
    with pytest.raises(ValueError, match="FINOPS_GUARD_FAIL_OPEN takes true or false"):
        GuardSettings.from_env({"FINOPS_GUARD_FAIL_OPEN": "maybe"})
    with pytest.raises(ValueError, match="FINOPS_GUARD_TTL_S takes a number"):
        GuardSettings.from_env({"FINOPS_GUARD_TTL_S": "0"})


def test_the_proxy_finds_the_guard_by_its_config_name() -> None:
    from litellm.proxy.types_utils.utils import get_instance_fn

    found = get_instance_fn("finops.integrations.litellm.guard")
    assert isinstance(found, FinopsGuard)
