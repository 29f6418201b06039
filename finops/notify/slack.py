"""Delivery of rendered alerts to Slack with the real slack-sdk: a bot token, or an incoming webhook.

Every outcome is a :class:`Delivery` the outbox can act on, never an exception:

* ``sent`` — Slack accepted the message (``slack_ts`` when the Web API says it);
* ``retry`` — Slack certainly did not take it (rate limited, 5xx, unreachable): send again later;
* ``failed`` — it never will until someone fixes something; ``detail`` says what;
* ``ambiguous`` — the request went out but no answer came back (a read timeout):
  Slack may have posted it, so it is *not* sent again blindly (see ``find_sent``).

A send takes at most ``max_call_s`` seconds, and never starts an attempt that could end after
the ``deadline`` it is given: the outbox's claim on the message lasts that long.

Secrets never leave this module: ``detail``, log records and the exceptions it
raises are scrubbed of the token and webhook URL.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.error import HTTPError, URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.webhook import WebhookClient, WebhookResponse

from finops.errors import ConfigError, NotifyError
from finops.notify.messages import SlackMessage, owner_user_id
from finops.notify.transport import (
    BoundedRateLimitRetryHandler,
    CallDeadline,
    Scrubber,
    ServerErrorRetryHandler,
    max_call_s,
    retry_after,
    scrubbing_logger,
)
from finops.settings import Settings

__all__ = ["USER_CACHE_TTL_S", "Delivery", "OwnerLookup", "SlackSender", "sender_for"]

#: How long a looked-up owner (found or not) is remembered. In memory, per sender: the daemon
#: keeps one sender for its life, so it asks Slack at most once an hour per owner (users.list is
#: one paginated read for all handles); a CLI run asks once. No table, no migration, and nothing
#: stale survives a restart: a renamed or new member is found within the hour.
USER_CACHE_TTL_S = 3600.0
#: An answer of Slack's that is an error (a missing scope, say) is asked again after this.
_FAILED_TTL_S = 300.0
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USERS_HELP = "the bot token needs the users:read scope (users:read.email to look up emails)"


@dataclass(frozen=True)
class OwnerLookup:
    """Who a budget's ``owner`` is in Slack: a user id, or why it notifies nobody."""

    user_id: str | None
    problem: str | None = None


_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_TOKEN_HELP = "create a new bot token (xoxb-…) with the chat:write scope and set FINOPS_SLACK_BOT_TOKEN"  # noqa: S105
_WEBHOOK_HELP = "create a new incoming webhook for the channel and set FINOPS_SLACK_WEBHOOK_URL"
_BUG_HELP = "this is a finops bug: please report it with the alert that caused it"
#: ok:false codes where Slack says the request may have partly succeeded ("It's possible some
#: aspect of the operation succeeded before the error was raised"): not safe to resend blindly.
_MAYBE_POSTED = frozenset({"internal_error", "fatal_error"})
_TRANSIENT = frozenset({"ratelimited", "service_unavailable", "request_timeout", "team_added_to_org"})
_AUTH = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "no_permission",
        "team_access_not_granted",
        "ekm_access_denied",
    }
)
_LAYOUT = frozenset(
    {
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "too_many_attachments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
        "metadata_must_be_sent_from_app",
        "invalid_payload",
    }
)


@dataclass(frozen=True)
class Delivery:
    """The outcome of one send; ``detail`` is for people and never contains a secret."""

    status: Literal["sent", "retry", "failed", "ambiguous"]
    detail: str
    retry_after_s: float | None = None
    slack_ts: str | None = None


_TOO_LATE = Delivery(
    "retry",
    "the claim on this message ended before it could be sent; nothing was sent, it goes on the next run",
)


def _hint(code: str, channel: str, data: Mapping[str, Any]) -> str:
    """What to do about a permanent Web API error, in the words of the person who must do it."""
    if code == "channel_not_found":
        return (
            f"Slack has no channel {channel} the finops app can see: fix slack_channel in the budget file "
            "(a name like #support-ai-costs or an id like C0123ABC), or invite the app if it is private"
        )
    if code == "not_in_channel":
        return (
            f"the finops app is not a member of {channel}: invite it (/invite @finops in the channel) "
            "or grant it the chat:write.public scope"
        )
    if code in ("is_archived", "channel_is_archived"):
        return f"{channel} is archived: unarchive it or point slack_channel at a live channel"
    if code == "missing_scope":
        needed = str(data.get("needed") or "chat:write")
        return (
            f"the finops Slack app lacks the {needed} scope: add it under OAuth & Permissions, "
            "reinstall the app and update FINOPS_SLACK_BOT_TOKEN"
        )
    if code in _AUTH:
        return f"Slack rejected the bot token: {_TOKEN_HELP}"
    if code in _LAYOUT:
        errors = data.get("errors") or (data.get("response_metadata") or {}).get("messages") or []
        shown = "; ".join(str(e) for e in errors[:3])
        return f"Slack rejected the message layout{f' ({shown})' if shown else ''}: {_BUG_HELP}"
    if code.startswith("restricted_action") or code in (
        "cannot_reply_to_message",
        "posting_to_general_channel_denied",
    ):
        return (
            f"workspace settings keep the finops app from posting in {channel}: "
            "ask a Slack admin or use another channel"
        )
    return f"Slack refused the message to {channel}"


def _after(wait: float | None) -> str:
    return f"; Slack asks to wait {wait:g} s" if wait is not None else "; try again later"


def _webhook_hint(status: int, code: str) -> str:
    if code in ("no_service", "invalid_token", "no_team", "team_disabled") or (
        status in (401, 404) and not code
    ):
        return f"the incoming webhook was removed or disabled: {_WEBHOOK_HELP}"
    if code == "channel_not_found":
        return f"the webhook's channel no longer exists: {_WEBHOOK_HELP}"
    if code == "channel_is_archived":
        return f"the webhook's channel is archived: unarchive it, or {_WEBHOOK_HELP}"
    if code in ("action_prohibited", "posting_to_general_channel_denied"):
        return "a workspace admin restricted posting to the webhook's channel: ask a Slack admin"
    if code in _LAYOUT or code in ("no_text", "too_many_attachments"):
        return f"Slack rejected the message layout: {_BUG_HELP}"
    return "the incoming webhook refused the message"


class SlackSender:
    """Sends :class:`SlackMessage` objects with a bot token (any channel) or an incoming webhook (its own).

    With both, the token wins: it can choose the channel and look messages up again.
    Built once at the entry point from ``Settings``; not thread-safe (one deliverer per sender).

    Raises:
        ConfigError: neither a token nor a webhook URL, or an unusable URL or timeout.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        webhook_url: str | None = None,
        base_url: str | None = None,
        default_channel: str | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 3,
    ) -> None:
        token = token.strip() if token and token.strip() else None
        webhook_url = webhook_url.strip() if webhook_url and webhook_url.strip() else None
        if token is None and webhook_url is None:
            raise ConfigError(
                "Slack is not configured: set FINOPS_SLACK_BOT_TOKEN (a bot token, xoxb-…, with chat:write) "
                "or FINOPS_SLACK_WEBHOOK_URL (an incoming webhook URL)"
            )
        if not timeout_s > 0:
            raise ConfigError(
                f"the Slack timeout must be positive seconds (FINOPS_SLACK_TIMEOUT_S), got {timeout_s}"
            )
        if max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {max_retries}")
        for name, url in (("FINOPS_SLACK_WEBHOOK_URL", webhook_url), ("FINOPS_SLACK_BASE_URL", base_url)):
            if url is not None and not url.lower().startswith(("https://", "http://")):
                raise ConfigError(f"{name} must be an https:// URL")  # never echo it: it may be a secret
        self._scrub = Scrubber([token, webhook_url])
        self._default_channel = (
            default_channel.strip() if default_channel and default_channel.strip() else None
        )
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._channel_ids: dict[str, str] = {}
        self._owners: dict[str, tuple[float, OwnerLookup]] = {}  # owner -> (expires, lookup)
        self._members: tuple[float, list[dict[str, Any]]] | None = None  # users.list, until
        self._deadline = CallDeadline(attempt_s=2 * timeout_s)
        handlers = [
            BoundedRateLimitRetryHandler(max_retry_count=max_retries, deadline=self._deadline),
            ServerErrorRetryHandler(max_retry_count=max_retries, deadline=self._deadline),
        ]
        logger = scrubbing_logger(self._scrub)
        # urllib takes float seconds; slack-sdk merely annotates the timeout as int.
        timeout = cast(int, timeout_s)
        self._web: WebClient | None = None
        self._hook: WebhookClient | None = None
        if token is not None:
            self._web = WebClient(
                token=token,
                base_url=base_url or WebClient.BASE_URL,
                timeout=timeout,
                logger=logger,
                retry_handlers=handlers,
            )
        else:
            assert webhook_url is not None
            self._hook = WebhookClient(webhook_url, timeout=timeout, logger=logger, retry_handlers=handlers)

    def __repr__(self) -> str:
        mode = "bot token" if self._web is not None else "incoming webhook"
        return f"SlackSender({mode}, default_channel={self._default_channel!r}, timeout_s={self._timeout_s})"

    @property
    def max_call_s(self) -> float:
        """The longest one ``send`` (one Web API call with its retries) may take, in seconds."""
        return max_call_s(self._timeout_s, self._max_retries)

    @property
    def can_look_up(self) -> bool:
        """Whether ``find_sent`` can read the channel (a bot token can; a webhook cannot)."""
        return self._web is not None

    # ------------------------------------------------------------ sending

    def send(self, channel: str | None, message: SlackMessage, *, deadline: float | None = None) -> Delivery:
        """Post ``message`` to ``channel`` (or the default channel); never raises for Slack's answers.

        With a webhook the channel is the webhook's own and ``channel`` is ignored.
        Rate limits (up to 30 s) and 5xx answers are retried here, ``max_retries`` times in all,
        but no attempt is started that could end after ``deadline`` (epoch seconds): the
        answer is then ``retry``, and that attempt was not sent.
        """
        self._deadline.at = deadline
        try:
            return self._send(channel, message)
        finally:
            self._deadline.at = None

    def _send(self, channel: str | None, message: SlackMessage) -> Delivery:
        if not self._deadline.allows():
            return _TOO_LATE
        try:
            if self._hook is not None:
                return self._send_webhook(self._hook, message)
            assert self._web is not None
            target = (channel or "").strip() or self._default_channel
            if target is None:
                return Delivery(
                    "failed",
                    "no Slack channel for this alert: set slack_channel in the budget "
                    "file or FINOPS_SLACK_DEFAULT_CHANNEL",
                )
            return self._send_web(self._web, target, message)
        except (SlackClientError, URLError, OSError, http.client.HTTPException, ValueError) as exc:
            where = None if self._hook is not None else ((channel or "").strip() or self._default_channel)
            return self._from_exception(exc, where)

    def upload(
        self, channel: str | None, *, filename: str, content: str, title: str, deadline: float | None = None
    ) -> Delivery:
        """Attach a file (the full report) to ``channel`` with files_upload_v2; needs a bot token
        with files:write. Same outcomes and ``deadline`` as ``send``; it makes up to four calls."""
        self._deadline.at = deadline
        try:
            return self._upload(channel, filename=filename, content=content, title=title)
        finally:
            self._deadline.at = None

    def _upload(self, channel: str | None, *, filename: str, content: str, title: str) -> Delivery:
        if not self._deadline.allows():
            return _TOO_LATE
        if self._web is None:
            return Delivery(
                "failed", "an incoming webhook cannot upload files: use a bot token (files:write)"
            )
        target = (channel or "").strip() or self._default_channel
        if target is None:
            return Delivery(
                "failed",
                "no Slack channel for the report: pass --channel or set FINOPS_SLACK_DEFAULT_CHANNEL",
            )
        try:
            channel_id = self._channel_id(self._web, target)
            self._web.files_upload_v2(channel=channel_id, filename=filename, content=content, title=title)
        except SlackApiError as exc:
            return self._from_api_error(exc, target)
        except NotifyError as exc:
            return Delivery("failed", str(exc))
        except (SlackClientError, URLError, OSError, http.client.HTTPException, ValueError) as exc:
            return self._from_exception(exc, target)
        return Delivery("sent", f"uploaded {filename} to {target}")

    def _send_web(self, client: WebClient, channel: str, message: SlackMessage) -> Delivery:
        try:
            response = client.chat_postMessage(
                channel=channel, text=message.text, blocks=list(message.blocks), metadata=message.metadata
            )
        except SlackApiError as exc:
            return self._from_api_error(exc, channel)
        ts = response.get("ts")
        if isinstance(response.get("channel"), str):
            self._channel_ids[channel] = response["channel"]
        return Delivery(
            "sent", f"posted to {channel}" + (f" (ts {ts})" if ts else ""), slack_ts=str(ts) if ts else None
        )

    def _send_webhook(self, client: WebhookClient, message: SlackMessage) -> Delivery:
        response: WebhookResponse = client.send(
            text=message.text, blocks=list(message.blocks), metadata=message.metadata
        )
        status, body = response.status_code, (response.body or "").strip()
        if status == 200:
            return Delivery("sent", "posted through the incoming webhook")
        code = body if re.fullmatch(r"[a-z_]{2,64}", body) else ""
        said = self._scrub(f"HTTP {status}" + (f" {code}" if code else ""))
        if status == 429:
            wait = retry_after(response.headers)
            return Delivery(
                "retry",
                f"Slack rate-limited the webhook ({said})" + _after(wait),
                retry_after_s=wait,
            )
        if status >= 500:
            return Delivery(
                "retry",
                f"Slack's webhook endpoint failed ({said}) on every attempt; try again later",
                retry_after_s=retry_after(response.headers),
            )
        return Delivery("failed", f"webhook answered {said}: {_webhook_hint(status, code)}")

    def _from_api_error(self, exc: SlackApiError, channel: str) -> Delivery:
        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        data: Mapping[str, Any] = response.data if isinstance(getattr(response, "data", None), dict) else {}
        code = str(data.get("error") or "")
        code_s = self._scrub(code)[:100]
        wait = retry_after(getattr(response, "headers", None))
        if status == 429 or code == "ratelimited":
            return Delivery(
                "retry",
                f"Slack rate-limited posts to {channel}" + _after(wait),
                retry_after_s=wait,
            )
        if status >= 500:
            return Delivery(
                "retry", f"Slack answered HTTP {status} on every attempt; try again later", retry_after_s=wait
            )
        if code in _MAYBE_POSTED:
            return Delivery(
                "ambiguous",
                f"{code_s}: Slack says the post may have partly succeeded; "
                f"check {channel} before sending it again",
            )
        if code in _TRANSIENT:
            return Delivery(
                "retry", f"{code_s}: Slack is temporarily unable to post; try again later", retry_after_s=wait
            )
        if status != 200 or not code:
            return Delivery(
                "failed",
                f"the Slack Web API answered HTTP {status} {code_s}".rstrip()
                + ": check FINOPS_SLACK_BASE_URL (default https://slack.com/api/)",
            )
        return Delivery("failed", self._scrub(f"{code}: {_hint(code, channel, data)}"))

    def _from_exception(self, exc: BaseException, channel: str | None) -> Delivery:
        """No answer from Slack: was the request sent? urllib raises URLError only before it was."""
        where = channel or "the webhook's channel"
        reason = self._scrub(str(getattr(exc, "reason", None) or exc) or type(exc).__name__)[:300]
        if isinstance(exc, SlackRequestError):
            return Delivery("failed", f"slack-sdk refused to send ({reason}); check the Slack settings")
        if isinstance(exc, URLError) and not isinstance(exc, HTTPError):
            return Delivery("retry", f"could not reach Slack ({reason}); nothing was sent")
        if isinstance(exc, TimeoutError):
            what = f"no answer from Slack within {self._timeout_s:g} s after the message was sent"
        else:
            what = f"the connection to Slack broke after the message was sent ({reason})"
        return Delivery(
            "ambiguous", f"{what}: it may have been posted; check {where} before sending it again"
        )

    # ------------------------------------------------------------ looking up

    def find_sent(self, channel: str | None, dedupe_key: str, since_us: int) -> str | None:
        """The ts of a message posted since ``since_us`` whose metadata carries ``dedupe_key``, or None.

        Lets delivery check an interrupted send before sending again. Needs a bot
        token with channels:history (groups:history for private channels), and
        channels:read to turn a channel name into an id.

        Raises:
            NotifyError: Slack could not be asked (webhook only, no channel, API error).
        """
        if self._web is None:
            raise NotifyError(
                "an incoming webhook cannot read the channel, so an interrupted send cannot be "
                "checked: use a bot token (FINOPS_SLACK_BOT_TOKEN) with channels:history"
            )
        target = (channel or "").strip() or self._default_channel
        if target is None:
            raise NotifyError(
                "no Slack channel to look in: set slack_channel or FINOPS_SLACK_DEFAULT_CHANNEL"
            )
        try:
            channel_id = self._channel_id(self._web, target)
            cursor: str | None = None
            while True:
                page = self._web.conversations_history(
                    channel=channel_id,
                    oldest=f"{since_us / 1e6:.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
                for msg in page.get("messages") or []:
                    payload = (msg.get("metadata") or {}).get("event_payload") or {}
                    if payload.get("dedupe_key") == dedupe_key:
                        return str(msg["ts"])
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if cursor is None:
                    return None
        except SlackApiError as exc:
            code = str((exc.response.data or {}).get("error") or f"HTTP {exc.response.status_code}")
            hint = _hint(code, target, exc.response.data or {})
            raise NotifyError(
                self._scrub(f"could not read {target} to check an interrupted send: {code}: {hint}")
            ) from None
        except (SlackClientError, OSError, http.client.HTTPException, ValueError) as exc:
            raise NotifyError(
                self._scrub(f"could not read {target} to check an interrupted send: {exc}")
            ) from None

    def _channel_id(self, client: WebClient, channel: str) -> str:
        """conversations.history wants an id; chat.postMessage told us some, conversations.list the rest."""
        if _CHANNEL_ID.match(channel):
            return channel
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        name = channel.lstrip("#")
        cursor: str | None = None
        while True:
            page = client.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=1000, cursor=cursor
            )
            for info in page.get("channels") or []:
                if info.get("name") == name:
                    self._channel_ids[channel] = str(info["id"])
                    return str(info["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                raise NotifyError(
                    f"channel {channel} not found by conversations.list (the app needs "
                    "channels:read and groups:read, and must be in private channels)"
                )

    # ------------------------------------------------------------ owners

    def look_up_owner(self, owner: str) -> OwnerLookup:
        """The Slack user a budget's ``owner`` names: a user id (``U0123ABC``, ``<@U0123ABC>``) as
        written, an email by users.lookupByEmail, a handle (``@dana``) or name by users.list
        (username, display name or real name, case-insensitive, one member only). Cached for
        ``USER_CACHE_TTL_S``; an error answer for five minutes, no answer not at all. Never raises."""
        owner = owner.strip()
        direct = owner_user_id(owner)
        if direct is not None:
            return OwnerLookup(direct)
        now = time.monotonic()
        cached = self._owners.get(owner)
        if cached is not None and cached[0] > now:
            return cached[1]
        if self._web is None:
            return OwnerLookup(
                None,
                "an incoming webhook cannot look up Slack users: write the owner as a Slack user id "
                "(U0123ABC), or use a bot token (FINOPS_SLACK_BOT_TOKEN) with users:read",
            )
        try:
            found = self._look_up(self._web, owner, now)
        except SlackApiError as exc:
            code = str((exc.response.data or {}).get("error") or f"HTTP {exc.response.status_code}")
            hint = _USERS_HELP if code in ("missing_scope", "not_allowed_token_type") else _hint(code, "", {})
            failed = OwnerLookup(None, self._scrub(f"Slack could not look up {owner}: {code}: {hint}"))
            self._owners[owner] = (now + _FAILED_TTL_S, failed)  # a missing scope is not fixed in a second
            return failed
        except (SlackClientError, OSError, http.client.HTTPException, ValueError) as exc:
            return OwnerLookup(None, self._scrub(f"Slack could not look up {owner}: {exc}"))
        self._owners[owner] = (now + USER_CACHE_TTL_S, found)
        return found

    def _look_up(self, client: WebClient, owner: str, now: float) -> OwnerLookup:
        if _EMAIL.match(owner):
            try:
                user = client.users_lookupByEmail(email=owner).get("user") or {}
            except SlackApiError as exc:
                if (exc.response.data or {}).get("error") == "users_not_found":
                    return OwnerLookup(None, f"no Slack member has the email {owner}")
                raise
            return OwnerLookup(str(user["id"]))
        wanted = owner.removeprefix("@").strip().casefold()
        members = [m for m in self._member_list(client, now) if not m.get("deleted")]

        def names(m: dict[str, Any], field: str) -> str:
            value = m.get(field) if field == "name" else (m.get("profile") or {}).get(field)
            return str(value or m.get(field) or "").strip().casefold()

        for field in ("name", "display_name", "real_name"):
            hits = {str(m["id"]) for m in members if wanted and names(m, field) == wanted}
            if len(hits) == 1:
                return OwnerLookup(hits.pop())
            if len(hits) > 1:
                return OwnerLookup(
                    None, f"{len(hits)} Slack members are called {owner}: write the owner's user id or email"
                )
        return OwnerLookup(None, f"no Slack member is called {owner}: write the owner's user id or email")

    def _member_list(self, client: WebClient, now: float) -> list[dict[str, Any]]:
        """Every member of the workspace (users.list, page by page), cached with the owners."""
        if self._members is not None and self._members[0] > now:
            return self._members[1]
        members: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = client.users_list(limit=200, cursor=cursor)
            members += list(page.get("members") or [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        self._members = (now + USER_CACHE_TTL_S, members)
        return members


def sender_for(settings: Settings) -> SlackSender:
    """The one place Slack settings become a sender (bot token, else webhook)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    webhook = settings.slack_webhook_url.get_secret_value() if settings.slack_webhook_url else None
    return SlackSender(
        token=token,
        webhook_url=webhook,
        base_url=settings.slack_base_url,
        default_channel=settings.slack_default_channel,
        timeout_s=settings.slack_timeout_s,
    )
