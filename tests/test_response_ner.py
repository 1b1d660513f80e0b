"""Names and other detector-only types in answers: found with the real detector, streams included."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from redaction import (
    AnswerBlocked,
    DetectorPool,
    DetectorUnavailable,
    ResponseDetector,
    ResponsePolicy,
    StreamGuard,
    redact_values,
)
from redaction.response_ner import NER_MAX_HOLD, sentence_cut
from tests.fake_upstream import chunk, sse
from tests.test_proxy_chat import chat_url, chunks_of, streamed_content, user_body
from tests.test_response_guard import assert_never_partially_emitted, stream

MADE_UP = "Margaret Thornbury"  # synthetic: the name the model "remembers"
ANSWER = f"Sure. The person you want is {MADE_UP} from accounting. She replies fast."
REDACTED = "Sure. The person you want is <PERSON_REDACTED> from accounting. She replies fast."


@pytest.fixture
def policy(detector: DetectorPool) -> ResponsePolicy:
    return ResponsePolicy(("EMAIL_ADDRESS", "PERSON"), detect=ResponseDetector(detector))


def test_a_stream_is_held_until_its_sentence_ends_and_never_longer_than_the_bound():
    assert sentence_cut("Hello there. And then Mar") == len("Hello there. ")
    assert sentence_cut("One line\nNext") == len("One line\n")
    assert sentence_cut("No end yet") == 0
    long_sentence = "word " * 100 + "Marg"
    cut = sentence_cut(long_sentence)
    assert len(long_sentence) - cut <= NER_MAX_HOLD and long_sentence[cut:] == "Marg"


async def test_a_made_up_name_is_redacted_in_a_whole_answer(policy: ResponsePolicy):
    assert await asyncio.to_thread(redact_values, ANSWER, policy) == REDACTED


async def test_the_callers_own_names_and_placeholders_pass(policy: ResponsePolicy):
    text = "Dear Jane, I wrote to <PERSON_1> and Jane Roe about it. Regards."
    assert await asyncio.to_thread(redact_values, text, policy, ["Jane Roe"]) == text


async def test_a_name_split_at_every_offset_is_redacted_and_never_partly_emitted(policy: ResponsePolicy):
    def run_all_splits() -> None:
        start = ANSWER.index(MADE_UP)
        for cut in range(start - 2, start + len(MADE_UP) + 2):
            out, emitted = stream(StreamGuard(policy), [ANSWER[:cut], ANSWER[cut:]])
            assert out == REDACTED, cut
            assert_never_partially_emitted(emitted, MADE_UP)

    await asyncio.to_thread(run_all_splits)


async def test_one_character_per_event_holds_at_most_a_sentence(policy: ResponsePolicy):
    def run() -> tuple[str, list[str], int]:
        guard = StreamGuard(policy)
        emitted, lag = [], 0
        for position, char in enumerate(ANSWER):
            emitted.append(guard.feed(char))
            lag = max(lag, position + 1 - len("".join(emitted)))
        emitted.append(guard.flush())
        return "".join(emitted), emitted, lag

    out, emitted, lag = await asyncio.to_thread(run)
    assert out == REDACTED
    assert_never_partially_emitted(emitted, MADE_UP)
    assert emitted[len("Sure. ") - 1] == "Sure. "  # the first sentence leaves as soon as it ends
    assert lag <= NER_MAX_HOLD


async def test_a_percent_encoded_name_is_decoded_first(policy: ResponsePolicy):
    text = "The person you want is Margaret%20Thornbury from accounting."
    assert "Thornbury" not in await asyncio.to_thread(redact_values, text, policy)


async def test_a_blocked_detector_type_refuses_the_answer(detector: DetectorPool):
    policy = ResponsePolicy((), ("PERSON",), detect=ResponseDetector(detector))
    with pytest.raises(AnswerBlocked, match="PERSON"):
        await asyncio.to_thread(redact_values, ANSWER, policy)


def test_detector_types_without_a_detector_fail_closed():
    with pytest.raises(DetectorUnavailable):
        redact_values(ANSWER, ResponsePolicy(("PERSON",)))


def _streaming(text: str):
    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for char in text:
            await response.write(sse(chunk({"content": char})))
        await response.write(sse(chunk({}, "stop")))
        await response.write(sse("[DONE]"))
        return response

    return answer


async def test_through_the_proxy_names_are_redacted_in_streams_and_whole_answers(make_proxy, upstream, http):
    proxy = await make_proxy(response_redact_types=["EMAIL_ADDRESS", "PERSON"])
    own = "Jane Roe"
    text = f"Hello <PERSON_1>. I also asked {MADE_UP} from accounting. Bye."

    upstream.fake.behaviour = _streaming(text)
    async with http.post(chat_url(proxy), json=user_body(f"My name is {own}.", stream=True)) as response:
        content = streamed_content(chunks_of(await response.read()))
    assert content == f"Hello {own}. I also asked <PERSON_REDACTED> from accounting. Bye."

    async def whole(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

    upstream.fake.behaviour = whole
    async with http.post(chat_url(proxy), json=user_body(f"My name is {own}.")) as response:
        answer = (await response.json())["choices"][0]["message"]["content"]
    assert answer == f"Hello {own}. I also asked <PERSON_REDACTED> from accounting. Bye."
    for record in await proxy.records():
        assert MADE_UP not in record.response.decode()


async def test_a_detector_failure_while_checking_a_stream_ends_it_without_the_held_text(make_proxy, upstream, http):
    proxy = await make_proxy(response_redact_types=["PERSON"])
    state = proxy.state

    class Broken:
        def analyze_blocking(self, texts):
            raise DetectorUnavailable("detector worker died; restarting")

    original = state.response_policy
    state.response_policy = lambda target: ResponsePolicy(("PERSON",), detect=ResponseDetector(Broken()))
    try:
        upstream.fake.behaviour = _streaming(ANSWER)
        async with http.post(chat_url(proxy), json=user_body("Hello.", stream=True)) as response:
            raw = (await response.read()).decode()
    finally:
        state.response_policy = original
    assert "Thornbury" not in raw and "Margaret" not in raw and "Sure" not in raw
    error = json.loads([line for line in raw.splitlines() if '"error"' in line][-1].removeprefix("data: "))
    assert error["error"]["code"] == "detector_unavailable"


def test_initials_and_titles_do_not_end_a_sentence():
    text = "Please forward this to Dr. Jane A. Roe today. More"
    assert sentence_cut(text) == len("Please forward this to Dr. Jane A. Roe today. ")
