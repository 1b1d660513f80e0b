"""Detection (Presidio), placeholders, restoration. Never imports proxy/ or storage/."""

from redaction.anthropic import MESSAGES
from redaction.api_format import ApiFormat, EventRestorer
from redaction.detector import DetectorConfig
from redaction.errors import DetectionTimeout, DetectorUnavailable, RedactionError, TooMuchText, UninspectableContent
from redaction.openai_chat import CHAT, CHAT_RULES, ChatStreamRestorer, answers_in_json, restore_chat_response
from redaction.openai_misc import COMPLETIONS, EMBEDDINGS, GENERIC
from redaction.openai_responses import RESPONSES
from redaction.pipeline import Redaction, Redactor, json_bytes
from redaction.placeholders import PLACEHOLDER_RE, PlaceholderMap, PlaceholderStore
from redaction.pool import DetectorPool, NoDetector
from redaction.pseudonymize import TermLists
from redaction.response_guard import STRUCTURED_TYPES, AnswerBlocked, ResponsePolicy, StreamGuard, redact_values
from redaction.response_ner import ResponseDetector
from redaction.restore import StreamRestorer, restore_text
from redaction.spans import Span
from redaction.vault import PlaceholderVault

__all__ = [
    "CHAT",
    "CHAT_RULES",
    "COMPLETIONS",
    "EMBEDDINGS",
    "GENERIC",
    "MESSAGES",
    "PLACEHOLDER_RE",
    "RESPONSES",
    "STRUCTURED_TYPES",
    "AnswerBlocked",
    "ApiFormat",
    "ChatStreamRestorer",
    "DetectionTimeout",
    "DetectorConfig",
    "DetectorPool",
    "DetectorUnavailable",
    "EventRestorer",
    "NoDetector",
    "PlaceholderMap",
    "PlaceholderStore",
    "PlaceholderVault",
    "Redaction",
    "RedactionError",
    "Redactor",
    "ResponseDetector",
    "ResponsePolicy",
    "Span",
    "StreamGuard",
    "StreamRestorer",
    "TermLists",
    "TooMuchText",
    "UninspectableContent",
    "answers_in_json",
    "json_bytes",
    "redact_values",
    "restore_chat_response",
    "restore_text",
]
