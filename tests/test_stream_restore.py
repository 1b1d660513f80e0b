import itertools
import json
import random
from collections.abc import Iterable
from typing import Any

import pytest

from redaction import ChatStreamRestorer, PlaceholderMap, StreamRestorer, restore_text

AWKWARD = 'Jo "JJ" O\'Neil \\ Ré\n✓\t\u2028end'  # quotes, backslash, newline, non-ASCII, tab, U+2028


def make_map() -> PlaceholderMap:
    mapping = PlaceholderMap()
    mapping.placeholder_for("Jane Roe", "PERSON")  # <PERSON_1>
    mapping.placeholder_for("jane.roe@example.com", "EMAIL_ADDRESS")  # <EMAIL_ADDRESS_1>
    mapping.placeholder_for("4111 1111 1111 1111", "CREDIT_CARD")  # <CREDIT_CARD_1>
    mapping.placeholder_for(AWKWARD, "PERSON")  # <PERSON_2>
    for number in range(3, 11):  # so that <PERSON_1 is also the beginning of <PERSON_10>
        mapping.placeholder_for(f"Person Number{number}", "PERSON")
    return mapping


MAPPING = make_map()
LONGEST = max(len(p) for p in MAPPING.to_dict())


# --- restore_text


def test_restore_text_replaces_known_placeholders_only():
    text = "Hi <PERSON_1> (<EMAIL_ADDRESS_1>), not <PERSON_99>, <person_1>, <PERSON_1 or <LOCATION_1>."
    assert restore_text(text, MAPPING) == (
        "Hi Jane Roe (jane.roe@example.com), not <PERSON_99>, <person_1>, <PERSON_1 or <LOCATION_1>."
    )
    assert restore_text("<PERSON_10><PERSON_1>", MAPPING) == "Person Number10Jane Roe"


def test_restore_text_without_mapping_or_placeholders_is_identity():
    assert restore_text("<PERSON_1>", PlaceholderMap()) == "<PERSON_1>"
    assert restore_text("no placeholders > here", MAPPING) == "no placeholders > here"


def test_restore_text_does_not_restore_recursively():
    mapping = PlaceholderMap()
    mapping.placeholder_for("<EMAIL_ADDRESS_1>", "SENSITIVE_TERM")  # a value that looks like a placeholder
    mapping.placeholder_for("jane.roe@example.com", "EMAIL_ADDRESS")
    assert restore_text("<SENSITIVE_TERM_1>", mapping) == "<EMAIL_ADDRESS_1>"


def test_restore_text_json_escape_keeps_embedded_json_valid():
    document = {"to": "<PERSON_2>", "list": ["<PERSON_1>", "x <PERSON_2> y"], "unknown": "<PERSON_77>"}
    serialised = json.dumps(document)
    restored = restore_text(serialised, MAPPING, json_escape=True)
    assert json.loads(restored) == {
        "to": AWKWARD,
        "list": ["Jane Roe", f"x {AWKWARD} y"],
        "unknown": "<PERSON_77>",
    }
    # without escaping the raw value breaks the JSON string
    with pytest.raises(json.JSONDecodeError):
        json.loads(restore_text(serialised, MAPPING))


# --- StreamRestorer

STREAM_TEXTS = [
    "Dear <PERSON_1>, we wrote to <EMAIL_ADDRESS_1> about card <CREDIT_CARD_1>.",
    "<PERSON_1><PERSON_10><PERSON_2>",
    "a < b and a <= c, <PERSON_3> <PERSON_ <PERSON_99> <<PERSON_1>> <EMAIL_ADDRESS_1",
    "ends with a prefix <PERS",
    "<",
]


def run_stream(restorer: StreamRestorer, pieces: Iterable[str]) -> str:
    """Feed ``pieces`` and check the hold-back invariants after each one."""
    out = []
    received = ""
    for piece in pieces:
        out.append(restorer.feed(piece))
        received += piece
        held = restorer._held
        assert len(held) < LONGEST
        assert received.endswith(held)
        if held:
            assert restorer.holding
            assert MAPPING.is_placeholder_prefix(held), (received, held)
        else:
            assert not restorer.holding
    out.append(restorer.flush())
    assert not restorer.holding
    return "".join(out)


def split_at(text: str, offsets: list[int]) -> list[str]:
    bounds = [0, *offsets, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("text", STREAM_TEXTS)
@pytest.mark.parametrize("json_escape", [False, True])
def test_stream_split_in_two_at_every_offset(text: str, json_escape: bool):
    expected = restore_text(text, MAPPING, json_escape=json_escape)
    for offset in range(len(text) + 1):
        restorer = StreamRestorer(MAPPING, json_escape=json_escape)
        assert run_stream(restorer, split_at(text, [offset])) == expected, offset


@pytest.mark.parametrize("text", STREAM_TEXTS)
def test_stream_one_character_per_piece(text: str):
    assert run_stream(StreamRestorer(MAPPING), list(text)) == restore_text(text, MAPPING)


@pytest.mark.parametrize("text", STREAM_TEXTS)
def test_stream_random_piece_sizes(text: str):
    rng = random.Random(f"stream-{text}")
    expected = restore_text(text, MAPPING)
    for _ in range(200):
        offsets = sorted(rng.sample(range(len(text) + 1), rng.randint(0, min(8, len(text) + 1))))
        assert run_stream(StreamRestorer(MAPPING), split_at(text, offsets)) == expected, offsets


def test_stream_random_text_with_empty_pieces():
    rng = random.Random(1234)
    alphabet = ["<", ">", "_", "1", "0", "PERSON", "<PERSON_1>", "<PERSON_10>", "<PERSON_2>", "<EMAIL_", " ", "x"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        offsets = sorted(rng.choices(range(len(text) + 1), k=rng.randint(0, 6)))  # repeats = empty pieces
        assert run_stream(StreamRestorer(MAPPING), split_at(text, offsets)) == restore_text(text, MAPPING), text


def test_stream_releases_non_placeholder_text_immediately():
    restorer = StreamRestorer(MAPPING)
    assert restorer.feed("a <") == "a "
    assert restorer.holding
    assert restorer.feed(" b") == "< b"
    assert not restorer.holding
    assert restorer.feed("<PERSON_") == ""
    assert restorer.feed("1> and <") == "Jane Roe and "
    assert restorer.feed("PERSON_1") == ""
    assert restorer.feed("0>!") == "Person Number10!"
    assert restorer.feed("x <LOC") == "x <LOC"  # no LOCATION placeholder in this exchange
    assert restorer.flush() == ""


def test_stream_flush_returns_a_held_prefix_verbatim():
    restorer = StreamRestorer(MAPPING, json_escape=True)
    assert restorer.feed("the end <EMAIL_ADD") == "the end "
    assert restorer.flush() == "<EMAIL_ADD"
    assert restorer.flush() == ""


def test_stream_json_escape_restores_escaped_values():
    restorer = StreamRestorer(MAPPING, json_escape=True)
    pieces = ['{"to": "<PER', 'SON_2>", "n": "<PERSON_1>"}']
    assert json.loads("".join(restorer.feed(p) for p in pieces) + restorer.flush()) == {
        "to": AWKWARD,
        "n": "Jane Roe",
    }


# --- ChatStreamRestorer


def chunk(delta: dict[str, Any] | None = None, finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp_1",
        "choices": [{"index": index, "delta": delta if delta is not None else {}, "finish_reason": finish_reason}],
    }


def contents(chunks: Iterable[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for c in chunks
        for choice in c.get("choices", [])
        if choice["index"] == index
    )


def arguments(chunks: Iterable[dict[str, Any]], tool_index: int) -> str:
    return "".join(
        call.get("function", {}).get("arguments") or ""
        for c in chunks
        for choice in c.get("choices", [])
        for call in choice["delta"].get("tool_calls") or []
        if call["index"] == tool_index
    )


def test_chat_content_one_character_per_chunk():
    sanitised = "Hello <PERSON_1>, your card <CREDIT_CARD_1> and <PERSON_10>; a < b."
    restorer = ChatStreamRestorer(MAPPING)
    out = [restorer.restore_chunk(chunk({"role": "assistant", "content": ""}))]
    out += [restorer.restore_chunk(chunk({"content": char})) for char in sanitised]
    out.append(restorer.restore_chunk(chunk({}, "stop")))
    assert restorer.final_chunk() is None
    assert contents(out) == restore_text(sanitised, MAPPING)
    assert out[0]["choices"][0]["delta"]["role"] == "assistant"
    for c in out:
        assert c["id"] == "chatcmpl-123" and c["model"] == "gpt-4o-mini"
    # nothing placeholder-like was emitted in pieces
    assert all("<PERS" not in (c["choices"][0]["delta"].get("content") or "") for c in out)


def test_chat_held_text_is_released_in_the_finish_reason_chunk():
    restorer = ChatStreamRestorer(MAPPING)
    first = restorer.restore_chunk(chunk({"content": "Bye <PERS"}))
    assert first["choices"][0]["delta"]["content"] == "Bye "
    last = restorer.restore_chunk(chunk({}, "stop"))
    assert last["choices"][0]["delta"] == {"content": "<PERS"}
    assert last["choices"][0]["finish_reason"] == "stop"
    assert restorer.final_chunk() is None


def test_chat_finish_chunk_with_content_is_restored_then_released():
    restorer = ChatStreamRestorer(MAPPING)
    restorer.restore_chunk(chunk({"content": "Bye <PERSON_"}))
    last = restorer.restore_chunk(chunk({"content": "1> <EMAIL"}, "stop"))
    assert last["choices"][0]["delta"]["content"] == "Jane Roe <EMAIL"


def test_chat_final_chunk_returns_leftovers():
    restorer = ChatStreamRestorer(MAPPING)
    restorer.restore_chunk(chunk({"role": "assistant", "content": "Regards, "}))
    assert restorer.restore_chunk(chunk({"content": "<PERS"}))["choices"][0]["delta"]["content"] == ""
    final = restorer.final_chunk()
    assert final is not None
    assert final["choices"] == [{"index": 0, "delta": {"content": "<PERS"}, "finish_reason": None}]
    assert final["id"] == "chatcmpl-123" and final["object"] == "chat.completion.chunk"
    assert restorer.final_chunk() is None


def test_chat_final_chunk_is_none_when_nothing_is_held():
    restorer = ChatStreamRestorer(MAPPING)
    assert restorer.final_chunk() is None
    restorer.restore_chunk(chunk({"content": "Hi <PERSON_1>"}))
    assert restorer.final_chunk() is None


def test_chat_tool_call_arguments_split_across_chunks():
    originals = [
        {"to": "jane.roe@example.com", "name": AWKWARD, "card": "4111 1111 1111 1111"},
        {"who": "Jane Roe", "also": ["<PERSON_99>", "Jane Roe"]},
    ]
    sanitised = [
        '{"to": "<EMAIL_ADDRESS_1>", "name": "<PERSON_2>", "card": "<CREDIT_CARD_1>"}',
        '{"who": "<PERSON_1>", "also": ["<PERSON_99>", "<PERSON_1>"]}',
    ]
    restorer = ChatStreamRestorer(MAPPING)
    out = [
        restorer.restore_chunk(
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"index": i, "id": f"call_{i}", "type": "function", "function": {"name": "f", "arguments": ""}}
                        for i in (0, 1)
                    ],
                }
            )
        )
    ]
    rng = random.Random(7)
    positions = [0, 0]
    while positions != [len(sanitised[0]), len(sanitised[1])]:
        # interleave the two calls, several chunks carrying both, pieces of 1-4 characters
        calls = []
        for i in rng.sample([0, 1], rng.randint(1, 2)):
            step = rng.randint(1, 4)
            piece = sanitised[i][positions[i] : positions[i] + step]
            positions[i] += len(piece)
            if piece:
                calls.append({"index": i, "function": {"arguments": piece}})
        if calls:
            out.append(restorer.restore_chunk(chunk({"tool_calls": calls})))
    out.append(restorer.restore_chunk(chunk({}, "tool_calls")))
    final = restorer.final_chunk()
    if final is not None:
        out.append(final)

    for i in (0, 1):
        assert json.loads(arguments(out, i)) == originals[i]
        assert arguments(out, i) == restore_text(sanitised[i], MAPPING, json_escape=True)
    first_calls = out[0]["choices"][0]["delta"]["tool_calls"]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in first_calls] == [
        ("call_0", "function", "f"),
        ("call_1", "function", "f"),
    ]


def test_chat_tool_call_held_arguments_released_under_their_index():
    restorer = ChatStreamRestorer(MAPPING)
    restorer.restore_chunk(chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"a": "<PERSON_'}}]}))
    restorer.restore_chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"b": "<EMAIL_'}}]}))
    last = restorer.restore_chunk(chunk({}, "tool_calls"))
    calls = sorted(last["choices"][0]["delta"]["tool_calls"], key=lambda c: c["index"])
    assert calls == [
        {"index": 0, "function": {"arguments": "<EMAIL_"}},
        {"index": 1, "function": {"arguments": "<PERSON_"}},
    ]


def test_chat_choices_are_restored_independently():
    restorer = ChatStreamRestorer(MAPPING)
    restorer.restore_chunk(chunk({"content": "A <PERSON_"}, index=0))
    b = restorer.restore_chunk(chunk({"content": "B <PERSON_"}, index=1))
    assert b["choices"][0]["delta"]["content"] == "B "
    b = restorer.restore_chunk(chunk({"content": "2>"}, index=1))
    assert b["choices"][0]["delta"]["content"] == AWKWARD
    done = restorer.restore_chunk(chunk({"content": "1>"}, "stop", index=0))
    assert done["choices"][0]["delta"]["content"] == "Jane Roe"
    assert restorer.final_chunk() is None


def test_chat_usage_chunk_with_empty_choices_passes_unchanged():
    restorer = ChatStreamRestorer(MAPPING)
    usage = {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }
    expected = json.loads(json.dumps(usage))
    assert restorer.restore_chunk(usage) == expected
    assert restorer.final_chunk() is None


def test_chat_usage_chunk_after_held_text_leaves_leftovers_for_final_chunk():
    restorer = ChatStreamRestorer(MAPPING)
    restorer.restore_chunk(chunk({"content": "x <CREDIT"}))
    usage = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "model": "m", "choices": [], "usage": {}}
    assert restorer.restore_chunk(usage)["choices"] == []
    final = restorer.final_chunk()
    assert final is not None
    assert final["choices"][0]["delta"] == {"content": "<CREDIT"}
    assert "usage" not in final


def test_chat_refusal_and_unknown_string_fields_are_restored():
    restorer = ChatStreamRestorer(MAPPING)
    out = restorer.restore_chunk(
        chunk({"refusal": "No, <PERSON_1>.", "x_note": "<EMAIL_ADDRESS_1>", "role": "assistant"})
    )
    delta = out["choices"][0]["delta"]
    assert delta == {"refusal": "No, Jane Roe.", "x_note": "jane.roe@example.com", "role": "assistant"}
