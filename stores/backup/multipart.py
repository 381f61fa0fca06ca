"""A streaming reader of ``multipart/mixed`` bodies, part by part into files.

InfluxDB answers ``GET /api/v2/backup/metadata`` with one multipart body holding its whole
key-value store (``kv``), its SQLite store (``sql``) and the bucket manifest (``buckets``).
The stores can be large, so the body is never held in memory: each part's bytes go straight
to the file its name asks for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from stores.backup.errors import BackupError

__all__ = ["boundary_of", "split_parts"]

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_NAME = re.compile(r'name="([^"]*)"')
_CRLF = b"\r\n"

Sink = Callable[[str], BinaryIO | None]
"""Where a part goes, by its name: an open file, or None to skip the part."""


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a ``multipart/*`` Content-Type."""
    found = _BOUNDARY.search(content_type)
    if not content_type.startswith("multipart/") or found is None:
        raise BackupError(f"expected a multipart answer, got Content-Type {content_type!r}")
    return found.group(1)


def split_parts(chunks: Iterable[bytes], boundary: str, sink: Sink) -> list[str]:
    """Copy each part of the body in ``chunks`` to ``sink(its name)``; the names, in order.

    The sink's files are not closed here: the caller owns them.
    """
    reader = _Reader(iter(chunks))
    delimiter = b"--" + boundary.encode("ascii")
    reader.copy_until(delimiter, None)  # the preamble, empty in practice
    names: list[str] = []
    while True:
        after = reader.take(2)
        if after == b"--":  # the closing delimiter
            return names
        if after != _CRLF:
            raise BackupError("malformed multipart answer: no line break after a boundary")
        name = _part_name(reader.headers())
        names.append(name)
        reader.copy_until(_CRLF + delimiter, sink(name))


def _part_name(headers: dict[str, str]) -> str:
    found = _NAME.search(headers.get("content-disposition", ""))
    return found.group(1) if found else ""


class _Reader:
    """The body's bytes with just enough look-ahead to find a delimiter across chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def _more(self) -> None:
        for chunk in self._chunks:
            if chunk:
                self._buffer += chunk
                return
        raise BackupError("multipart answer ended early (connection lost?)")

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes."""
        while len(self._buffer) < count:
            self._more()
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    def headers(self) -> dict[str, str]:
        """A part's header lines, up to the blank line that ends them (lower-case names)."""
        while not self._buffer.startswith(_CRLF) and b"\r\n\r\n" not in self._buffer:
            self._more()
        if self._buffer.startswith(_CRLF):  # a part without headers
            del self._buffer[:2]
            return {}
        end = self._buffer.index(b"\r\n\r\n")
        block = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        lines = (line.partition(":") for line in block.split("\r\n"))
        return {name.strip().lower(): value.strip() for name, _, value in lines}

    def copy_until(self, marker: bytes, out: BinaryIO | None) -> None:
        """Copy the bytes before ``marker`` to ``out`` (None: drop them); consume the marker.

        All but the last ``len(marker) - 1`` bytes can be written at once: the marker cannot
        start earlier than that without being found already.
        """
        keep = len(marker) - 1
        while (at := self._buffer.find(marker)) < 0:
            if len(self._buffer) > keep:
                if out is not None:
                    out.write(self._buffer[:-keep])
                del self._buffer[:-keep]
            self._more()
        if out is not None:
            out.write(self._buffer[:at])
        del self._buffer[: at + len(marker)]
