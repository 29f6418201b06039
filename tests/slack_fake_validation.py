"""What Slack's Web API rejects in a message, as the fake Slack (tests/slack_fake.py) checks it.

Mirrors Slack's documented limits and answers: ``msg_too_long`` above 40,000
characters of text, ``no_text`` without text or blocks, and ``invalid_blocks``
with Slack-style messages (``must be less than 151 characters
[json-pointer:/blocks/0/text/text]``) for a header over 150 characters, a section
text over 3,000, more than 10 fields or a field over 2,000, more than 10 context
elements, more than 50 blocks, or an unknown block type.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MESSAGE_TEXT_MAX", "validate_message"]

MESSAGE_TEXT_MAX = 40_000


def _text_object(obj: Any, at: str, *, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict):
        return [f"must provide an object [json-pointer:{at}]"]
    errors: list[str] = []
    kind = obj.get("type")
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if kind not in allowed:
        errors.append(f"must be one of {', '.join(allowed)} [json-pointer:{at}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"must be more than 0 characters [json-pointer:{at}/text]")
    elif len(text) > limit:
        errors.append(f"must be less than {limit + 1} characters [json-pointer:{at}/text]")
    if kind == "mrkdwn" and "emoji" in obj:
        errors.append(f"invalid additional property: emoji [json-pointer:{at}]")
    return errors


def _block(block: Any, at: str) -> list[str]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return [f"must provide an object with a type [json-pointer:{at}]"]
    errors: list[str] = []
    if len(str(block.get("block_id", ""))) > 255:
        errors.append(f"must be less than 256 characters [json-pointer:{at}/block_id]")
    kind = block["type"]
    if kind == "header":
        errors += _text_object(block.get("text"), f"{at}/text", limit=150, plain_only=True)
    elif kind == "section":
        if "text" not in block and "fields" not in block:
            errors.append(f"must provide text or fields [json-pointer:{at}]")
        if "text" in block:
            errors += _text_object(block["text"], f"{at}/text", limit=3000)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not fields:
                errors.append(f"must provide a non-empty array [json-pointer:{at}/fields]")
            else:
                if len(fields) > 10:
                    errors.append(f"no more than 10 items allowed [json-pointer:{at}/fields]")
                for i, f in enumerate(fields):
                    errors += _text_object(f, f"{at}/fields/{i}", limit=2000)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            errors.append(f"must provide a non-empty array [json-pointer:{at}/elements]")
        else:
            if len(elements) > 10:
                errors.append(f"no more than 10 items allowed [json-pointer:{at}/elements]")
            for i, e in enumerate(elements):
                if not (isinstance(e, dict) and e.get("type") == "image"):
                    errors += _text_object(e, f"{at}/elements/{i}", limit=3000)
    elif kind not in ("divider", "actions", "image", "rich_text", "input", "file", "video", "markdown"):
        errors.append(f"unsupported type: {kind} [json-pointer:{at}/type]")
    return errors


def validate_message(payload: dict[str, Any]) -> tuple[str, list[str]] | None:
    """Slack's error code and messages for an invalid ``chat.postMessage`` payload, or None when valid."""
    text, blocks = payload.get("text"), payload.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return "invalid_blocks_format", ["blocks must be a JSON array"]
    if not text and not blocks and not payload.get("attachments"):
        return "no_text", []
    if text is not None and not isinstance(text, str):
        return "invalid_arguments", ["text must be a string [json-pointer:/text]"]
    if isinstance(text, str) and len(text) > MESSAGE_TEXT_MAX:
        return "msg_too_long", []
    if blocks is not None:
        if not isinstance(blocks, list):
            return "invalid_blocks_format", ["blocks must be an array [json-pointer:/blocks]"]
        errors = ["no more than 50 items allowed [json-pointer:/blocks]"] if len(blocks) > 50 else []
        for i, block in enumerate(blocks):
            errors += _block(block, f"/blocks/{i}")
        if errors:
            return "invalid_blocks", errors
    metadata = payload.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    ):
        return "invalid_metadata_format", []
    return None
