"""Recognizers that return early on texts where they cannot match must find, on every text,
exactly what Presidio's own recognizer finds."""

from __future__ import annotations

import random
import re

from presidio_analyzer.predefined_recognizers import UrlRecognizer

from redaction.recognizers import URL_NEEDS, url_recognizer_that_skips

PIECES = [
    "see ", "example.com", "https://www.example.org/path?q=1", "e.g. ", "end. Next", "a.b", "x.COM", "www.",
    "jane.roe@example.net", "'http://site.io'", "\"docs.python.org\"", "v2.4", "3.14", ".", " ", "ſ", "\u212a",
    "file.py", "Mr.Smith", "config.yaml", "shop.zw", "X.ZA", "https://a.com/x\x1cy", "site.com/p\u2003q", "\t",
    "\n", "..", "-", "/", "(", ")",
]  # fmt: skip


def spans(recognizer: UrlRecognizer, text: str) -> list[tuple[int, int, float]]:
    return sorted((r.start, r.end, r.score) for r in recognizer.analyze(text, ["URL"]))


def test_the_url_recognizer_that_skips_finds_what_presidios_finds():
    vanilla = UrlRecognizer(supported_language="en")
    skipping = url_recognizer_that_skips(UrlRecognizer)(supported_language="en", name=vanilla.name)
    rng = random.Random(7)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 10))) for _ in range(600)]
    skipped = 0
    for text in texts:
        assert spans(skipping, text) == spans(vanilla, text), text
        skipped += URL_NEEDS.search(text) is None
    assert 50 < skipped < 550  # both paths were exercised
    assert any(spans(vanilla, text) for text in texts)


def test_every_url_presidio_matches_has_a_dot_before_a_letter():
    """The skip's premise, read from Presidio's patterns: every pattern contains the base regex,
    whose dot before the top-level domain is required, and every top-level domain begins with a
    letter. If a Presidio upgrade changes this, this test fails."""
    base = UrlRecognizer.BASE_URL_REGEX
    assert all(base in pattern.regex for pattern in UrlRecognizer.PATTERNS)
    found = re.search(r"\{1,253\}\[\.\]\(\?:((?:\(\?:[^()]*\)\|?)+)\)(.)", base)
    assert found is not None, "the top-level domain group moved"
    top_level_domains = re.findall(r"\(\?:([^()]*)\)", found.group(1))
    assert len(top_level_domains) > 100
    assert all(tld[:1].isascii() and tld[:1].isalpha() for tld in top_level_domains)
    assert found.group(2) not in "?*{", "the top-level domain became optional"
