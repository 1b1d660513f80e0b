"""The spaCy side of detection, with only what Presidio's results depend on.

Presidio needs two things from spaCy: named entities (PERSON, LOCATION...) and, for context
scoring ("phone" near a number raises its score), the lemma of each token. The small English
model computes entities with its own embedding layer, so the tagger, parser, attribute ruler,
lemmatizer and shared tok2vec can go; lower-cased words stand in for lemmas. On the test
corpus this gives the same findings as the full pipeline (``tests/test_detector_equivalence``)
for about half the spaCy time.
"""

from __future__ import annotations

import bisect
import os
from typing import TYPE_CHECKING

from redaction.errors import DetectorUnavailable

if TYPE_CHECKING:
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from spacy.language import Language
    from spacy.tokens import Doc

# components whose output no Presidio recognizer reads (the lemmatizer's is replaced below)
UNUSED_COMPONENTS = ("parser", "tagger", "attribute_ruler", "lemmatizer", "senter", "morphologizer")


def load_lean_spacy(model: str) -> Language:
    import spacy

    if not (spacy.util.is_package(model) or os.path.isdir(model)):
        # Presidio would try to download it: we never download anything at run time.
        raise DetectorUnavailable(f"spaCy model {model!r} is not installed (pip install it, or set spacy_model)")
    nlp = spacy.load(model, exclude=list(UNUSED_COMPONENTS))
    if "tok2vec" in nlp.pipe_names and not getattr(nlp.get_pipe("tok2vec"), "listening_components", ()):
        nlp.remove_pipe("tok2vec")  # nobody left listens to the shared embedding
    use_numpy_matmul(nlp)
    return nlp


def use_numpy_matmul(nlp: Language) -> None:
    """Matrix products through numpy (OpenBLAS, one thread per worker) instead of thinc's bundled
    BLIS: on these machines BLIS's kernel is 3-4x slower, and the NER's network is a fifth of its
    time (2 KB: 55 -> 45 ms; a short prompt 3.8 -> 2.9 ms). Same entities on the test corpus
    (``tests/test_detector_equivalence``): only the order of float additions can differ."""
    from thinc.api import NumpyOps

    ops = NumpyOps(use_blis=False)
    for _name, component in nlp.pipeline:
        model = getattr(component, "model", None)
        if model is not None:
            for node in model.walk():
                node.ops = ops


def lean_nlp_engine_class():
    """SpacyNlpEngine whose artifacts carry lower-cased words where lemmas are missing."""
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine

    class LeanSpacyNlpEngine(SpacyNlpEngine):
        def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
            """Presidio's artifacts, built in one pass over the tokens (Presidio's own makes two,
            and setting each token's lemma a third: ~8 ms of a 2 KB text's 70)."""
            lemmas, indices = [], []
            for token in doc:
                lemmas.append(token.lemma_ or token.lower_)
                indices.append(token.idx)
            entities, scores = self._get_updated_entities(self._get_entities(doc), self._get_scores_for_entities(doc))
            return NlpArtifacts(
                entities=entities, tokens=doc, tokens_indices=indices, lemmas=lemmas, nlp_engine=self,
                language=language, scores=scores,
            )  # fmt: skip

    return LeanSpacyNlpEngine


def fast_context_enhancer():
    """Presidio's lemma context enhancer, finding a match's token by bisection.

    The original scans every token of the text for every result (results x tokens: 69 ms at
    20 KB); token end offsets are increasing, so the first token ending after the match start is
    found by ``bisect`` with the same answer.
    """
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    class FastLemmaContextAwareEnhancer(LemmaContextAwareEnhancer):
        @staticmethod
        def _find_index_of_match_token(word: str, start: int, tokens, tokens_indices: list[int]) -> int:
            ends = tokens.user_data.get("privacy_proxy_token_ends") if hasattr(tokens, "user_data") else None
            if ends is None:
                ends = [index + len(token) for index, token in zip(tokens_indices, tokens, strict=False)]
                if hasattr(tokens, "user_data"):
                    tokens.user_data["privacy_proxy_token_ends"] = ends
            position = bisect.bisect_right(ends, start)
            if position >= len(ends):
                raise ValueError("a match lies outside the tokens")  # as the original: never expected
            return position

    return FastLemmaContextAwareEnhancer()
