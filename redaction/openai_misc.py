"""Smaller OpenAI APIs: embeddings, legacy completions, and the generic walk for allowed paths."""

from __future__ import annotations

from typing import Any

from redaction.api_format import ApiFormat, Event
from redaction.placeholders import PlaceholderMap
from redaction.restore import StreamRestorer, restore_text
from redaction.walker import WalkRules, map_strings

_NUMERIC_PARAMETERS = frozenset(
    {"seed", "max_tokens", "n", "temperature", "top_p", "logprobs", "best_of", "frequency_penalty",
     "presence_penalty", "logit_bias", "dimensions", "created", "index"}
)  # fmt: skip

EMBEDDINGS_RULES = WalkRules(
    structural_keys=frozenset({"model", "encoding_format", "object", "embedding"}) | _NUMERIC_PARAMETERS,
)

COMPLETIONS_RULES = WalkRules(
    structural_keys=frozenset({"model", "object", "id", "finish_reason", "system_fingerprint"}) | _NUMERIC_PARAMETERS,
    free_form_keys=frozenset({"metadata"}),
)

# The generic walk for operator-allowed paths: every string but the model name is text.
GENERIC_RULES = WalkRules(structural_keys=frozenset({"model"}), free_form_keys=frozenset({"metadata"}))


def _restore_all(rules: WalkRules):
    def restore(body: Any, mapping: PlaceholderMap, request: dict[str, Any]) -> Any:
        return map_strings(body, rules, lambda text, key: restore_text(text, mapping))

    return restore


class CompletionsEventRestorer:
    """Legacy completion chunks carry ``choices[i].text``: one restorer per choice."""

    def __init__(self, mapping: PlaceholderMap, request: dict[str, Any]) -> None:
        self._mapping = mapping
        self._restorers: dict[int, StreamRestorer] = {}
        self._template: dict[str, Any] = {}

    def restore(self, event: str | None, data: Any) -> list[Event]:
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            return [(event, map_strings(data, COMPLETIONS_RULES, lambda t, k: restore_text(t, self._mapping)))]
        self._template = {k: v for k, v in data.items() if k not in ("choices", "usage")}
        for position, choice in enumerate(data["choices"]):
            if not isinstance(choice, dict):
                continue
            index = choice.get("index") if isinstance(choice.get("index"), int) else position
            restorer = self._restorers.setdefault(index, StreamRestorer(self._mapping))
            if isinstance(choice.get("text"), str):
                choice["text"] = restorer.feed(choice["text"])
            if choice.get("finish_reason") is not None:
                choice["text"] = (choice.get("text") or "") + restorer.flush()
        return [(event, data)]

    def finish(self) -> list[Event]:
        choices = [
            {"index": index, "text": restorer.flush(), "finish_reason": None, "logprobs": None}
            for index, restorer in self._restorers.items()
            if restorer.holding
        ]
        return [(None, {**self._template, "choices": choices})] if choices else []


class GenericEventRestorer:
    """Operator-allowed paths: every event's strings restored as a whole (no split handling)."""

    def __init__(self, mapping: PlaceholderMap, request: dict[str, Any]) -> None:
        self._mapping = mapping

    def restore(self, event: str | None, data: Any) -> list[Event]:
        return [(event, map_strings(data, GENERIC_RULES, lambda t, k: restore_text(t, self._mapping)))]

    def finish(self) -> list[Event]:
        return []


EMBEDDINGS = ApiFormat("openai.embeddings", EMBEDDINGS_RULES, _restore_all(EMBEDDINGS_RULES))
COMPLETIONS = ApiFormat(
    "openai.completions", COMPLETIONS_RULES, _restore_all(COMPLETIONS_RULES), CompletionsEventRestorer, True
)
GENERIC = ApiFormat("generic", GENERIC_RULES, _restore_all(GENERIC_RULES), GenericEventRestorer, True)
