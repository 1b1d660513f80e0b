"""Synthetic texts for detection quality and speed: every value here is made up.

Used by the equivalence test (the lean detector finds what the full pipeline finds) and by the
detection micro-benchmark (bench/detection.py), so both measure the same texts.
"""

from __future__ import annotations

CORPUS: tuple[str, ...] = (
    "Please send the contract to Jane Roe at jane.roe@example.com before Friday.",
    "Call John Smith on +1 212 555 0147 or his office line (415) 555-0199.",
    "My phone number is 020 7946 0958 and my colleague's is +44 20 7946 0321.",
    "Card on file: 4111 1111 1111 1111, expiry 09/29. Backup card 5500 0000 0000 0004.",
    "Wire the refund to IBAN GB82 WEST 1234 5698 7654 32, reference INV-2291.",
    "His SSN is 078-05-1120 and his passport number is 912803456.",
    "The server at 192.168.10.24 forwards to 203.0.113.77; see https://intranet.example.org/runbook.",
    "Maria Garcia moved from Madrid to Lisbon last year and now works in Porto.",
    "Dr. Emily Chen will see Mr. Robert Brown at the clinic in Seattle on Monday.",
    "Ask Priya Patel (priya.patel@example.net) to review the pull request by Thursday.",
    "Hi team, the quarterly numbers are attached. No names or numbers here, just a summary of the plan.",
    "def send(user):\n    return mail(to='ops@example.com', subject='Alert for Tom Baker')\n",
    "Customer: Liam O'Connor, 42 Elm Street, Springfield. Phone: 555-0188. Email: liam.oconnor@example.org",
    "The meeting with Sarah Johnson and Ahmed Khan is in Berlin, room 4.12, at 10:30.",
    "Driver licence D1234567 belongs to Kevin Nguyen, who lives in Austin, Texas.",
    "Transfer 250 EUR to DE89 3704 0044 0532 0130 00 for Anna Schmidt.",
    "Log line: user=jdoe ip=10.0.0.5 ts=2026-11-26T07:15:00Z status=200 bytes=5120",
    "Contact our support at support@example.com or +33 1 42 68 53 00 during office hours.",
    "We met Oliver Wright and Chloe Martin in Paris; Chloe's number is 06 12 34 56 78.",
    "Tracking numbers 1Z999AA10123456784 and 9400 1000 0000 0000 0000 00 are not personal.",
    "Patient Mark Thompson, born 1980-04-12, MRN 004512, was referred by Dr. Laura Wilson.",
    "Order #10293 for Grace Lee ships to 1600 Amphitheatre Parkway, Mountain View, CA 94043.",
    "Please call me at 212.555.0123 tomorrow morning, thanks, Daniel.",
    "Version 3.8.0 of the package fixes bug 4711; see ticket ABC-1234 and commit 9f8e7d6.",
    "Her new address is 221B Baker Street, London NW1 6XE, and her mobile is 07700 900123.",
    "My number is 030\u201312\u201334\u201356, call me; the office is on 089\u2013123\u201345\u201367.",
)


def long_text(size: int) -> str:
    """About ``size`` characters made of corpus sentences (for the 200 B / 2 KB / 20 KB benchmarks)."""
    text, index = "", 0
    while len(text) < size:
        text += CORPUS[index % len(CORPUS)] + " "
        index += 1
    return text[:size]


FILLER = (
    "The quarterly infrastructure review covers the migration of the build pipeline to the new "
    "cluster, the retirement of the legacy queue, and the capacity plan for the next release. "
)
PII = (
    "Please update the account of Jane Roe (jane.roe@example.com, +1 212 555 0147). "
    "Her card 4111 1111 1111 1111 was replaced; IBAN DE89 3704 0044 0532 0130 00 stays. "
)


def prompt(size: int, with_pii: bool = True) -> str:
    """A business prompt of ``size`` characters: the PII sentences (if any), then prose."""
    text = (PII if with_pii else "") + FILLER * (size // len(FILLER) + 1)
    return text[:size]


def conversation(turns: int) -> list[list[dict[str, str]]]:
    """The message lists an agent sends on turns 1..``turns``: each resends the whole history."""
    history: list[dict[str, str]] = []
    sent = []
    for turn in range(turns):
        history.append({"role": "user", "content": CORPUS[turn % len(CORPUS)] + " " + FILLER})
        sent.append(list(history))
        history.append({"role": "assistant", "content": f"Noted, step {turn + 1} done. " + FILLER})
    return sent
