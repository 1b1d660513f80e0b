"""Server-sent events: an incremental decoder for upstream bytes and an encoder for the client.

Hand-written (about 60 lines) because the maintained SSE libraries are tied to one HTTP client
(httpx-sse, aiohttp-sse-client) and none exposes a transport-free incremental decoder. It follows
the WHATWG rules: CR, LF or CRLF line ends, multi-line data, comments ignored.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None
    retry: str | None = None


class SSEDecoder:
    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += self._text.decode(chunk)
        return self._drain_lines(final=False)

    def close(self) -> list[SSEEvent]:
        """Events completed by the end of the stream (a last event without its blank line)."""
        self._buffer += self._text.decode(b"", final=True)
        events = self._drain_lines(final=True)
        if self._buffer:
            events += self._line(self._buffer)
            self._buffer = ""
        events += self._line("")
        return events

    def _drain_lines(self, final: bool) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        while True:
            cut = min((i for i in (self._buffer.find("\n"), self._buffer.find("\r")) if i != -1), default=-1)
            if cut == -1:
                return events
            if self._buffer[cut] == "\r" and cut + 1 == len(self._buffer) and not final:
                return events  # a CR at the end may be the first half of CRLF
            line = self._buffer[:cut]
            step = 2 if self._buffer.startswith("\r\n", cut) else 1
            self._buffer = self._buffer[cut + step :]
            events += self._line(line)

    def _line(self, line: str) -> list[SSEEvent]:
        if line == "":
            if not self._data and self._event is None:
                return []
            event = SSEEvent("\n".join(self._data), self._event, self._id, self._retry)
            self._data, self._event, self._retry = [], None, None
            return [event]
        if line.startswith(":"):
            return []
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry":
            self._retry = value
        return []


def encode_event(data: str, event: str | None = None) -> bytes:
    lines = [f"event: {event}"] if event else []
    lines += [f"data: {line}" for line in data.split("\n")]
    # "replace": restored text may hold a caller's lone surrogate (from a JSON escape), which UTF-8 cannot
    return ("\n".join(lines) + "\n\n").encode("utf-8", "replace")
