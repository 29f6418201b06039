"""The LiteLLM proxy guard: reserve before each call, settle or release after it, so a blocking cap
in finops holds for every call that goes through the proxy, at any concurrency.

``FinopsGuard`` is a LiteLLM ``CustomLogger``:

- ``async_pre_call_hook`` finds the call's flow and tags exactly as finops's LiteLLM mapping does
  (``finops.sources.litellm_logs``: a request tag ``flow:NAME`` or ``finops.flow=NAME``, else
  ``metadata.spend_logs_metadata.finops_flow`` / ``requester_metadata.finops_flow``, else
  ``unassigned``; tags ``team``, ``key_alias``, ``model_group``, ``finops.tag.KEY=VALUE``) and asks
  ``POST /v1/budgets/{flow}/reserve`` to hold the call's worst case: the model, the input tokens
  (the messages counted with ``litellm.token_counter``) and ``max_tokens`` (or the configured
  default, which is then set on the request so the call cannot cost more than was held). finops
  prices it. On deny the call is refused with ``litellm.BudgetExceededError``, which the proxy
  answers like its own budgets (HTTP ``litellm.budget_exceeded_status_code``, 422 by default).
- ``async_log_success_event`` / ``async_log_failure_event`` post the call's usage record (the
  ``StandardLoggingPayload`` mapped by finops's own mapping) to ``POST /v1/usage`` with the
  ``reservation_id``: the actual cost replaces the hold. ``async_post_call_failure_hook`` (the
  call was refused later or never made) releases the hold with ``DELETE /v1/reservations/{id}``.
  Whatever is missed lapses at the hold's TTL.
- Fail closed: when finops cannot be reached (or answers 5xx) the call is refused with
  ``litellm.ServiceUnavailableError`` (503), unless ``FINOPS_GUARD_FAIL_OPEN=true``. A 4xx from
  finops (a wrong token, a flow name it refuses) always refuses the call, with finops's reason.

Proxy ``config.yaml``::

    litellm_settings:
      callbacks: finops.integrations.litellm.guard

and in the proxy's environment::

    FINOPS_GUARD_URL=http://finops:8787          # the finops daemon (default http://127.0.0.1:8787)
    FINOPS_GUARD_TOKEN=...                       # one of the daemon's FINOPS_INGEST_TOKENS
    # optional: FINOPS_GUARD_FAIL_OPEN=false, FINOPS_GUARD_TTL_S=600, FINOPS_GUARD_MAX_TOKENS=4096,
    # FINOPS_GUARD_TIMEOUT_S=5, FINOPS_GUARD_MODELS=my-group=openai/gpt-4o,other=anthropic/claude-...

``FINOPS_GUARD_MODELS`` names the priced model behind a model group whose name finops does not
price (a model with no price is denied on a blocking budget, as finops's reserve does). Usage is
posted under the guard's token: use the same token for LiteLLM's generic logging callback to
``/v1/litellm``, if you keep it, and each call is stored once (same source, same id). docs/litellm.md
says more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

try:
    import litellm
    from litellm.integrations.custom_logger import CustomLogger
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("finops.integrations.litellm needs LiteLLM: pip install 'finops[litellm]'") from exc

from finops.sources.litellm_logs import standard_logging_records

__all__ = ["RESERVATION_KEY", "FinopsGuard", "GuardSettings", "guard"]

log = logging.getLogger("finops.integrations.litellm")

#: Where the pre-call hook leaves the reservation id, in the request's metadata.
RESERVATION_KEY = "finops_reservation_id"
_METADATA_KEYS = ("metadata", "litellm_metadata")  # the proxy uses the second on some routes
_MAX_TOKEN_PARAMS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_CHAT_CALLS = frozenset({"completion", "acompletion", "text_completion", "atext_completion"})
_RESPONSES_CALLS = frozenset({"responses", "aresponses"})
_EMBEDDING_CALLS = frozenset({"embedding", "aembedding"})
_POST_RETRIES_S = (0.2, 0.5, 1.0)  # usage posts are idempotent (source, id): retrying is safe


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} takes true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} takes a number from {low:g} to {high:g}, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} takes a number from {low:g} to {high:g}, got {raw!r}")
    return value


def _models(raw: str | None) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        group, sep, model = item.partition("=")
        if not sep or not group.strip() or not model.strip():
            raise ValueError(f"FINOPS_GUARD_MODELS takes GROUP=MODEL,... got {item.strip()!r}")
        pairs[group.strip()] = model.strip()
    return pairs


@dataclass(frozen=True)
class GuardSettings:
    """Where finops is and how the guard behaves; ``from_env`` reads ``FINOPS_GUARD_*``."""

    url: str = "http://127.0.0.1:8787"
    token: str | None = None
    fail_open: bool = False  # finops unreachable: refuse the call (False) or let it through
    ttl_s: int = 600  # a hold lapses after this; longer than the slowest call
    max_tokens: int = 4096  # the output bound held (and set) when a request gives none
    timeout_s: float = 5.0
    models: Mapping[str, str] = field(default_factory=dict)  # model group -> priced model

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GuardSettings:
        """Raises ``ValueError`` with one line naming the variable at fault."""
        env = os.environ if env is None else env
        return cls(
            url=(env.get("FINOPS_GUARD_URL") or cls.url).rstrip("/"),
            token=env.get("FINOPS_GUARD_TOKEN") or None,
            fail_open=_flag(env, "FINOPS_GUARD_FAIL_OPEN", cls.fail_open),
            ttl_s=int(_number(env, "FINOPS_GUARD_TTL_S", cls.ttl_s, low=1, high=86_400)),
            max_tokens=int(_number(env, "FINOPS_GUARD_MAX_TOKENS", cls.max_tokens, low=1, high=10**8)),
            timeout_s=_number(env, "FINOPS_GUARD_TIMEOUT_S", cls.timeout_s, low=0.1, high=300),
            models=_models(env.get("FINOPS_GUARD_MODELS")),
        )


class _Unreachable(Exception):
    """finops did not answer, or answered 5xx: the fail-open setting decides."""


class FinopsGuard(CustomLogger):  # type: ignore[misc]  # LiteLLM is not type-checked here
    """Reserve in ``async_pre_call_hook``; settle in the log events; release on a proxy failure."""

    def __init__(self, settings: GuardSettings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or GuardSettings.from_env()
        self._clients: dict[int, httpx.AsyncClient] = {}  # one per event loop
        self._issued: dict[str, float] = {}  # reservation id -> monotonic expiry: only ours are closed
        self._next_prune = 0.0

    # ------------------------------------------------------------------ HTTP

    def _client(self) -> httpx.AsyncClient:
        loop = id(asyncio.get_running_loop())
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            headers = {"Authorization": f"Bearer {self.settings.token}"} if self.settings.token else {}
            client = httpx.AsyncClient(
                base_url=self.settings.url, headers=headers, timeout=self.settings.timeout_s
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (tests; the proxy keeps it for its lifetime)."""
        client = self._clients.pop(id(asyncio.get_running_loop()), None)
        if client is not None:
            await client.aclose()

    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """One request, retried once on a transport error; ``_Unreachable`` when it still fails."""
        for attempt in (1, 2):
            try:
                answer = await self._client().request(method, path, json=body)
            except httpx.TransportError as exc:
                if attempt == 2:
                    raise _Unreachable(f"finops at {self.settings.url} is unreachable ({exc!r})") from None
                continue
            if answer.status_code >= 500:
                raise _Unreachable(
                    f"finops at {self.settings.url} answered {answer.status_code}: {_why(answer)}"
                )
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ reserve

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        """Hold the call's worst case, or refuse the call (see the module docstring)."""
        metadata = _metadata(data)
        metadata.pop(RESERVATION_KEY, None)  # only the guard puts one there
        call = str(call_type or "acompletion").removeprefix("litellm.")
        found = _flow_and_tags(data, metadata, user_api_key_dict, call)
        if found is None:
            return data  # not a token-priced call (images, audio...): finops does not record it
        flow, tags = found
        try:
            body = self._estimate(data, call)
        except Exception as exc:  # LiteLLM's counter on a shape it does not know: no bound, no call
            raise _unavailable(
                f"the guard could not count the request's input tokens ({exc!r})", data
            ) from None
        body.update(ttl_s=self.settings.ttl_s, tags=tags)
        call_id = data.get("litellm_call_id")
        body["request_id"] = call_id if isinstance(call_id, str) and call_id else f"litellm-{uuid.uuid4()}"
        try:
            answer = await self._request("POST", f"/v1/budgets/{quote(flow, safe='')}/reserve", body)
        except _Unreachable as exc:
            if self.settings.fail_open:
                log.warning("%s: call let through unguarded (FINOPS_GUARD_FAIL_OPEN=true)", exc)
                return data
            raise _unavailable(
                f"{exc}: the call is refused because budgets cannot be enforced; "
                "retry when finops is back, or set FINOPS_GUARD_FAIL_OPEN=true to let calls through",
                data,
            ) from None
        doc = _json(answer)
        if answer.status_code != 200 or not isinstance(doc, dict):
            raise _unavailable(f"finops refused the reserve for flow {flow!r}: {_why(answer)}", data)
        if not doc.get("allow"):
            raise _budget_exceeded(flow, doc)
        rid = str(doc["reservation_id"])
        self._remember(rid)
        metadata[RESERVATION_KEY] = rid
        return data

    def _estimate(self, data: dict[str, Any], call: str) -> dict[str, Any]:
        """What finops needs to price the worst case: model, input tokens, output bound."""
        requested = str(data.get("model") or "")
        model = self.settings.models.get(requested, requested)
        body: dict[str, Any] = {"model": model}
        provider, sep, rest = model.partition("/")
        if sep and rest:
            body.update(provider=provider, model=rest)
        body["input_tokens"] = _input_tokens(data, model)
        if call in _EMBEDDING_CALLS:
            body["max_output_tokens"] = 0
            return body
        given = next(
            (data[p] for p in _MAX_TOKEN_PARAMS if isinstance(data.get(p), int) and data[p] >= 0), None
        )
        if given is None:
            given = self.settings.max_tokens
            if call in _CHAT_CALLS:  # the call may not produce more than was held
                data["max_tokens"] = given
            elif call in _RESPONSES_CALLS:
                data["max_output_tokens"] = given
        body["max_output_tokens"] = given
        return body

    def _remember(self, rid: str) -> None:
        now = time.monotonic()
        if now >= self._next_prune:  # forget holds long lapsed (their calls never logged back)
            self._issued = {k: v for k, v in self._issued.items() if v > now}
            self._next_prune = now + 60
        self._issued[rid] = now + self.settings.ttl_s + 60

    # ------------------------------------------------------------------ settle / release

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await self._settle(kwargs)

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await self._settle(kwargs)  # a failed call is recorded too: its cost, often $0, replaces the hold

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """The proxy refused or failed the call after our hold: release it (a settled hold stays).
        The proxy passes more by keyword (``traceback_str``) as its versions go on: accept it all."""
        rid = _metadata(request_data).get(RESERVATION_KEY)
        if isinstance(rid, str) and rid in self._issued:
            await self._release(rid)

    async def _settle(self, kwargs: Mapping[str, Any]) -> None:
        rid = _reservation_of(kwargs)
        if rid is None or self._issued.pop(rid, None) is None:
            return  # not a call this guard reserved
        payload = kwargs.get("standard_logging_object")
        record = next((r for _, r in standard_logging_records(payload)), None) if payload else None
        if not isinstance(record, dict):
            await self._release(rid)  # nothing finops records (a cache hit): nothing was spent
            return
        record["reservation_id"] = rid
        await self._post_usage(record, rid)

    async def _post_usage(self, record: dict[str, Any], rid: str) -> None:
        problem = ""
        for pause in (*_POST_RETRIES_S, None):
            try:
                answer = await self._request("POST", "/v1/usage", record)
            except _Unreachable as exc:
                problem = str(exc)
            else:
                doc = _json(answer)
                if answer.status_code == 200 and isinstance(doc, dict) and not doc.get("rejected"):
                    return
                problem = f"finops refused it: {_why(answer)}"
                break  # a refusal does not change on retry
            if pause is not None:
                await asyncio.sleep(pause)
        log.error(
            "usage of call %s (reservation %s) was not recorded: %s; its hold lapses at its TTL; "
            "re-ingest LiteLLM's spend logs with `finops ingest --kind litellm-spendlogs`",
            record.get("id"),
            rid,
            problem,
        )

    async def _release(self, rid: str) -> None:
        try:
            await self._request("DELETE", f"/v1/reservations/{quote(rid, safe='')}")
        except _Unreachable as exc:
            log.warning("reservation %s was not released (%s); it lapses at its TTL", rid, exc)


# ---------------------------------------------------------------------- request reading


def _metadata(data: dict[str, Any]) -> dict[str, Any]:
    """The request's metadata dict (created when absent), where tags come from and the id goes."""
    for key in _METADATA_KEYS:
        value = data.get(key)
        if isinstance(value, dict):
            return value
    created: dict[str, Any] = {}
    data["metadata"] = created
    return created


def _reservation_of(kwargs: Mapping[str, Any]) -> str | None:
    params = kwargs.get("litellm_params")
    if not isinstance(params, Mapping):
        return None
    for key in _METADATA_KEYS:
        meta = params.get(key)
        if isinstance(meta, Mapping) and isinstance(meta.get(RESERVATION_KEY), str):
            return str(meta[RESERVATION_KEY])
    return None


def _request_tags(data: Mapping[str, Any], metadata: Mapping[str, Any]) -> list[str]:
    tags: list[str] = []
    for source in (metadata.get("tags"), data.get("tags")):
        if isinstance(source, list):
            tags.extend(t for t in source if isinstance(t, str) and t not in tags)
    return tags


def _flow_and_tags(
    data: Mapping[str, Any], metadata: Mapping[str, Any], key: Any, call: str
) -> tuple[str, dict[str, str]] | None:
    """The flow and tags the call's usage record will carry, by finops's own LiteLLM mapping."""
    payload = {
        "id": "reserve",
        "call_type": call,
        "model": data.get("model"),
        "model_group": data.get("model"),
        "request_tags": _request_tags(data, metadata),
        "metadata": {
            "user_api_key_alias": metadata.get("user_api_key_alias") or getattr(key, "key_alias", None),
            "user_api_key_team_alias": metadata.get("user_api_key_team_alias")
            or getattr(key, "team_alias", None),
            "user_api_key_team_id": metadata.get("user_api_key_team_id") or getattr(key, "team_id", None),
            "spend_logs_metadata": metadata.get("spend_logs_metadata"),
            "requester_metadata": metadata.get("requester_metadata"),
        },
    }
    record = next((r for _, r in standard_logging_records(payload)), None)
    if not isinstance(record, dict):
        return None
    return str(record["flow"]), dict(record["tags"])


def _input_tokens(data: Mapping[str, Any], model: str) -> int:
    """Input tokens by LiteLLM's counter: the messages, or the ``input``/``prompt`` text."""
    messages = data.get("messages")
    if isinstance(messages, list) and messages:
        return int(litellm.token_counter(model=model, messages=messages))
    text = data.get("input", data.get("prompt"))
    if isinstance(text, list):
        if text and all(isinstance(m, dict) for m in text):  # Responses API input items
            return int(litellm.token_counter(model=model, messages=text))
        text = "\n".join(str(t) for t in text)
    return int(litellm.token_counter(model=model, text=str(text))) if text else 0


# ---------------------------------------------------------------------- answers


def _json(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _why(answer: httpx.Response) -> str:
    doc = _json(answer)
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    if isinstance(doc, dict) and doc.get("rejections"):
        return "; ".join(str(r.get("reason")) for r in doc["rejections"] if isinstance(r, dict))
    return f"HTTP {answer.status_code}"


def _budget_exceeded(flow: str, doc: Mapping[str, Any]) -> Exception:
    """LiteLLM's own budget error, as the proxy's budgets raise it. Its two amounts are floats
    by LiteLLM's signature: for display only; finops's exact figures are in the message."""
    budgets = [b for b in doc.get("budgets") or [] if isinstance(b, dict)]
    tight = next((b for b in budgets if b.get("budget") == doc.get("budget")), budgets[0] if budgets else {})
    spend, cap = tight.get("spend_usd") or "0", tight.get("cap_usd") or "0"
    held = tight.get("held_usd") or "0"
    message = (
        f"finops: {doc.get('reason')} (flow {flow}; spent ${spend}, held ${held}, cap ${cap}, "
        f"this call ${doc.get('estimate_usd')})"
    )
    # LiteLLM's error declares these floats and only shows them; finops decided with exact
    # integer nano-dollars, and the message above carries the exact decimal amounts.
    return litellm.BudgetExceededError(  # type: ignore[no-any-return]
        current_cost=float(spend), max_budget=float(cap), message=message
    )


def _unavailable(message: str, data: Mapping[str, Any]) -> Exception:
    return litellm.ServiceUnavailableError(  # type: ignore[no-any-return]
        message=message, llm_provider="finops", model=str(data.get("model") or "")
    )


#: The instance ``callbacks: finops.integrations.litellm.guard`` names; settings from FINOPS_GUARD_*.
guard = FinopsGuard()
