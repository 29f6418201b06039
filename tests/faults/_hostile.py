"""Hostile field values shared by the fault tests: each must be refused alone, with its reason."""

from __future__ import annotations

from typing import Any

#: name -> (fields that make a usage record bad, words its reason must hold)
HOSTILE_USAGE: dict[str, tuple[dict[str, Any], str]] = {
    "NUL in flow": ({"flow": "support\x00gpt"}, "flow contains NUL"),
    "NUL in id": ({"id": "req\x00-1"}, "id contains NUL"),
    "NUL in model": ({"model": "gpt-4o\x00"}, "model contains NUL"),
    "NUL in prompt_id": ({"prompt_id": "support/answer\x00"}, "prompt_id contains NUL"),
    "NUL in a tag key": ({"tags": {"te\x00am": "support"}}, "a tag key contains NUL"),
    "NUL in a tag value": ({"tags": {"team": "sup\x00port"}}, "tags.team contains NUL"),
    "NUL in trace_id": ({"trace_id": "t\x00"}, "trace_id contains NUL"),
    "NUL in session_id": ({"session_id": "s\x00"}, "session_id contains NUL"),
    "NUL in provider": ({"provider": "open\x00ai"}, "provider contains NUL"),
    "id over 256 characters": ({"id": "r" * 257}, "id is longer than 256"),
    "flow over 128 characters": ({"flow": "f" * 129}, "flow is longer than 128"),
    "ESC sequence in flow": ({"flow": "support\x1b[31mRED"}, "flow contains ESC"),
    "CR/LF in flow": ({"flow": "support\r\nfake line"}, "flow contains CR"),
    "right-to-left override in flow": ({"flow": "invoice\u202egpj.exe"}, "right-to-left override"),
    "flow of spaces only": ({"flow": "    "}, "flow is blank"),
    "ESC in a tag key": ({"tags": {"\x1b[2Jteam": "x"}}, "a tag key contains ESC"),
    "latency past 64 bits": ({"latency_ms": 10**30}, "latency_ms is larger than"),
    "latency as a huge float": ({"latency_ms": 1e300}, "latency_ms is larger than"),
    "requests past 64 bits": ({"requests": 10**19}, "requests is larger than"),
    "tool_calls past 64 bits": ({"tool_calls": 2**70}, "tool_calls is larger than"),
    "a number of 5,000 digits": ({"latency_ms": 10**4999}, "latency_ms is larger than"),
}
