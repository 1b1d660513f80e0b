import json

import pytest

from proxy.sse import SSEDecoder, SSEEvent, encode_event


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


STREAM = 'data: {"a": 1}\n\ndata: second\n\nevent: done\ndata: [DONE]\n\n'
EXPECTED = [SSEEvent('{"a": 1}'), SSEEvent("second"), SSEEvent("[DONE]", "done")]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_ends(newline: str):
    raw = STREAM.replace("\n", newline).encode()
    assert decode(raw) == EXPECTED
    assert decode(*bytewise(raw)) == EXPECTED


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_events_are_delivered_as_soon_as_their_blank_line_arrives(newline: str):
    decoder = SSEDecoder()
    assert decoder.feed(f"data: one{newline}".encode()) == []
    events = decoder.feed(f"{newline}data: two{newline}".encode())
    assert events == [SSEEvent("one")]
    assert decoder.close() == [SSEEvent("two")]


def test_crlf_split_across_feeds_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\ndata: two\r\n\r\n") == [SSEEvent("one"), SSEEvent("two")]
    assert decoder.close() == []


def test_cr_then_crlf_split_everywhere():
    raw = b"data: a\r\r\ndata: b\r\n\rdata: c\r\r"
    expected = [SSEEvent("a"), SSEEvent("b"), SSEEvent("c")]
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == expected, cut


def test_mixed_line_ends():
    assert decode(b"data: a\ndata: b\r\n\rdata: c\r\n\n") == [SSEEvent("a\nb"), SSEEvent("c")]


def test_multibyte_utf8_split_across_feeds():
    text = 'data: {"name": "Jané Röe ✓ 😀 日本"}\n\n'
    raw = text.encode()
    expected = [SSEEvent('{"name": "Jané Röe ✓ 😀 日本"}')]
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == expected, cut
    assert decode(*bytewise(raw)) == expected


def test_multi_line_data_is_joined_with_newlines():
    raw = b"data: first\ndata:second\ndata:  third\ndata\ndata: \n\n"
    # one leading space is removed from a value, further spaces are kept; "data" alone is an empty line
    assert decode(raw) == [SSEEvent("first\nsecond\n third\n\n")]


def test_comments_and_unknown_fields_are_ignored():
    raw = b": keep-alive\n\n:another comment\ndata: x\nfoo: bar\n: mid\n\n: trailing\n"
    assert decode(raw) == [SSEEvent("x")]


def test_comment_only_stream_yields_nothing():
    assert decode(b": ping\n\n: ping\n\n") == []
    assert decode(b"") == []


def test_event_id_and_retry_fields():
    raw = b"event: message\nid: 7\nretry: 1000\ndata: hi\n\nevent: error\ndata: oops\n\ndata: plain\n\n"
    assert decode(raw) == [
        SSEEvent("hi", "message", "7", "1000"),
        SSEEvent("oops", "error", "7", None),  # the last event id persists, the event type does not
        SSEEvent("plain", None, "7", None),
    ]


def test_value_may_contain_colons():
    assert decode(b'data: {"url": "https://example.com:8443/x"}\n\n') == [
        SSEEvent('{"url": "https://example.com:8443/x"}')
    ]


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n", b"\r"])
def test_final_event_without_blank_line_is_delivered_by_close(ending: bytes):
    decoder = SSEDecoder()
    assert decoder.feed(b"data: one\n\nevent: last\ndata: two" + ending) == [SSEEvent("one")]
    assert decoder.close() == [SSEEvent("two", "last")]
    assert decoder.close() == []


def test_close_completes_a_split_multibyte_character_with_replacement():
    decoder = SSEDecoder()
    assert decoder.feed("data: é".encode()[:-1]) == []
    assert decoder.close() == [SSEEvent("\ufffd")]


@pytest.mark.parametrize(
    ("data", "event"),
    [
        ('{"choices": [{"delta": {"content": "Hi Jane Roe"}}]}', None),
        ("[DONE]", None),
        ("line one\nline two\n\nline four", "message"),
        ("", None),
        (" leading space", "error"),
        (json.dumps({"text": "a\nb \u2028 ✓ 😀"}, ensure_ascii=False), None),
    ],
)
def test_encode_event_round_trip(data: str, event: str | None):
    encoded = encode_event(data, event)
    assert encoded.endswith(b"\n\n")
    assert decode(encoded) == [SSEEvent(data, event)]
    # several encoded events concatenated and split anywhere decode the same
    stream = encoded + encode_event("[DONE]")
    for cut in range(len(stream) + 1):
        assert decode(stream[:cut], stream[cut:]) == [SSEEvent(data, event), SSEEvent("[DONE]")], cut


def test_encode_event_format():
    assert encode_event('{"a": 1}') == b'data: {"a": 1}\n\n'
    assert encode_event("x\ny", "done") == b"event: done\ndata: x\ndata: y\n\n"


def test_an_event_holding_a_lone_surrogate_is_still_written():
    """Restored text may hold a caller's value with a lone surrogate (sent as a JSON escape)."""
    assert encode_event("Jane\ud800Roe\nsecond", "delta") == b"event: delta\ndata: Jane?Roe\ndata: second\n\n"
