"""Attacks on the memo of tag objects already checked (domain/usage.py ``_TAGS_SEEN``): a hit
must give exactly what checking the object again would give, whatever the caller does with
its objects, and whatever look-alikes it sends."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from finops.domain.usage import RecordError, parse_usage
from tests.conftest import usage


def _tags(tags: Any) -> dict[str, str]:
    return dict(parse_usage(usage(1, tags=tags)).tags)


def _fresh() -> str:
    return uuid.uuid4().hex  # a tag object no other test sent: not in the memo yet


def test_a_caller_changing_its_tag_object_afterwards_changes_no_later_record() -> None:
    """An in-process caller (ingest_objects, a mapper) may reuse its dicts; the memo must not
    keep the caller's object, or a later record with the original tags gets the changed ones,
    never checked."""
    team = _fresh()
    sent = {"team": team, "env": "prod"}
    first = parse_usage(usage(1, tags=sent))
    sent["env"] = "a\x00b"  # a NUL: refused if checked
    sent["extra"] = "x" * 300  # too long: refused if checked
    later = parse_usage(usage(2, tags={"team": team, "env": "prod"}))
    assert dict(later.tags) == {"team": team, "env": "prod"}
    assert dict(first.tags) == {"team": team, "env": "prod"}  # what was checked is what is stored
    with pytest.raises(RecordError):
        _tags(dict(sent))


def test_look_alikes_get_what_checking_them_gives() -> None:
    team = _fresh()
    assert _tags({"team": team, "n": "1"}) == {"team": team, "n": "1"}
    assert _tags({"team": team, "n": 1}) == {"team": team, "n": "1"}
    assert _tags({"team": team, "n": True}) == {"team": team, "n": "true"}
    assert _tags({"team": team, "n": 1.0}) == {"team": team, "n": "1.0"}
    assert _tags({"n": "1", "team": team}) == {"team": team, "n": "1"}  # other order

    class Text(str):
        pass

    class Tags(dict):  # type: ignore[type-arg]
        pass

    got = _tags({"team": Text(team), "n": "1"})
    assert got == {"team": team, "n": "1"} and all(type(v) is str for v in got.values())
    assert _tags(Tags({"team": team, "n": "1"})) == {"team": team, "n": "1"}
    with pytest.raises(RecordError):
        _tags(Tags({"team": team, "n": "a\x00"}))


def test_threads_parsing_at_once_past_the_memos_bound_all_get_their_own_tags() -> None:
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(3000):
                tags = {"team": f"{seed}-{i % 5000}", "env": "prod"}
                assert _tags(tags) == tags
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_memo_holds_little_memory_whatever_the_tags() -> None:
    """A sender may send thousands of distinct tag objects of 64 keys of 128 characters and
    values of 256 (all valid): the memo must not keep megabytes of them after the records are gone."""
    import tracemalloc

    base = _fresh()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for n in range(1000):
            tags = {f"{base}{n}{k:03d}".ljust(128, "k"): f"{n}-{k}".ljust(256, "v") for k in range(64)}
            _tags(tags)
            del tags
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 4_000_000, f"{(after - before) / 1e6:.1f} MB kept"
