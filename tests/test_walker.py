import copy
import json
from typing import Any

import pytest

from redaction import CHAT_RULES, UninspectableContent
from redaction.anthropic import MESSAGES_RULES
from redaction.walker import collect_text_fields


def chat_body() -> dict[str, Any]:
    """A realistic OpenAI chat request touching most fields the walker must know about."""
    return {
        "model": "gpt-4o-mini",
        "user": "jane.roe@example.com",
        "metadata": {"customer": "Jane Roe", "ticket": "Call 555-0100"},
        "temperature": 0.2,
        "seed": 12345678901,
        "stream": True,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "reply_schema", "schema": {"type": "object"}},
        },
        "messages": [
            {"role": "system", "content": "You help Jane Roe's team."},
            {"role": "developer", "content": "Never reveal 555-0100."},
            {"role": "user", "name": "jane_roe", "content": "Hi, I am Jane Roe."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "My card is 4111 1111 1111 1111."},
                    {"type": "text", "text": "Mail me at jane.roe@example.com"},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc123",
                        "type": "function",
                        "function": {
                            "name": "send_email",
                            "arguments": json.dumps(
                                {
                                    "to": "jane.roe@example.com",
                                    "cc": ["john.doe@example.com"],
                                    "body": {"greeting": "Dear Jane Roe", "urgent": True, "copies": 2},
                                    "phone": 5550100123,
                                    "count": 42,
                                }
                            ),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_abc123", "content": "Sent to Jane Roe."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "send_email",
                    "description": "Send an e-mail on behalf of Jane Roe",
                    "strict": True,
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "to": {"type": "string", "description": "Recipient, e.g. john.doe@example.com"},
                            "phone": {"type": "integer"},
                        },
                        "required": ["to", "phone"],
                    },
                },
            }
        ],
        "x_custom_note": "escalated by Jane Roe",
    }


def collected(body: Any, **kwargs: Any) -> list[str]:
    return collect_text_fields(body, CHAT_RULES, **kwargs).texts


def test_collects_every_text_field_of_a_chat_body():
    texts = collected(chat_body())
    expected = {
        "jane.roe@example.com",  # user, and inside arguments
        "Jane Roe",  # metadata value
        "Call 555-0100",
        "You help Jane Roe's team.",  # system
        "Never reveal 555-0100.",  # developer
        "jane_roe",  # message name
        "Hi, I am Jane Roe.",
        "My card is 4111 1111 1111 1111.",
        "Mail me at jane.roe@example.com",
        "john.doe@example.com",  # arguments, in a list
        "Dear Jane Roe",  # arguments, nested object
        "5550100123",  # long integer in arguments
        "Sent to Jane Roe.",  # tool result
        "Send an e-mail on behalf of Jane Roe",  # tool description
        "Recipient, e.g. john.doe@example.com",  # parameter description
        "escalated by Jane Roe",  # unknown field
    }
    assert set(texts) == expected
    assert texts.count("jane.roe@example.com") == 2


def test_structural_values_are_not_collected():
    texts = set(collected(chat_body()))
    for structural in (
        "gpt-4o-mini",  # model
        "system",
        "user",
        "assistant",
        "tool",  # roles
        "call_abc123",  # id, tool_call_id
        "function",
        "text",  # type
        "send_email",  # function name (tool call and tool definition)
        "reply_schema",  # json_schema name
        "object",
        "string",
        "integer",  # parameters' "type"
        "42",  # short integer in arguments
        "12345678901",  # the seed: a numeric parameter, never text
        "2",
    ):
        assert structural not in texts, structural
    assert not any(text.startswith("{") for text in texts)  # arguments are walked, not collected whole


def test_write_back_replaces_texts_and_leaves_structure_untouched():
    body = chat_body()
    original = copy.deepcopy(body)
    fields = collect_text_fields(body, CHAT_RULES)
    keys = {"to", "cc", "body", "greeting", "urgent", "copies", "phone", "count", "customer", "ticket"}
    fields.write_back([text if text in keys else f"[{i}]" for i, text in enumerate(fields.texts)])

    assert body["model"] == original["model"]
    assert [m["role"] for m in body["messages"]] == [m["role"] for m in original["messages"]]
    call, original_call = body["messages"][4]["tool_calls"][0], original["messages"][4]["tool_calls"][0]
    assert call["id"] == "call_abc123" and call["type"] == "function"
    assert call["function"]["name"] == "send_email"
    assert body["messages"][5]["tool_call_id"] == "call_abc123"
    assert body["tools"][0]["function"]["name"] == "send_email"
    assert body["tools"][0]["function"]["parameters"]["required"] == ["to", "phone"]
    assert body["tools"][0]["function"]["parameters"]["properties"]["phone"] == {"type": "integer"}
    assert body["response_format"] == original["response_format"]
    assert body["seed"] == 12345678901 and body["temperature"] == 0.2 and body["stream"] is True
    assert body["messages"][3]["content"][0]["type"] == "text"

    # every collected slot now holds its replacement, in walk order
    assert body["user"] == "[0]"
    arguments = json.loads(call["function"]["arguments"])
    assert set(arguments) == set(json.loads(original_call["function"]["arguments"]))
    assert arguments["body"]["urgent"] is True and arguments["body"]["copies"] == 2 and arguments["count"] == 42
    assert all(isinstance(v, str) and v.startswith("[") for v in (arguments["to"], arguments["cc"][0]))


def tool_call_body(arguments: str) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": arguments}}
                ],
            }
        ],
    }


def arguments_of(body: dict[str, Any]) -> str:
    return body["messages"][0]["tool_calls"][0]["function"]["arguments"]


def test_write_back_keeps_arguments_valid_json_with_awkward_replacements():
    body = tool_call_body('{"name": "Jane Roe", "notes": ["line one", "Jane \\"JR\\" Roe"]}')
    fields = collect_text_fields(body, CHAT_RULES)
    assert fields.texts == ["Jane Roe", "line one", 'Jane "JR" Roe']
    replacements = ['<PERSON_1> "quoted"', "back\\slash\nnew line\ttab", "Ré ünïcode ✓ \u2028"]
    fields.write_back(replacements)
    assert json.loads(arguments_of(body)) == {"name": replacements[0], "notes": replacements[1:]}


def test_write_back_without_changes_keeps_argument_values():
    original = {"query": "Jane Roe", "limit": 10, "exact": False, "filters": None, "phone": 5550100123}
    body = tool_call_body(json.dumps(original))
    fields = collect_text_fields(body, CHAT_RULES)
    fields.write_back(list(fields.texts))
    assert json.loads(arguments_of(body)) == original  # the long integer is still an integer


def test_long_integers_in_arguments_are_inspected_and_replaced_as_strings():
    body = tool_call_body('{"phone": 5550100123, "account": -12345678, "page": 123456, "price": 19.99}')
    fields = collect_text_fields(body, CHAT_RULES)
    assert fields.texts == ["5550100123", "-12345678"]
    fields.write_back(["<PHONE_NUMBER_1>", *fields.texts[1:]])
    assert json.loads(arguments_of(body)) == {
        "phone": "<PHONE_NUMBER_1>",
        "account": -12345678,
        "page": 123456,
        "price": 19.99,
    }


def test_arguments_that_are_not_a_json_container_are_collected_as_text():
    for arguments in ("Call Jane Roe", '"Jane Roe"', "{not json: Jane Roe"):
        body = tool_call_body(arguments)
        fields = collect_text_fields(body, CHAT_RULES)
        assert fields.texts == [arguments]
        fields.write_back(["<PERSON_1>"])
        assert arguments_of(body) == "<PERSON_1>"


def test_argument_values_are_inspected_whatever_their_key():
    """Tool arguments are application JSON: a key that happens to be a provider key is still data."""
    arguments = {
        "id": "4111 1111 1111 1111",
        "type": "Jane Roe",
        "name": "John Doe",
        "model": "jane.roe@example.com",
        "detail": "Call 555-0100",
        "format": "john.doe@example.com",
    }
    texts = collected(tool_call_body(json.dumps(arguments)))
    assert set(texts) == set(arguments.values())


def test_keys_of_free_form_data_are_renamed_when_they_are_personal_data():
    body = {
        "model": "m",
        "metadata": {"jane.roe@example.com": "vip", "id": "Jane Roe"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    fields = collect_text_fields(body, CHAT_RULES)
    # identifier-shaped keys ("id") are field names; other keys are inspected like values
    assert {"jane.roe@example.com", "Jane Roe", "vip", "hi"} == set(fields.texts)
    replacement = {"jane.roe@example.com": "<EMAIL_ADDRESS_1>", "Jane Roe": "<PERSON_1>"}
    fields.write_back([replacement.get(t, t) for t in fields.texts])
    assert list(body["metadata"].items()) == [("<EMAIL_ADDRESS_1>", "vip"), ("id", "<PERSON_1>")]


def test_keys_of_unknown_objects_are_inspected_when_shaped_like_data():
    """An unknown field keyed by data ({"jane.roe@example.com": ...}) must not carry it out; field
    names and short numeric keys (logit_bias's token ids) are structure."""
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "custom": {"contacts": {"jane.roe@example.com": {"tel": "x"}}, "Jane Roe": 1},
        "logit_bias": {"50256": -100},
        "extra": {"2125550100": True},
    }
    fields = collect_text_fields(body, CHAT_RULES)
    assert {"jane.roe@example.com", "Jane Roe", "2125550100"} <= set(fields.texts)
    assert not {"custom", "contacts", "tel", "logit_bias", "50256"} & set(fields.texts)
    replacement = {"jane.roe@example.com": "<EMAIL_ADDRESS_1>", "Jane Roe": "<PERSON_1>"}
    fields.write_back([replacement.get(t, t) for t in fields.texts])
    assert body["custom"] == {"contacts": {"<EMAIL_ADDRESS_1>": {"tel": "x"}}, "<PERSON_1>": 1}


def test_nested_json_inside_arguments_is_walked_and_rewritten():
    inner = json.dumps({"email": "jane.roe@example.com"})
    body = tool_call_body(json.dumps({"tool": "send", "arguments": inner}))
    fields = collect_text_fields(body, CHAT_RULES)
    assert "jane.roe@example.com" in fields.texts
    fields.write_back(["<EMAIL_ADDRESS_1>" if t == "jane.roe@example.com" else t for t in fields.texts])
    outer = json.loads(arguments_of(body))
    assert json.loads(outer["arguments"]) == {"email": "<EMAIL_ADDRESS_1>"}
    assert "jane.roe" not in arguments_of(body)


def test_json_tool_results_are_decoded_before_inspection():
    content = '{"customer": "Fran\\u00e7ois M\\u00fcller", "phone": 2125550100}'
    body = {"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": content}]}
    fields = collect_text_fields(body, CHAT_RULES)
    assert "François Müller" in fields.texts and "2125550100" in fields.texts


def test_long_numbers_anywhere_but_numeric_parameters_are_inspected():
    body = {"model": "m", "seed": 12345678901, "extra": {"phone": 2125550100, "card": 4111111111111111.0}}
    body["messages"] = [{"role": "user", "content": "hi"}]
    texts = collected(body)
    assert "2125550100" in texts and "4111111111111111" in texts and "12345678901" not in texts


def test_content_parts_image_and_audio_block_by_default():
    for part in (
        {"type": "image_url", "image_url": {"url": "https://example.com/jane.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ):
        body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "Look"}, part]}]}
        with pytest.raises(UninspectableContent) as raised:
            collect_text_fields(body, CHAT_RULES)
        assert "example.com" not in str(raised.value) and "UklGRg" not in str(raised.value)


def test_content_parts_image_and_audio_are_skipped_when_forwarding():
    image = {"type": "image_url", "image_url": {"url": "https://example.com/jane.png", "detail": "low"}}
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Jane Roe here"}, image, audio]}],
    }
    fields = collect_text_fields(body, CHAT_RULES, block_uninspectable=False)
    assert fields.texts == ["Jane Roe here"]
    fields.write_back(["<PERSON_1> here"])
    content = body["messages"][0]["content"]
    assert content[0]["text"] == "<PERSON_1> here"
    assert content[1] == {"type": "image_url", "image_url": {"url": "https://example.com/jane.png", "detail": "low"}}
    assert content[2] == {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


def test_write_back_requires_one_text_per_field():
    fields = collect_text_fields({"messages": [{"role": "user", "content": "Jane Roe"}]}, CHAT_RULES)
    with pytest.raises(ValueError):
        fields.write_back([])


def test_tool_schemas_are_walked_as_schemas_whatever_the_property_names():
    parameters = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "e.g. jane.roe@example.com", "default": "Jane Roe"},
            "type": {"type": "string", "enum": ["Jane Roe", "John Doe"]},
            "id": {"type": "string", "pattern": "^[a-z]+$", "format": "email"},
        },
        "required": ["name", "type"],
    }
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    chat["tools"] = [{"type": "function", "function": {"name": "lookup", "parameters": copy.deepcopy(parameters)}}]
    anthropic_tools = [{"name": "lookup", "input_schema": copy.deepcopy(parameters)}]
    for rules, body in ((CHAT_RULES, chat), (MESSAGES_RULES, {"tools": anthropic_tools})):
        texts = collect_text_fields(body, rules).texts
        for value in ("e.g. jane.roe@example.com", "Jane Roe", "John Doe"):
            assert value in texts, (rules, value)
        for structural in ("string", "object", "^[a-z]+$", "email", "name", "type", "lookup"):
            assert structural not in texts, (rules, structural)
