"""Training export: records built by hand (no database, no proxy), every mode, both APIs.

All personal values are synthetic ("Jane Roe", example.com addresses)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from storage.export import Surrogates, training_example
from storage.records import ExchangeRecord

MARKER = re.compile(r"<[A-Z][A-Z0-9_]*_(\d+|REDACTED)>")
PLACEHOLDER_LIKE = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
KEY = b"k" * 32

JANE, JANE_EMAIL, ZOE = "Jane Roe", "jane.roe@example.com", "Zoë Doe"
MAPPING = {
    "<PERSON_1>": {"value": JANE, "type": "PERSON"},
    "<EMAIL_ADDRESS_1>": {"value": JANE_EMAIL, "type": "EMAIL_ADDRESS"},
    "<PERSON_2>": {"value": ZOE, "type": "PERSON"},
}
ORIGINALS = {"<PERSON_1>": JANE, "<EMAIL_ADDRESS_1>": JANE_EMAIL, "<PERSON_2>": ZOE}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "send_email",
            "description": "Send an email",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}}},
        },
    }
]


def _restore(text: str) -> str:
    for placeholder, value in ORIGINALS.items():
        text = text.replace(placeholder, value)
    return text


def _record(endpoint: str, sanitized: dict[str, Any], response: bytes, **fields: Any) -> ExchangeRecord:
    """A record as the proxy logs it: the original request is the sanitized one with values restored."""
    body = json.dumps(sanitized, ensure_ascii=False)
    values = {
        "id": "0" * 31 + "1",
        "client_id": "test",
        "endpoint": endpoint,
        "status": 200,
        "stream": not response.lstrip().startswith(b"{"),
        "original_request": _restore(body).encode(),
        "sanitized_request": body.encode(),
        "response": response,
        "mapping": MAPPING,
    }
    values.update(fields)
    return ExchangeRecord(**values)


def _sse(events: list[Any], anthropic: bool = False) -> bytes:
    if anthropic:
        return b"".join(f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in events)
    return b"".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


# -- fixtures: one exchange per shape ------------------------------------------------------------


def chat_plain() -> ExchangeRecord:
    request = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "developer", "content": "You are a helpful assistant."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Write to <PERSON_1> "},
                    {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
                    {"type": "text", "text": "at <EMAIL_ADDRESS_1>."},
                ],
            },
        ],
        "tools": TOOLS,
    }
    arguments = json.dumps({"to": JANE_EMAIL, "body": f"Hello {JANE}, regards {ZOE}"})  # ASCII-escaped ë
    response = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": f"Sending it to {JANE} now; cc <EMAIL_ADDRESS_REDACTED>.",
                    "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "send_email", "arguments": arguments}}
                    ],
                },
            }
        ],
    }
    return _record("/v1/chat/completions", request, json.dumps(response).encode())


def chat_stream() -> ExchangeRecord:
    request = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Email <PERSON_1>."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"name": "<PERSON_1>"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": '{"email": "<EMAIL_ADDRESS_1>"}'},
            {"role": "function", "name": "legacy", "content": "dropped"},
        ],
        "tools": TOOLS,
    }
    arguments = json.dumps({"to": JANE_EMAIL, "body": f"Hi {JANE}"}, ensure_ascii=False)
    third = len(arguments) // 3
    pieces = [arguments[:third], arguments[third : 2 * third], arguments[2 * third :]]
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk"}
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Writing to Ja"}}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "ne Roe"}}]},
        {**base, "choices": [{"index": 0, "delta": {"content": " now."}}]},
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "send_email", "arguments": ""},
                            }
                        ]
                    },
                }
            ],
        },
        *(
            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}}]}
            for p in pieces
        ),
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
    ]
    return _record("/v1/chat/completions", request, _sse(chunks))


ANTHROPIC_TOOLS = [
    {
        "name": "send_email",
        "description": "Send an email",
        "input_schema": {"type": "object", "properties": {"to": {"type": "string"}}},
    },
    {"type": "web_search_20250305", "name": "web_search"},  # a server tool: no schema, not exported
]


def _anthropic_request() -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "system": [{"type": "text", "text": "You help "}, {"type": "text", "text": "<PERSON_2>."}],
        "messages": [
            {"role": "user", "content": "Find the address of <PERSON_1>."},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Looking it up."},
                    {"type": "tool_use", "id": "toolu_0", "name": "lookup", "input": {"name": "<PERSON_1>"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_0",
                        "content": [{"type": "text", "text": "<EMAIL_ADDRESS_1>"}],
                    },
                    {"type": "text", "text": "Now email her."},
                ],
            },
        ],
        "tools": ANTHROPIC_TOOLS,
    }


def anthropic_plain() -> ExchangeRecord:
    response = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": f"Emailing {JANE} at {JANE_EMAIL}."},
            {"type": "tool_use", "id": "toolu_1", "name": "send_email", "input": {"to": JANE_EMAIL, "cc": ZOE}},
        ],
        "stop_reason": "tool_use",
    }
    return _record("/v1/messages", _anthropic_request(), json.dumps(response, ensure_ascii=False).encode())


def anthropic_stream() -> ExchangeRecord:
    partial = json.dumps({"to": JANE_EMAIL, "body": f"Dear {JANE}"})
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_2", "type": "message", "role": "assistant", "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Sure, "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"writing to {JANE}"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "send_email", "input": {}},
        },
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": partial[:9]}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": partial[9:]}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    ]
    return _record("/v1/messages", _anthropic_request(), _sse(events, anthropic=True))


RECORDS = {
    "chat": chat_plain,
    "chat-stream": chat_stream,
    "anthropic": anthropic_plain,
    "anthropic-stream": anthropic_stream,
}
MODES = ("original", "sanitized", "surrogates")


# -- checks --------------------------------------------------------------------------------------


def assert_trainable(example: dict[str, Any]) -> None:
    """What OpenAI's fine-tuning validation requires of a chat example with tools."""
    assert json.loads(json.dumps(example)) == example
    assert set(example) <= {"messages", "tools"}
    messages = example["messages"]
    assert messages and messages[-1]["role"] == "assistant"
    open_ids: set[str] = set()
    previous = None
    for message in messages:
        assert message["role"] in {"system", "user", "assistant", "tool"}
        assert set(message) <= {"role", "content", "name", "tool_calls", "tool_call_id"}
        if message["role"] == "tool":
            assert previous in ("assistant", "tool")
            assert message["tool_call_id"] in open_ids
            assert isinstance(message["content"], str)
        else:
            if message["role"] == "assistant":
                assert isinstance(message["content"], str) or message.get("tool_calls")
            else:
                assert isinstance(message["content"], str) and message["content"]
            open_ids = set()
            for call in message.get("tool_calls") or ():
                assert call["type"] == "function" and call["id"]
                assert isinstance(call["function"]["name"], str)
                json.loads(call["function"]["arguments"])  # valid JSON text in every mode
                open_ids.add(call["id"])
        previous = message["role"]
    for tool in example.get("tools", ()):
        assert tool["type"] == "function" and "name" in tool["function"] and "parameters" in tool["function"]


def all_strings(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, list):
        return [s for item in data for s in all_strings(item)]
    if isinstance(data, dict):
        return [s for value in data.values() for s in all_strings(value)]
    return []


def strings_with_arguments_decoded(example: dict[str, Any]) -> list[str]:
    """Every string, plus the strings inside tool-call arguments once decoded."""
    strings = all_strings(example)
    for message in example["messages"]:
        for call in message.get("tool_calls") or ():
            strings += all_strings(json.loads(call["function"]["arguments"]))
    return strings


def contains_original(example: dict[str, Any]) -> set[str]:
    return {value for value in ORIGINALS.values() for s in strings_with_arguments_decoded(example) if value in s}


# -- every shape, every mode ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", RECORDS)
def test_every_example_is_trainable(shape: str, mode: str) -> None:
    example = training_example(RECORDS[shape](), mode, Surrogates(KEY))  # type: ignore[arg-type]
    assert example is not None
    assert_trainable(example)
    assert example["tools"][0]["function"]["name"] == "send_email"
    assert len(example["tools"]) == 1


@pytest.mark.parametrize("shape", RECORDS)
def test_original_keeps_the_real_values(shape: str) -> None:
    example = training_example(RECORDS[shape](), "original")
    assert example is not None
    assert contains_original(example) == {JANE, JANE_EMAIL, ZOE} - ({ZOE} if shape == "chat-stream" else set())
    assert not any(PLACEHOLDER_LIKE.search(s) for s in all_strings(example))


@pytest.mark.parametrize("shape", RECORDS)
def test_sanitized_has_placeholders_and_no_values(shape: str) -> None:
    example = training_example(RECORDS[shape](), "sanitized")
    assert example is not None
    assert contains_original(example) == set()
    answer = example["messages"][-1]
    answer_text = json.dumps(answer)
    assert "<PERSON_1>" in answer_text and "<EMAIL_ADDRESS_1>" in answer_text
    assert all(json.loads(c["function"]["arguments"])["to"] == "<EMAIL_ADDRESS_1>" for c in answer["tool_calls"])


@pytest.mark.parametrize("shape", RECORDS)
def test_surrogates_replace_every_placeholder(shape: str) -> None:
    surrogates = Surrogates(KEY)
    example = training_example(RECORDS[shape](), "surrogates", surrogates)
    assert example is not None
    assert contains_original(example) == set()
    assert not any(MARKER.search(s) for s in strings_with_arguments_decoded(example))
    fake_jane, fake_email = surrogates.value("PERSON", JANE), surrogates.value("EMAIL_ADDRESS", JANE_EMAIL)
    text = "\n".join(strings_with_arguments_decoded(example))
    assert fake_jane in text and fake_email in text
    for call in example["messages"][-1]["tool_calls"]:
        assert json.loads(call["function"]["arguments"])["to"] == fake_email


def test_chat_answer_details() -> None:
    example = training_example(chat_plain(), "sanitized")
    assert example is not None
    system, user, answer = example["messages"]
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    assert user == {"role": "user", "content": "Write to <PERSON_1> at <EMAIL_ADDRESS_1>."}
    assert answer["content"] == "Sending it to <PERSON_1> now; cc <EMAIL_ADDRESS_REDACTED>."
    # the ASCII-escaped "Zo\\u00eb Doe" inside the JSON arguments is found too
    assert json.loads(answer["tool_calls"][0]["function"]["arguments"]) == {
        "to": "<EMAIL_ADDRESS_1>",
        "body": "Hello <PERSON_1>, regards <PERSON_2>",
    }
    assert example["tools"] == TOOLS


def test_chat_stream_is_rebuilt() -> None:
    example = training_example(chat_stream(), "original")
    assert example is not None
    roles = [m["role"] for m in example["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]  # the legacy function turn is dropped
    answer = example["messages"][-1]
    assert answer["content"] == f"Writing to {JANE} now."
    assert answer["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {
                "name": "send_email",
                "arguments": json.dumps({"to": JANE_EMAIL, "body": f"Hi {JANE}"}, ensure_ascii=False),
            },
        }
    ]
    sanitized = training_example(chat_stream(), "sanitized")
    assert sanitized is not None
    assert sanitized["messages"][-1]["content"] == "Writing to <PERSON_1> now."


def test_anthropic_conversion() -> None:
    example = training_example(anthropic_plain(), "sanitized")
    assert example is not None
    messages = example["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "user", "assistant"]
    assert messages[0]["content"] == "You help <PERSON_2>."
    assert messages[2]["tool_calls"][0]["id"] == "toolu_0"
    assert json.loads(messages[2]["tool_calls"][0]["function"]["arguments"]) == {"name": "<PERSON_1>"}
    assert messages[3] == {"role": "tool", "tool_call_id": "toolu_0", "content": "<EMAIL_ADDRESS_1>"}
    assert messages[-1]["content"] == "Emailing <PERSON_1> at <EMAIL_ADDRESS_1>."
    assert json.loads(messages[-1]["tool_calls"][0]["function"]["arguments"]) == {
        "to": "<EMAIL_ADDRESS_1>",
        "cc": "<PERSON_2>",
    }
    assert example["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "send_email",
                "description": "Send an email",
                "parameters": ANTHROPIC_TOOLS[0]["input_schema"],
            },
        }
    ]


def test_anthropic_stream_is_rebuilt() -> None:
    example = training_example(anthropic_stream(), "sanitized")
    assert example is not None
    answer = example["messages"][-1]
    assert answer["content"] == "Sure, writing to <PERSON_1>"
    assert answer["tool_calls"][0]["id"] == "toolu_1"
    assert json.loads(answer["tool_calls"][0]["function"]["arguments"]) == {
        "to": "<EMAIL_ADDRESS_1>",
        "body": "Dear <PERSON_1>",
    }


def test_anthropic_prefill_is_continued() -> None:
    request = {
        "model": "claude",
        "messages": [{"role": "user", "content": "JSON please"}, {"role": "assistant", "content": "{"}],
    }
    response = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": '"ok": true}'}]}
    record = _record("/v1/messages", request, json.dumps(response).encode(), mapping=None)
    example = training_example(record, "sanitized")
    assert example is not None
    assert example["messages"] == [
        {"role": "user", "content": "JSON please"},
        {"role": "assistant", "content": '{"ok": true}'},
    ]


# -- surrogates ----------------------------------------------------------------------------------


def test_same_person_same_surrogate_across_records() -> None:
    surrogates = Surrogates(KEY)
    first = training_example(chat_plain(), "surrogates", surrogates)
    # another exchange where Jane Roe (spelled differently) got another placeholder number
    other_mapping = {"<PERSON_7>": {"value": "jane  ROE", "type": "PERSON"}}
    request = {"model": "m", "messages": [{"role": "user", "content": "Who is <PERSON_7>?"}]}
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "jane  ROE is a client."}}]}
    record = _record("/v1/chat/completions", request, json.dumps(response).encode(), mapping=other_mapping, id="2" * 32)
    second = training_example(record, "surrogates", Surrogates(KEY))  # a new instance: same key, same values
    assert first is not None and second is not None
    fake = surrogates.value("PERSON", JANE)
    assert fake in first["messages"][-1]["content"]
    assert second["messages"][0]["content"] == f"Who is {fake}?"
    assert second["messages"][1]["content"] == f"{fake} is a client."


def test_surrogates_are_keyed_and_deterministic() -> None:
    values = [("PERSON", JANE), ("EMAIL_ADDRESS", JANE_EMAIL), ("PERSON", ZOE), ("PHONE_NUMBER", "555-0100")]
    one, again, other = Surrogates(KEY), Surrogates(KEY), Surrogates(b"another key")
    assert [one.value(*v) for v in values] == [again.value(*v) for v in values]
    assert [one.value(*v) for v in values] != [other.value(*v) for v in values]
    assert one.redacted("PERSON", "salt") == again.redacted("PERSON", "salt")


@pytest.mark.parametrize(
    ("entity_type", "original"),
    [
        ("PERSON", JANE),
        ("EMAIL_ADDRESS", JANE_EMAIL),
        ("PHONE_NUMBER", "+1 555 0100"),
        ("LOCATION", "Springfield"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("IBAN_CODE", "GB00 TEST 0000 0000 0000 00"),
        ("US_SSN", "000-00-0000"),
        ("IP_ADDRESS", "192.0.2.1"),
        ("IP_ADDRESS", "2001:db8::1"),
        ("URL", "https://example.com/jane"),
        ("DATE_TIME", "2000-01-01"),
        ("NRP", "Atlantean"),
        ("ORGANIZATION", "Example Corp"),
        ("US_PASSPORT", "X00000000"),
        ("US_DRIVER_LICENSE", "d000-0000"),
        ("US_BANK_NUMBER", "000123456789"),
        ("SOMETHING_NEW", "<PERSON_1>"),
    ],
)
def test_surrogate_values(entity_type: str, original: str) -> None:
    surrogates = Surrogates(KEY)
    value = surrogates.value(entity_type, original)
    assert value and value != original
    assert "<" not in value and ">" not in value
    assert surrogates.value(entity_type, original) == value
    redacted = surrogates.redacted(entity_type, "record-1")
    assert redacted and "<" not in redacted and ">" not in redacted


def test_same_shape_for_identifiers() -> None:
    value = Surrogates(KEY).value("US_DRIVER_LICENSE", "d000-0000")
    assert re.fullmatch(r"[a-z]\d{3}-\d{4}", value)
    assert "@example." in Surrogates(KEY).value("EMAIL_ADDRESS", JANE_EMAIL)
    assert ":" in Surrogates(KEY).value("IP_ADDRESS", "2001:db8::1")


def test_markers_without_mapping_and_nested_markers() -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "Ask <PERSON_9> about <ID_<PERSON_1>>"}]}
    response = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "<PERSON_REDACTED> and <PERSON_REDACTED>"}}
        ]
    }
    record = _record("/v1/chat/completions", request, json.dumps(response).encode())
    example = training_example(record, "surrogates", Surrogates(KEY))
    assert example is not None
    assert not any(MARKER.search(s) for s in all_strings(example))
    first, second = example["messages"][-1]["content"].split(" and ")
    assert first != second  # each made-up value gets its own surrogate
    assert training_example(record, "surrogates", Surrogates(KEY)) == example


# -- records that give no example ----------------------------------------------------------------


def test_records_without_an_example() -> None:
    assert training_example(_record("/v1/embeddings", {"input": "x"}, b'{"data": []}'), "original") is None
    assert training_example(_record("/v1/responses", {"input": "x"}, b'{"output": []}'), "original") is None
    assert training_example(_replace(chat_plain(), status=500), "original") is None
    assert training_example(_replace(chat_plain(), response=None), "original") is None
    assert training_example(_replace(chat_plain(), sanitized_request=None), "sanitized") is None
    assert training_example(_replace(chat_plain(), response=b"{not json"), "original") is None
    assert training_example(_replace(chat_plain(), original_request=b"[1, 2]"), "original") is None
    assert training_example(_replace(chat_plain(), training_consent=False), "original") is None
    cut = chat_stream().response
    assert cut is not None
    truncated = cut[: cut.index(b'"finish_reason"')].rsplit(b"\n\n", 1)[0] + b"\n\n"
    assert training_example(_replace(chat_stream(), response=truncated), "original") is None
    empty = {"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}}]}
    assert training_example(_replace(chat_plain(), response=json.dumps(empty).encode()), "original") is None


def test_modes_are_checked() -> None:
    with pytest.raises(ValueError):
        training_example(chat_plain(), "surrogates")
    with pytest.raises(ValueError):
        training_example(chat_plain(), "plain")  # type: ignore[arg-type]


def _replace(record: ExchangeRecord, **fields: Any) -> ExchangeRecord:
    for name, value in fields.items():
        setattr(record, name, value)
    return record
