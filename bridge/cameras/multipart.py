"""Sans-I/O parser for ``multipart/x-mixed-replace`` streams (MJPEG, audio, event data).

Bytes go in with :meth:`MultipartParser.feed`, whole parts come out; no sockets, no clocks.
It tolerates what 2007-2011 cameras actually send:

- boundary declared with or without the leading ``--``, quoted, or with spaces and trailing
  dashes (``--video boundary--``), and delimiter lines written either way;
- the boundary unknown in advance (sniffed from the first ``--`` line);
- junk before the first part, extra blank lines between parts, a missing CRLF after a body,
  LF-only lines, any header case, headers split across reads;
- no Content-Length: a JPEG body ends at its EOI marker (found by walking the JPEG segments, so
  an FFD9 inside an embedded thumbnail does not end it early); other bodies end at the next
  delimiter line. Finding the EOI emits a frame without waiting for the next boundary, which
  would cost a frame of latency.

A part larger than ``max_part_size``, or that many bytes with no part at all, raises
:class:`~bridge.errors.MessageTooLarge`: a broken camera never grows memory without bound.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bridge.cameras.fields import parse_int
from bridge.codecs.jpeg import SOI, jpeg_end
from bridge.errors import MessageTooLarge, ProtocolError

DEFAULT_MAX_PART_SIZE = 8 * 1024 * 1024
MAX_HEADER_BLOCK = 16 * 1024
_MAX_LENGTH = 1 << 62  # past any cap, below any overflow


@dataclass(frozen=True, slots=True)
class Part:
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def boundary_from_content_type(content_type: str) -> str | None:
    """The ``boundary`` parameter of a Content-Type header, unquoted; None when absent.

    Cameras put spaces inside it (``boundary=--video boundary--``), so the value runs to the
    next ``;`` rather than the next space.
    """
    for param in content_type.split(";")[1:]:
        key, sep, value = param.partition("=")
        if sep and key.strip().lower() == "boundary":
            value = value.strip().strip('"').strip()
            return value or None
    return None


class _State(enum.Enum):
    PREAMBLE = enum.auto()
    HEADERS = enum.auto()
    BODY = enum.auto()


class MultipartParser:
    """Feed stream bytes, get complete parts.

    ``boundary`` is the Content-Type's boundary parameter as declared (any of the forms the
    module docstring lists), or None to sniff it from the stream.
    """

    def __init__(
        self, boundary: str | None = None, *, max_part_size: int = DEFAULT_MAX_PART_SIZE
    ) -> None:
        self._core: bytes | None = None
        if boundary is not None:
            self._core = self._normalize(boundary.encode("latin-1"))
        self._max_part_size = max_part_size
        self._buf = bytearray()
        self._state = _State.PREAMBLE
        self._headers: dict[str, str] = {}
        self._scan_from = 0  # where the next search may resume, so re-feeds stay O(n)
        self._content_length: int | None = None
        self._skipped = 0  # bytes discarded looking for a delimiter since the last part

    @staticmethod
    def _normalize(boundary: bytes) -> bytes:
        core = boundary.strip().strip(b"-").strip()
        if not core:
            raise ProtocolError("multipart boundary is empty")
        return core

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Part]:
        """Add received bytes; returns the parts they completed (possibly none)."""
        self._buf += data
        parts: list[Part] = []
        while True:
            part = self._step()
            if part is None:
                break
            parts.append(part)
        if len(self._buf) > self._max_part_size + MAX_HEADER_BLOCK:
            what = "part" if self._state is _State.BODY else "stream data without a part"
            raise MessageTooLarge(f"multipart {what} exceeds {self._max_part_size} bytes")
        return parts

    # -- states --------------------------------------------------------------------------

    def _step(self) -> Part | None:
        """Advance one state; a Part when one completed, None when more bytes are needed."""
        while True:
            if self._state is _State.PREAMBLE:
                if not self._consume_delimiter():
                    return None
            elif self._state is _State.HEADERS:
                if not self._consume_headers():
                    return None
            else:
                return self._consume_body()

    def _delimiter_line(self, start: int) -> tuple[int, int] | None:
        """(delimiter start, line end incl. newline) of the next delimiter at/after ``start``.

        The delimiter starts at the run of dashes before the boundary, which is normally the
        start of a line but follows the body directly when a camera omits the CRLF. Returns
        None when no complete delimiter line is buffered yet.
        """
        buf = self._buf
        if self._core is None:
            self._core = self._sniff_boundary(start)
            if self._core is None:
                return None
        core = self._core
        pos = start
        while True:
            hit = buf.find(core, pos)
            if hit < 0:
                return None
            line_end = buf.find(b"\n", hit + len(core))
            if line_end < 0:
                return None
            dashes = hit
            while dashes > 0 and buf[dashes - 1] in b"- ":
                dashes -= 1
            leading = bytes(buf[dashes:hit])
            trailing = bytes(buf[hit + len(core) : line_end]).strip().strip(b"-")
            if leading.count(b"-") >= 2 and not trailing:
                return dashes, line_end + 1
            pos = hit + len(core)

    def _sniff_boundary(self, start: int) -> bytes | None:
        buf = self._buf
        pos = start
        while True:
            line_end = buf.find(b"\n", pos)
            if line_end < 0:
                return None
            line = bytes(buf[pos:line_end]).strip()
            if line.startswith(b"--") and line.strip(b"-").strip():
                return self._normalize(line)
            pos = line_end + 1

    def _consume_delimiter(self) -> bool:
        found = self._delimiter_line(self._scan_from)
        if found is None:
            # Keep a tail long enough to hold a delimiter split across reads.
            keep = 256 + len(self._core or b"")
            if len(self._buf) > keep:
                drop = len(self._buf) - keep
                nl = self._buf.rfind(b"\n", 0, len(self._buf) - keep)
                drop = nl + 1 if nl >= 0 else drop
                del self._buf[:drop]
                self._skipped += drop
                if self._skipped > self._max_part_size:
                    raise MessageTooLarge(
                        f"no multipart delimiter in {self._skipped} bytes of stream"
                    )
            self._scan_from = 0
            return False
        _, line_end = found
        del self._buf[:line_end]
        self._scan_from = 0
        self._headers = {}
        self._state = _State.HEADERS
        return True

    def _consume_headers(self) -> bool:
        buf = self._buf
        while True:
            if buf.startswith(SOI):
                # A camera that forgot the blank line after its headers.
                self._enter_body()
                return True
            line_end = buf.find(b"\n")
            if line_end < 0:
                if len(buf) > MAX_HEADER_BLOCK:
                    raise MessageTooLarge("multipart part headers exceed 16 KiB")
                return False
            line = bytes(buf[:line_end]).rstrip(b"\r")
            if not line.strip():
                del buf[: line_end + 1]
                if self._headers:
                    self._enter_body()
                    return True
                continue  # extra blank lines before the headers
            name, sep, value = line.partition(b":")
            if not sep or not name.strip() or b" " in name.strip():
                if self._core and line.strip().strip(b"-").strip() == self._core:
                    del buf[: line_end + 1]  # an empty part: start over on its delimiter
                    self._headers = {}
                    continue
                # Not a header: the body started without the blank line.
                self._enter_body()
                return True
            key = name.strip().decode("latin-1").lower()
            self._headers[key] = value.strip().decode("latin-1")
            del buf[: line_end + 1]

    def _enter_body(self) -> None:
        self._state = _State.BODY
        self._scan_from = 0
        self._content_length = None
        # A length that is no plain number (str.isdigit() also takes "\xb2", which int()
        # refuses) is ignored: the body then ends at its EOI or the next delimiter.
        length = parse_int(self._headers.get("content-length"), 0, _MAX_LENGTH)
        if length is not None:
            if length > self._max_part_size:
                raise MessageTooLarge(
                    f"multipart part of {length} bytes exceeds {self._max_part_size}"
                )
            self._content_length = length

    def _consume_body(self) -> Part | None:
        buf = self._buf
        end = self._body_end()
        if end is None:
            if len(buf) > self._max_part_size:
                raise MessageTooLarge(f"multipart part exceeds {self._max_part_size} bytes")
            return None
        body = bytes(buf[:end])
        del buf[:end]
        self._skipped = 0
        self._state = _State.PREAMBLE
        self._scan_from = 0
        return Part(self._headers, body)

    def _body_end(self) -> int | None:
        buf = self._buf
        if self._content_length is not None:
            return self._content_length if len(buf) >= self._content_length else None
        if buf.startswith(SOI):
            end = jpeg_end(buf, 0, len(buf))
            if end >= 0:
                return end
        found = self._delimiter_line(self._scan_from)
        if found is None:
            # Resume the next search near the end, leaving room for a split delimiter.
            self._scan_from = max(0, len(buf) - 256 - len(self._core or b""))
            return None
        line_start, _ = found
        # The CRLF before the delimiter belongs to the delimiter, not the body.
        end = line_start
        if end > 0 and buf[end - 1] == 0x0A:
            end -= 1
            if end > 0 and buf[end - 1] == 0x0D:
                end -= 1
        return end
