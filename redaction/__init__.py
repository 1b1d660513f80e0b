"""Detection (Presidio), placeholders, restoration. Never imports proxy/ or storage/."""

from redaction.detector import DetectorConfig
from redaction.errors import DetectionTimeout, DetectorUnavailable, RedactionError, UninspectableContent
from redaction.openai_chat import CHAT_RULES, ChatStreamRestorer, restore_chat_response
from redaction.pipeline import Redaction, Redactor
from redaction.placeholders import PLACEHOLDER_RE, PlaceholderMap
from redaction.pool import DetectorPool
from redaction.pseudonymize import TermLists
from redaction.restore import StreamRestorer, restore_text
from redaction.spans import Span

__all__ = [
    "CHAT_RULES",
    "PLACEHOLDER_RE",
    "ChatStreamRestorer",
    "DetectionTimeout",
    "DetectorConfig",
    "DetectorPool",
    "DetectorUnavailable",
    "PlaceholderMap",
    "Redaction",
    "RedactionError",
    "Redactor",
    "Span",
    "StreamRestorer",
    "TermLists",
    "UninspectableContent",
    "restore_chat_response",
    "restore_text",
]
