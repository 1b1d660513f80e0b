"""Personal data the model produces: redacted in whole answers and in streams, however it is split."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from aiohttp import web

from redaction import PlaceholderMap, ResponsePolicy, StreamGuard, redact_values
from redaction.match_sites import MatchSites
from redaction.response_guard import MAX_HOLD, PATTERNS, _matches, _valid
from tests.fake_upstream import chunk, sse
from tests.test_proxy_chat import chat_url, chunks_of, streamed_content, user_body

INJECTED = {
    "EMAIL_ADDRESS": "mallory.stone@example.net",
    "PHONE_NUMBER": "+1 (415) 555-0199",
    "CREDIT_CARD": "4012 8888 8888 1881",
    "IBAN_CODE": "GB82 WEST 1234 5698 7654 32",
    "US_SSN": "901-23-4567",
    "IP_ADDRESS": "203.0.113.77",
}
POLICY = ResponsePolicy()


def stream(guard: StreamGuard, pieces: list[str]) -> tuple[str, list[str]]:
    emitted = [guard.feed(piece) for piece in pieces]
    emitted.append(guard.flush())
    return "".join(emitted), emitted


def assert_never_partially_emitted(emitted: list[str], value: str) -> None:
    """No prefix of the value (3+ characters) ever reaches the client before the redaction."""
    so_far = ""
    for piece in emitted:
        so_far += piece
        for size in range(3, len(value) + 1):
            assert value[:size] not in so_far, (value[:size], so_far)


@pytest.mark.parametrize(("entity_type", "value"), INJECTED.items())
def test_whole_text_values_are_redacted(entity_type: str, value: str):
    assert redact_values(f"Contact: {value}. Bye", POLICY) == f"Contact: <{entity_type}_REDACTED>. Bye"


@pytest.mark.parametrize(("entity_type", "value"), INJECTED.items())
def test_values_split_at_every_offset_are_redacted_and_never_partly_emitted(entity_type: str, value: str):
    text = f"Sure, write to {value} today."
    for cut in range(1, len(text)):
        for second_cut in (None, min(len(text) - 1, cut + 3)):
            pieces = [text[:cut], text[cut:]] if second_cut is None or second_cut <= cut else [
                text[:cut], text[cut:second_cut], text[second_cut:]
            ]  # fmt: skip
            out, emitted = stream(StreamGuard(POLICY), pieces)
            assert out == f"Sure, write to <{entity_type}_REDACTED> today.", (cut, second_cut)
            assert_never_partially_emitted(emitted, value)


def test_one_character_per_event_and_random_splits():
    text = " ".join(f"{k}: {v}." for k, v in INJECTED.items())
    expected = " ".join(f"{k}: <{k}_REDACTED>." for k in INJECTED)
    out, emitted = stream(StreamGuard(POLICY), list(text))
    assert out == expected
    for value in INJECTED.values():
        assert_never_partially_emitted(emitted, value)
    rng = random.Random(7)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(text)), 12))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert stream(StreamGuard(POLICY), pieces)[0] == expected


@pytest.mark.parametrize(
    "disguised",
    [
        "mallory.stone%40example.net",
        "mallory.stone\\u0040example.net",
        "mallory.stone&#64;example.net",
        "mallory\u200b.stone@example.net",
        "\uff4d\uff41\uff4c\uff4c\uff4f\uff52\uff59@example.net",
        "4012\u00a08888\u00a08888\u00a01881",
    ],
)
def test_encoded_and_disguised_values_are_decoded_before_matching(disguised: str):
    out, _emitted = stream(StreamGuard(POLICY), list(f"See {disguised} now"))
    assert out.startswith("See <") and out.endswith("_REDACTED> now"), out


@pytest.mark.parametrize("seed", range(4))
def test_patterns_run_only_where_they_can_match_and_find_the_same(seed: int):
    """The guard tries each pattern only near digits (IBAN: at its possible starts; e-mail: when
    there is an "@"): on texts dense with digits, separators and near-misses it must find exactly
    what trying every position finds (among the matches valid for their type)."""
    pieces = [
        "4111 1111 1111 1111",
        "+1 (212) 555-0147",
        "+33 1 42 68 53 00",
        "219-09-9999",
        "10.0.0.12",
        "DE89 3704 0044 0532 0130 00",
        "GB29 NWBK 6016 1331 9268 19",
        "jane.roe@example.com",
        "2125550147",
        " ",
        " ",
        "-",
        ".",
        "(",
        ")",
        "+",
        "/",
        "x",
        "AB",
        "call",
        "Ref",
        "0",
        "12",
        "345",
        "6789",
        "\n",
        "é",  # a view with other characters is scanned by the regexes
        "٣٤٥",  # digits of another script: \d matches them too
    ]
    rng = random.Random(seed)
    for _ in range(300):
        view = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        sites = MatchSites(view)
        for entity_type, pattern in PATTERNS.items():
            expected = [m.span() for m in pattern.finditer(view) if _valid(entity_type, m.group(0).strip())]
            found = [m.span() for m in _matches(entity_type, pattern, view, sites)]
            assert [span for span in found if _valid(entity_type, view[slice(*span)].strip())] == expected, (
                entity_type,
                view,
            )


def test_the_callers_own_values_written_out_pass():
    assert redact_values("Mail jane.roe@example.com", POLICY, allowed=["jane.roe@example.com"]) == (
        "Mail jane.roe@example.com"
    )


def test_ordinary_text_flows_with_a_small_delay():
    text = "The meeting moved to Thursday afternoon, room 4, and the agenda is unchanged. " * 3
    guard = StreamGuard(POLICY)
    emitted, lag = "", 0
    for position, char in enumerate(text):
        emitted += guard.feed(char)
        lag = max(lag, position + 1 - len(emitted))
    assert emitted + guard.flush() == text
    assert lag <= 12  # about one word, never MAX_HOLD
    assert MAX_HOLD >= 64


async def test_injected_values_in_any_delta_field_never_reach_the_client(proxy, upstream, http):
    secret = INJECTED["EMAIL_ADDRESS"]

    async def inject(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        own = body["messages"][-1]["content"].split("is ")[1].rstrip(".")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        text = f"Your address {own} is noted; also try {secret}%20or {secret.replace('@', '%40')}."
        for char in text:
            await response.write(sse(chunk({"content": char, "x_note": char})))
        await response.write(sse(chunk({}, "stop")))
        await response.write(sse("[DONE]"))
        return response

    upstream.fake.behaviour = inject
    body = user_body("My address is jane.roe@example.com.", stream=True)
    async with http.post(chat_url(proxy), json=body) as response:
        raw = await response.read()
    chunks = chunks_of(raw)
    content = streamed_content(chunks)
    note = "".join(c["choices"][0]["delta"].get("x_note", "") for c in chunks if c["choices"])
    for text in (content, note):
        assert "jane.roe@example.com" in text  # the caller's own value comes back
        assert "mallory" not in text and "example.net" not in text, text
        assert text.count("<EMAIL_ADDRESS_REDACTED>") == 2


async def test_restore_only_policy_passes_model_values(make_proxy, upstream, http):
    proxy = await make_proxy(response_redact_types=[])

    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": INJECTED["US_SSN"]}}]}
        )

    upstream.fake.behaviour = answer
    async with http.post(chat_url(proxy), json=user_body("Hello.")) as response:
        assert (await response.json())["choices"][0]["message"]["content"] == INJECTED["US_SSN"]


def test_tool_arguments_stay_valid_json_when_a_value_is_redacted():
    mapping = PlaceholderMap()
    mapping.response_policy = POLICY
    from redaction.restore import StreamRestorer

    restorer = StreamRestorer(mapping, json_escape=True)
    arguments = json.dumps({"to": INJECTED["EMAIL_ADDRESS"], "phone": INJECTED["PHONE_NUMBER"]})
    out = "".join(restorer.feed(c) for c in arguments) + restorer.flush()
    assert json.loads(out) == {"to": "<EMAIL_ADDRESS_REDACTED>", "phone": "<PHONE_NUMBER_REDACTED>"}


async def test_a_blocked_type_refuses_a_whole_answer(make_proxy, upstream, http):
    proxy = await make_proxy(response_block_types=["CREDIT_CARD"])

    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        content = f"Use card {INJECTED['CREDIT_CARD']}."
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})

    upstream.fake.behaviour = answer
    async with http.post(chat_url(proxy), json=user_body("Hello.")) as response:
        assert response.status == 502
        payload = await response.json()
    assert payload["error"]["code"] == "answer_blocked" and "4012" not in json.dumps(payload)
    [record] = await proxy.records()
    assert (record.status, record.outcome) == (502, "answer_blocked")


async def test_a_blocked_type_ends_a_stream_before_any_of_the_value(make_proxy, upstream, http):
    proxy = await make_proxy(response_block_types=["US_SSN"])
    value = INJECTED["US_SSN"]

    async def stream_it(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for char in f"The number is {value} as requested. More text follows.":
            await response.write(sse(chunk({"content": char})))
        await response.write(sse(chunk({}, "stop")))
        await response.write(sse("[DONE]"))
        return response

    upstream.fake.behaviour = stream_it
    async with http.post(chat_url(proxy), json=user_body("Hello.", stream=True)) as response:
        raw = await response.read()
    text = raw.decode()
    assert "answer_blocked" in text and "[DONE]" not in text
    assert "901" not in text and "4567" not in text and "More text" not in text


@pytest.mark.parametrize(
    "pieces",
    [
        ["Call", " **(", "415", ")", " ", "555", "-", "019", "9", "**", " today"],
        ["SSN: `123 ", "45 6789`."],
        ['IBAN "NL91 ', 'ABNA 0417 1643 00"'],
        list("call \uff14\uff11\uff15\uff0d\uff15\uff15\uff15\uff0d\uff10\uff11\uff19\uff19 now"),
        list("mail john.doe\uff20example.com now"),
        ["dash 415\u2011555\u20110199."],
    ],
)
def test_values_wrapped_in_markdown_quotes_or_odd_punctuation_are_held_and_redacted(pieces: list[str]):
    out, _ = stream(StreamGuard(POLICY), pieces)
    assert "_REDACTED>" in out
    for digits in ("0199", "6789", "1643", "example.com", "\uff10\uff11\uff19\uff19"):
        assert digits not in out


def test_json_escapes_in_tool_arguments_stay_valid_and_values_after_them_are_found():
    text = json.dumps({"body": "Hi,\njohn@example.com and\n415-555-0199"})
    assert json.loads(redact_values(text, POLICY)) == {
        "body": "Hi,\n<EMAIL_ADDRESS_REDACTED> and\n<PHONE_NUMBER_REDACTED>"
    }


def test_the_callers_own_card_is_not_cut_into_a_phone_number():
    card = "4111 1111 1111 1111"
    assert redact_values(f"card {card}", POLICY, [card]) == f"card {card}"


@pytest.mark.parametrize(
    "ordinary",
    ["ZIP 94103-1234", "Sum: 123 456 789", "127.0.0.1 and 0.0.0.0 and 255.255.255.0", "2024-11-26 10:30", "$1,234.56"],
)
def test_ordinary_numbers_are_left_alone(ordinary: str):
    assert redact_values(ordinary, POLICY) == ordinary


@pytest.mark.parametrize(
    ("written", "entity_type"),
    [
        ("+33 1 42 68 53 00", "PHONE_NUMBER"),
        ("01 42 68 53 00", "PHONE_NUMBER"),
        ("+44 20 7946 0958", "PHONE_NUMBER"),
        ("j\u00f6rg.m\u00fcller@example.de", "EMAIL_ADDRESS"),
        ("kontakt@beispiel.\u0440\u0444", "EMAIL_ADDRESS"),
    ],
)
def test_international_forms_are_found_whole_and_split(written: str, entity_type: str):
    assert redact_values(f"Reach them at {written} today.", POLICY) == f"Reach them at <{entity_type}_REDACTED> today."
    out, emitted = stream(StreamGuard(POLICY), list(f"Reach them at {written} today."))
    assert out == f"Reach them at <{entity_type}_REDACTED> today."
    assert_never_partially_emitted(emitted, written)


@pytest.mark.parametrize(
    "text",
    ["Call the office (+33 1 42 68 53 00) today.", "(+1 (415) 555-0100) ok", "(**4111 1111 1111 1111**) x"],
)
def test_values_opened_by_a_bracket_stream_like_the_whole_text(text: str):
    """Found in review: "(+33" was not held as a number group, so its start left before the rest."""
    pieces = [word + " " for word in text.split(" ")]
    out, _emitted = stream(StreamGuard(POLICY), pieces)
    assert out == redact_values("".join(pieces), POLICY) and "_REDACTED>" in out
    for digits in ("33 1 42", "415", "4111"):
        assert digits not in out


def test_a_long_address_is_held_whole_past_the_usual_bound():
    """Found in review: an address longer than MAX_HOLD had its start emitted before the redaction."""
    value = "firstname.lastname@" + "x" * 90 + ".com"
    out, emitted = stream(StreamGuard(POLICY), list(f"Write to {value} now."))
    assert out == "Write to <EMAIL_ADDRESS_REDACTED> now."
    assert_never_partially_emitted(emitted, value)


# --- values the request carried unredacted (detection off, or a value the detector did not report)

CALLERS_OWN = {"EMAIL_ADDRESS": "jane.roe@example.com", "PHONE_NUMBER": "+1 212 555 0100", "IP_ADDRESS": "198.51.100.7"}


async def unredacted_request_mapping() -> PlaceholderMap:
    """The mapping of a request forwarded as it was: the detector (off) reported nothing."""
    from redaction import NoDetector, Redactor
    from redaction.openai_chat import CHAT_RULES

    body = user_body(f"Mail me at {CALLERS_OWN['EMAIL_ADDRESS']}, call {CALLERS_OWN['PHONE_NUMBER']}, "
                     f"my laptop is {CALLERS_OWN['IP_ADDRESS']}.")  # fmt: skip
    redaction = await Redactor(NoDetector()).redact(body, CHAT_RULES)  # type: ignore[arg-type]
    assert redaction.mapping.entity_counts() == {}  # nothing was replaced: the values went out as they were
    redaction.mapping.response_policy = POLICY
    return redaction.mapping


async def test_values_the_request_carried_unredacted_pass_and_made_up_ones_do_not():
    """The caller's own values went to the provider as they were: the model repeating them leaks
    nothing, and redacting them would only garble the caller's answer. Values the caller never
    sent are still redacted, in whole answers and in streams split anywhere."""
    from redaction.restore import StreamRestorer, restore_text

    mapping = await unredacted_request_mapping()
    own, made_up = CALLERS_OWN, INJECTED
    answer = (f"Noted: {own['EMAIL_ADDRESS']}, {own['PHONE_NUMBER']} and {own['IP_ADDRESS']}; "
              f"also write to {made_up['EMAIL_ADDRESS']} or {made_up['PHONE_NUMBER']}.")  # fmt: skip
    expected = answer.replace(INJECTED["EMAIL_ADDRESS"], "<EMAIL_ADDRESS_REDACTED>").replace(
        INJECTED["PHONE_NUMBER"], "<PHONE_NUMBER_REDACTED>"
    )
    assert restore_text(answer, mapping) == expected
    for size in (1, 3, 7):
        restorer = StreamRestorer(mapping)
        pieces = [answer[i : i + size] for i in range(0, len(answer), size)]
        assert "".join(restorer.feed(piece) for piece in pieces) + restorer.flush() == expected


async def test_detection_off_answers_keep_the_callers_own_values(make_proxy, upstream, http):
    proxy = await make_proxy(detector_pool=None, detection="off")

    async def echo(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        said = body["messages"][-1]["content"]
        text = f"You said: {said} Or mail {INJECTED['EMAIL_ADDRESS']}."
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

    upstream.fake.behaviour = echo
    said = f"Mail me at {CALLERS_OWN['EMAIL_ADDRESS']} or call {CALLERS_OWN['PHONE_NUMBER']}."
    async with http.post(chat_url(proxy), json=user_body(said)) as response:
        content = (await response.json())["choices"][0]["message"]["content"]
    assert content == f"You said: {said} Or mail <EMAIL_ADDRESS_REDACTED>."
