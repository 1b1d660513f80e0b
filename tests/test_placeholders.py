from redaction.placeholders import PLACEHOLDER_RE, PlaceholderMap, placeholders_in


def test_numbering_is_per_entity_type():
    mapping = PlaceholderMap()
    assert mapping.placeholder_for("Jane Roe", "PERSON") == "<PERSON_1>"
    assert mapping.placeholder_for("jane.roe@example.com", "EMAIL_ADDRESS") == "<EMAIL_ADDRESS_1>"
    assert mapping.placeholder_for("John Doe", "PERSON") == "<PERSON_2>"
    assert mapping.placeholder_for("555-0100", "PHONE_NUMBER") == "<PHONE_NUMBER_1>"
    assert mapping.placeholder_for("john.doe@example.com", "EMAIL_ADDRESS") == "<EMAIL_ADDRESS_2>"
    assert len(mapping) == 5


def test_same_value_gets_same_placeholder_regardless_of_case_and_whitespace():
    mapping = PlaceholderMap()
    first = mapping.placeholder_for("Jane Roe", "PERSON")
    for spelling in ("Jane Roe", "jane roe", "JANE ROE", "Jane  Roe", " Jane\nRoe\t", "Jane\u00a0Roe"):
        assert mapping.placeholder_for(spelling, "PERSON") == first, spelling
    assert len(mapping) == 1
    # the first spelling seen is the one restored
    assert mapping.original(first) == "Jane Roe"


def test_same_value_detected_under_another_type_keeps_its_placeholder():
    mapping = PlaceholderMap()
    assert mapping.placeholder_for("Jane Roe", "PERSON") == "<PERSON_1>"
    assert mapping.placeholder_for("Jane Roe", "SENSITIVE_TERM") == "<PERSON_1>"
    assert mapping.entity_counts() == {"PERSON": 1}


def test_different_values_get_different_placeholders():
    mapping = PlaceholderMap()
    assert mapping.placeholder_for("Jane Roe", "PERSON") != mapping.placeholder_for("Jane Roes", "PERSON")


def test_reserved_placeholders_are_skipped():
    mapping = PlaceholderMap(reserved={"<PERSON_1>", "<PERSON_2>", "<PERSON_4>", "<EMAIL_ADDRESS_1>"})
    assert mapping.placeholder_for("Jane Roe", "PERSON") == "<PERSON_3>"
    assert mapping.placeholder_for("John Doe", "PERSON") == "<PERSON_5>"
    assert mapping.placeholder_for("jane.roe@example.com", "EMAIL_ADDRESS") == "<EMAIL_ADDRESS_2>"
    assert mapping.placeholder_for("555-0100", "PHONE_NUMBER") == "<PHONE_NUMBER_1>"
    # a reserved placeholder is never restored into a value
    for reserved in ("<PERSON_1>", "<PERSON_2>", "<PERSON_4>", "<EMAIL_ADDRESS_1>"):
        assert mapping.original(reserved) is None


def test_placeholders_in_finds_tokens_to_reserve():
    texts = ["call <PERSON_1> or <US_SSN_12>", "nothing here", "<lower_1> <PERSON_> <PERSON_2>"]
    assert placeholders_in(texts) == {"<PERSON_1>", "<US_SSN_12>", "<PERSON_2>"}


def test_generated_placeholders_match_the_placeholder_pattern():
    mapping = PlaceholderMap()
    for entity in ("PERSON", "EMAIL_ADDRESS", "US_SSN", "IBAN_CODE", "SENSITIVE_TERM"):
        placeholder = mapping.placeholder_for(f"value of {entity}", entity)
        match = PLACEHOLDER_RE.fullmatch(placeholder)
        assert match is not None and match.group(1) == entity


def test_is_placeholder_prefix():
    mapping = PlaceholderMap()
    mapping.placeholder_for("Jane Roe", "PERSON")
    for prefix in ("<", "<P", "<PERSON", "<PERSON_", "<PERSON_1"):
        assert mapping.is_placeholder_prefix(prefix), prefix
    # a complete placeholder is not a *proper* prefix; other texts are not prefixes at all
    for text in ("", "<PERSON_1>", "<PERSON_2", "<EMAIL", "< ", "<person", "PERSON_1", "x<PERSON"):
        assert not mapping.is_placeholder_prefix(text), text


def test_is_placeholder_prefix_sees_placeholders_added_later():
    mapping = PlaceholderMap()
    mapping.placeholder_for("Jane Roe", "PERSON")
    assert not mapping.is_placeholder_prefix("<EMAIL_ADD")  # computes and caches the prefixes
    mapping.placeholder_for("jane.roe@example.com", "EMAIL_ADDRESS")
    assert mapping.is_placeholder_prefix("<EMAIL_ADD")
    assert mapping.is_placeholder_prefix("<PERSON_1")


def test_is_placeholder_prefix_of_an_empty_map():
    mapping = PlaceholderMap()
    assert not mapping.is_placeholder_prefix("<")
    assert not mapping


def test_entity_counts_count_distinct_values_per_type():
    mapping = PlaceholderMap()
    for value, entity in [
        ("Jane Roe", "PERSON"),
        ("jane roe", "PERSON"),
        ("John Doe", "PERSON"),
        ("jane.roe@example.com", "EMAIL_ADDRESS"),
        ("4111 1111 1111 1111", "CREDIT_CARD"),
    ]:
        mapping.placeholder_for(value, entity)
    counts = mapping.entity_counts()
    assert counts == {"PERSON": 2, "EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}
    assert "Jane Roe" not in repr(counts)
    assert PlaceholderMap().entity_counts() == {}


def _sample_map() -> PlaceholderMap:
    mapping = PlaceholderMap(reserved={"<PERSON_1>"})
    mapping.placeholder_for("Jane Roe", "PERSON")
    mapping.placeholder_for("jane.roe@example.com", "EMAIL_ADDRESS")
    mapping.placeholder_for('O\'Neil "JR" Roe\\Ré', "PERSON")
    return mapping


def test_to_dict_from_dict_round_trip():
    mapping = _sample_map()
    data = mapping.to_dict()
    assert data == {
        "<PERSON_2>": {"value": "Jane Roe", "type": "PERSON"},
        "<EMAIL_ADDRESS_1>": {"value": "jane.roe@example.com", "type": "EMAIL_ADDRESS"},
        "<PERSON_3>": {"value": 'O\'Neil "JR" Roe\\Ré', "type": "PERSON"},
    }
    restored = PlaceholderMap.from_dict(data)
    assert restored.to_dict() == data
    assert len(restored) == 3
    assert restored.entity_counts() == mapping.entity_counts()
    assert restored.original("<PERSON_3>") == 'O\'Neil "JR" Roe\\Ré'
    assert restored.known_values() == mapping.known_values()
    assert restored.is_placeholder_prefix("<EMAIL_ADDRESS_")
    # a known value (any spelling) maps to the same placeholder as before
    assert restored.placeholder_for("JANE  ROE", "PERSON") == "<PERSON_2>"
    assert len(restored) == 3


def test_map_restored_from_dict_never_reuses_a_placeholder_for_a_new_value():
    original = PlaceholderMap()
    original.placeholder_for("Jane Roe", "PERSON")
    restored = PlaceholderMap.from_dict(original.to_dict())
    new = restored.placeholder_for("John Doe", "PERSON")
    assert new != "<PERSON_1>"
    assert restored.original("<PERSON_1>") == "Jane Roe"
    assert restored.original(new) == "John Doe"
