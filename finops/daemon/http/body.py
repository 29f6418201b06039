"""Request bodies read by finops itself, within a size limit, whatever the headers claim.

Content-Length is checked before reading (413 at once when it says too much); the bytes are
counted as they arrive, so a chunked body or one longer than its Content-Length cannot pass the
limit; a gzip body is limited after decompression too (no zip bombs).
"""

from __future__ import annotations

import zlib

from starlette.requests import Request

__all__ = ["BodyError", "read_body"]


class BodyError(Exception):
    """A body finops will not read: ``status`` is the HTTP answer, the message says what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _too_large(limit: int) -> BodyError:
    return BodyError(
        413,
        f"request body larger than {limit:,} bytes (FINOPS_MAX_BODY_BYTES): send smaller batches",
    )


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BodyError(400, "Content-Length is not a number") from None
        if size > limit:
            raise _too_large(limit)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BodyError(415, f"Content-Encoding {encoding!r} is not supported: send identity or gzip")
    gzip = encoding == "gzip"
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
    parts: list[bytes] = []
    received = produced = 0

    def inflate_chunk(data: bytes) -> None:
        """Decompress ``data``; a new gzip member may start where one ends (as gzip(1) writes them)."""
        nonlocal inflate, produced
        while data:
            assert inflate is not None
            try:
                out = inflate.decompress(data, limit + 1 - produced)
            except zlib.error as exc:
                raise BodyError(400, f"body is not valid gzip: {exc}") from None
            produced += len(out)
            if produced > limit or inflate.unconsumed_tail:
                raise _too_large(limit)
            parts.append(out)
            data = inflate.unused_data if inflate.eof else b""
            if data:
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)

    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        if gzip:
            inflate_chunk(chunk)
        else:
            parts.append(chunk)
    if inflate is not None and received and not inflate.eof:
        raise BodyError(400, "body is not valid gzip: it ends too early")
    return b"".join(parts)
