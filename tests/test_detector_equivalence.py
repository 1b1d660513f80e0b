"""The fast detector finds what the full Presidio pipeline finds, on the synthetic corpus.

The lean configuration (NER only, lower-cased words as lemmas, phone matching in digit windows,
bisecting context lookup) and the splitting of long texts among workers are speed-ups: they
must not change a single finding.
"""

from __future__ import annotations

import pytest

from redaction import DetectorConfig
from redaction.detector import Detector
from redaction.spans import resolve_overlaps
from redaction.work_split import plan
from tests.corpus import CORPUS, long_text

TEXTS = [*CORPUS, long_text(2048), long_text(6000)]


@pytest.fixture(scope="module")
def lean() -> Detector:
    return Detector(DetectorConfig())


@pytest.fixture(scope="module")
def reference() -> Detector:
    return Detector(DetectorConfig(lean=False))


def test_lean_configuration_finds_exactly_what_the_full_pipeline_finds(lean: Detector, reference: Detector):
    for text in TEXTS:
        assert lean.analyze([text]) == reference.analyze([text]), text[:80]


def test_texts_analysed_together_give_what_each_gives_alone(lean: Detector, reference: Detector):
    """Concurrent requests share one ``nlp.pipe`` batch: batching must not change a finding."""
    together = lean.analyze(TEXTS)
    assert together == [lean.analyze([text])[0] for text in TEXTS]
    assert together == reference.analyze(TEXTS)


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_a_text_shared_among_workers_loses_no_value(lean: Detector, workers: int):
    """Pieces start at a sentence and overlap: every value found in the whole text is found
    (NER may see a sentence differently at a piece start and find more, never less)."""
    texts = [long_text(6000), CORPUS[0], long_text(2500)]
    work = plan(texts, workers)
    assert len(work.jobs) == workers  # the long texts really were cut
    split = work.merge([lean.analyze([piece.text for piece in job]) for job in work.jobs], len(texts))
    whole = lean.analyze(texts)
    for text, from_pieces, from_whole in zip(texts, split, whole, strict=True):
        covered = resolve_overlaps(from_pieces)
        for span in resolve_overlaps(from_whole):
            assert any(c.start <= span.start and span.end <= c.end for c in covered), text[span.start : span.end]


def test_a_text_without_whitespace_is_not_cut():
    blob = '{"k":"' + "x" * 3000 + '"}'
    work = plan([blob], 2)
    assert [[(p.offset, len(p.text)) for p in job] for job in work.jobs] == [[(0, len(blob))]]
