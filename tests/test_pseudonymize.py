import re

from redaction.placeholders import PLACEHOLDER_RE, PlaceholderMap, placeholders_in
from redaction.pseudonymize import DENY_LIST_ENTITY, Pseudonymizer, TermLists
from redaction.spans import Span, resolve_overlaps


def span_of(text: str, value: str, entity: str, score: float = 0.85, occurrence: int = 0) -> Span:
    """The span of the ``occurrence``-th appearance of ``value`` in ``text``."""
    starts = [m.start() for m in re.finditer(re.escape(value), text)]
    start = starts[occurrence]
    return Span(start, start + len(value), entity, score)


def no_stray_fragments(text: str) -> bool:
    """Every '<' and '>' of a sanitised text belongs to a well-formed placeholder."""
    rest = PLACEHOLDER_RE.sub("", text)
    return "<" not in rest and ">" not in rest


def run(texts, spans, terms=None, mapping=None):
    mapping = mapping if mapping is not None else PlaceholderMap()
    result = Pseudonymizer(terms or TermLists()).apply(texts, spans, mapping)
    return result, mapping


def test_single_value_is_replaced():
    text = "My name is Jane Roe, thanks."
    [out], mapping = run([text], [[span_of(text, "Jane Roe", "PERSON")]])
    assert out == "My name is <PERSON_1>, thanks."
    assert mapping.original("<PERSON_1>") == "Jane Roe"


def test_email_containing_url_gives_one_email_placeholder():
    text = "Write to jane.roe@example.com today"
    spans = [
        span_of(text, "example.com", "URL", 0.5),
        span_of(text, "jane.roe@example.com", "EMAIL_ADDRESS", 1.0),
    ]
    [out], mapping = run([text], [spans])
    assert out == "Write to <EMAIL_ADDRESS_1> today"
    assert mapping.to_dict() == {"<EMAIL_ADDRESS_1>": {"value": "jane.roe@example.com", "type": "EMAIL_ADDRESS"}}


def test_partially_overlapping_spans_are_replaced_by_their_union():
    text = "SSN 123-45-6789 and card 4111 1111 1111 1111 end"
    card = span_of(text, "4111 1111 1111 1111", "CREDIT_CARD", 1.0)
    ssn = span_of(text, "123-45-6789", "US_SSN", 0.85)
    # a date-like detection reaching from the SSN into the card text
    straddling = Span(ssn.start + 4, card.start + 9, "DATE_TIME", 0.6)
    [out], mapping = run([text], [[card, straddling, ssn]])
    assert no_stray_fragments(out)
    # the union takes the type of its strongest member (the card, score 1.0)
    assert out == "SSN <CREDIT_CARD_1> end"
    assert mapping.original("<CREDIT_CARD_1>") == text[ssn.start : card.end]
    assert "123-45-6789" not in out and "4111" not in out and "1111" not in out


def test_overlaps_never_leave_mangled_placeholders():
    text = "id 123-45-6789 mail jane.roe@example.com site www.example.com"
    spans = [
        span_of(text, "123-45-6789", "US_SSN", 0.85),
        span_of(text, "45-6789", "PHONE_NUMBER", 0.4),
        span_of(text, "jane.roe@example.com", "EMAIL_ADDRESS", 1.0),
        span_of(text, "example.com", "URL", 0.5, occurrence=0),
        span_of(text, "roe@example", "PERSON", 0.3),
        span_of(text, "www.example.com", "URL", 0.5),
    ]
    [out], _ = run([text], [spans])
    assert no_stray_fragments(out), out
    assert out == "id <US_SSN_1> mail <EMAIL_ADDRESS_1> site <URL_1>"


def test_resolve_overlaps_union_takes_type_of_strongest_member():
    merged = resolve_overlaps([Span(5, 20, "URL", 0.5), Span(0, 25, "EMAIL_ADDRESS", 1.0), Span(30, 35, "PERSON", 0.8)])
    assert merged == [Span(0, 25, "EMAIL_ADDRESS", 1.0), Span(30, 35, "PERSON", 0.8)]
    # equal scores: the longer span wins; touching spans are not merged
    assert resolve_overlaps([Span(0, 4, "A", 0.5), Span(2, 10, "B", 0.5), Span(10, 12, "C", 0.5)]) == [
        Span(0, 10, "B", 0.5),
        Span(10, 12, "C", 0.5),
    ]


def test_allow_list_keeps_value_in_clear():
    text = "Jane Roe works at Acme Example Corp."
    spans = [span_of(text, "Jane Roe", "PERSON"), span_of(text, "Acme Example Corp", "ORGANIZATION")]
    terms = TermLists.build(allow=["acme  example CORP"])
    [out], mapping = run([text], [spans], terms)
    assert out == "<PERSON_1> works at Acme Example Corp."
    assert "Acme Example Corp" not in mapping.known_values()


def test_allow_listed_value_is_not_propagated_to_other_texts():
    first, second = "Acme Example Corp called.", "About Acme Example Corp and Jane Roe"
    spans = [[span_of(first, "Acme Example Corp", "ORGANIZATION")], [span_of(second, "Jane Roe", "PERSON")]]
    out, _ = run([first, second], spans, TermLists.build(allow=["Acme Example Corp"]))
    assert out == [first, "About Acme Example Corp and <PERSON_1>"]


def test_deny_list_is_case_insensitive_and_word_bounded():
    text = "Project FALCON and project  falcon\nlaunch; falconry, projectfalcon, Project Falcon2 stay."
    terms = TermLists.build(deny=["Project Falcon"])
    [out], mapping = run([text], [[]], terms)
    assert out == "<SENSITIVE_TERM_1> and <SENSITIVE_TERM_1>\nlaunch; falconry, projectfalcon, Project Falcon2 stay."
    assert mapping.entity_counts() == {DENY_LIST_ENTITY: 1}
    assert mapping.original("<SENSITIVE_TERM_1>") == "Project FALCON"


def test_deny_list_terms_with_regex_characters_and_longest_first():
    text = "Budget for Falcon Labs and Falcon (C++ Ops)"
    terms = TermLists.build(deny=["Falcon", "Falcon Labs", "C++ Ops"])
    [out], mapping = run([text], [[]], terms)
    assert out == "Budget for <SENSITIVE_TERM_1> and <SENSITIVE_TERM_2> (<SENSITIVE_TERM_3>)"
    assert mapping.original("<SENSITIVE_TERM_1>") == "Falcon Labs"
    assert mapping.original("<SENSITIVE_TERM_3>") == "C++ Ops"


def test_deny_list_overlapping_a_detection_is_merged():
    text = "Contact Jane Roe Foundation now"
    terms = TermLists.build(deny=["Roe Foundation"])
    [out], _ = run([text], [[span_of(text, "Jane Roe", "PERSON", 0.85)]], terms)
    assert no_stray_fragments(out)
    assert out == "Contact <SENSITIVE_TERM_1> now"


def test_value_found_in_one_text_is_replaced_in_every_other_text():
    texts = [
        "Hello, I am Jane Roe (jane.roe@example.com).",
        "jane roe",  # a bare name field: the detector found nothing here
        '{"to": "JANE.ROE@EXAMPLE.COM", "name": "Jane  Roe"}',
        "Janet and Roe stay; so does Jane Roes.",
    ]
    spans = [
        [span_of(texts[0], "Jane Roe", "PERSON"), span_of(texts[0], "jane.roe@example.com", "EMAIL_ADDRESS", 1.0)],
        [],
        [],
        [],
    ]
    out, mapping = run(texts, spans)
    assert out == [
        "Hello, I am <PERSON_1> (<EMAIL_ADDRESS_1>).",
        "<PERSON_1>",
        '{"to": "<EMAIL_ADDRESS_1>", "name": "<PERSON_1>"}',
        texts[3],
    ]
    assert len(mapping) == 2


def test_value_found_later_is_also_replaced_in_earlier_texts():
    texts = ["Notes about Jane Roe.", "Customer: Jane Roe, card 4111 1111 1111 1111"]
    spans = [[], [span_of(texts[1], "Jane Roe", "PERSON"), span_of(texts[1], "4111 1111 1111 1111", "CREDIT_CARD")]]
    out, _ = run(texts, spans)
    assert out == ["Notes about <PERSON_1>.", "Customer: <PERSON_1>, card <CREDIT_CARD_1>"]


def test_undetected_repeat_in_same_text_is_replaced():
    text = "Jane Roe wrote; later jane roe replied."
    [out], _ = run([text], [[span_of(text, "Jane Roe", "PERSON")]])
    assert out == "<PERSON_1> wrote; later <PERSON_1> replied."


def test_values_shorter_than_three_characters_are_not_propagated():
    texts = ["Ask Al about it.", "Al, Alice and Sal are here. Al."]
    [first, second], mapping = run(texts, [[span_of(texts[0], "Al", "PERSON")], []])
    assert first == "Ask <PERSON_1> about it."
    assert second == texts[1]
    assert mapping.original("<PERSON_1>") == "Al"


def test_three_character_values_are_propagated_word_bounded():
    texts = ["Ask Ann about it.", "Ann, Anna and Joanne."]
    out, _ = run(texts, [[span_of(texts[0], "Ann", "PERSON")], []])
    assert out == ["Ask <PERSON_1> about it.", "<PERSON_1>, Anna and Joanne."]


def test_propagation_keeps_literal_placeholders_of_the_client_intact():
    texts = ["Template: Dear <PERSON_1>, your SSN <US_SSN_3>", "Real: Jane Roe, SSN 123-45-6789"]
    mapping = PlaceholderMap(reserved=placeholders_in(texts))
    spans = [[], [span_of(texts[1], "Jane Roe", "PERSON"), span_of(texts[1], "123-45-6789", "US_SSN")]]
    out, _ = run(texts, spans, mapping=mapping)
    assert out[0] == texts[0]
    assert out[1] == "Real: <PERSON_2>, SSN <US_SSN_1>"
    assert mapping.original("<PERSON_1>") is None


def test_empty_input():
    out, mapping = run([], [])
    assert out == [] and not mapping
    out, mapping = run(["", "plain text"], [[], []])
    assert out == ["", "plain text"] and not mapping


def test_known_values_are_found_by_their_first_word_whatever_their_shape():
    from redaction import PlaceholderMap

    mapping = PlaceholderMap()
    phone = mapping.placeholder_for("+1 212 555 0147", "PHONE_NUMBER")
    email = mapping.placeholder_for("jane.roe@example.com", "EMAIL_ADDRESS")
    [out] = Pseudonymizer().apply(["call +1  212 555 0147 or mail_JANE.ROE@example.com, not jane.roes"], [[]], mapping)
    assert out == f"call {phone} or mail_{email}, not jane.roes"
