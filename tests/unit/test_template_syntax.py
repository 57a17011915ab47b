"""Unit tests for the OpenNebula template language: parse, render, JSON input, limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecloud.server.errors import InvalidInput
from edgecloud.server.services.template_syntax import (
    MAX_ATTRIBUTES,
    MAX_TEMPLATE_BYTES,
    MULTI_VALUED,
    TemplateSyntaxError,
    parse_json_template,
    parse_template,
    render_template,
)

pytestmark = pytest.mark.unit

EXAMPLE = """\
NAME = "web"           # comment
CPU = 0.5
MEMORY=1024
DISK = [ IMAGE_ID = 3, SIZE = 1024 ]
DISK = [ IMAGE = "ubuntu", IMAGE_UNAME = "oneadmin" ]
NIC = [ NETWORK_ID = 0 ]
CONTEXT = [ SSH_PUBLIC_KEY = "$USER[SSH_PUBLIC_KEY]", START_SCRIPT = "echo \\"hi\\"
second line" ]
SCHED_REQUIREMENTS = "FREE_CPU > 60 & HYPERVISOR = kvm"
"""


def syntax_error(text: str) -> TemplateSyntaxError:
    with pytest.raises(TemplateSyntaxError) as caught:
        parse_template(text)
    return caught.value


def invalid_json(data: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_json_template(data)
    return caught.value


# --- parse_template: what it accepts --------------------------------------------------


def test_parse_template_reads_the_documented_example() -> None:
    assert parse_template(EXAMPLE) == {
        "NAME": "web",
        "CPU": "0.5",
        "MEMORY": "1024",
        "DISK": [
            {"IMAGE_ID": "3", "SIZE": "1024"},
            {"IMAGE": "ubuntu", "IMAGE_UNAME": "oneadmin"},
        ],
        "NIC": [{"NETWORK_ID": "0"}],
        "CONTEXT": {
            "SSH_PUBLIC_KEY": "$USER[SSH_PUBLIC_KEY]",
            "START_SCRIPT": 'echo "hi"\nsecond line',
        },
        "SCHED_REQUIREMENTS": "FREE_CPU > 60 & HYPERVISOR = kvm",
    }


def test_parse_template_keeps_attribute_order() -> None:
    assert list(parse_template("B = 1\nA = 2\nC = 3")) == ["B", "A", "C"]


def test_parse_template_upper_cases_keys() -> None:
    assert parse_template("cpu = 1\nDisk = [ image_id = 2 ]\nmy-attr_1 = x") == {
        "CPU": "1",
        "DISK": [{"IMAGE_ID": "2"}],
        "MY-ATTR_1": "x",
    }


def test_parse_template_returns_empty_dict_for_blank_text() -> None:
    assert parse_template("") == {}
    assert parse_template("\n  \n# only a comment\n\t\n") == {}


def test_parse_template_skips_comments_everywhere_outside_strings() -> None:
    text = "# head\nA = 1 # after a value\nV = [ # after '['\n  K = 2, # after ','\n  L = 3 ]\n"
    assert parse_template(text) == {"A": "1", "V": {"K": "2", "L": "3"}}


def test_parse_template_keeps_hash_inside_strings() -> None:
    assert parse_template('A = "x # not a comment"') == {"A": "x # not a comment"}


def test_parse_template_ends_bare_words_at_a_comment() -> None:
    assert parse_template("A = 0.5#c") == {"A": "0.5"}


def test_parse_template_reads_multi_line_strings() -> None:
    text = 'SCRIPT = "line one\n  line two\n"\nNEXT = 1'
    assert parse_template(text) == {"SCRIPT": "line one\n  line two\n", "NEXT": "1"}


def test_parse_template_unescapes_quote_and_backslash() -> None:
    assert parse_template(r'A = "say \"hi\" \\ done"') == {"A": 'say "hi" \\ done'}


def test_parse_template_keeps_other_backslashes_as_written() -> None:
    assert parse_template(r'A = "sed s/\s//; \n"') == {"A": r"sed s/\s//; \n"}


def test_parse_template_reads_empty_quoted_string() -> None:
    assert parse_template('A = ""') == {"A": ""}


def test_parse_template_reads_multi_line_vector() -> None:
    text = "DISK = [\n  IMAGE_ID = 3,\n  SIZE = 1024\n]\n"
    assert parse_template(text) == {"DISK": [{"IMAGE_ID": "3", "SIZE": "1024"}]}


def test_parse_template_turns_repeated_keys_into_a_list() -> None:
    text = "A = 1\nB = x\nA = [ K = v ]\nA = 3"
    assert parse_template(text) == {"A": ["1", {"K": "v"}, "3"], "B": "x"}


@pytest.mark.parametrize("key", sorted(MULTI_VALUED))
def test_parse_template_makes_multi_valued_keys_lists_even_once(key: str) -> None:
    assert parse_template(f"{key} = [ ID = 1 ]") == {key: [{"ID": "1"}]}


def test_parse_template_allows_several_attributes_on_one_line() -> None:
    assert parse_template('A = 1 B = "2"') == {"A": "1", "B": "2"}


def test_parse_template_accepts_crlf_line_ends() -> None:
    assert parse_template("A = 1\r\nB = [ K = 2,\r\n L = 3 ]\r\n") == {
        "A": "1",
        "B": {"K": "2", "L": "3"},
    }


# --- parse_template: errors and where they are --------------------------------------


def test_template_syntax_error_formats_line_and_column() -> None:
    error = TemplateSyntaxError(3, 9, "expected '=' after 'CPU'")
    assert str(error) == "line 3, column 9: expected '=' after 'CPU'"
    assert (error.line, error.column, error.reason) == (3, 9, "expected '=' after 'CPU'")
    assert isinstance(error, ValueError)


def test_parse_template_reports_missing_equals() -> None:
    error = syntax_error('NAME = "a"\n\n    CPU 0.5')
    assert (error.line, error.column) == (3, 9)
    assert str(error) == "line 3, column 9: expected '=' after 'CPU'"


def test_parse_template_reports_missing_closing_bracket() -> None:
    error = syntax_error("A = 1\nDISK = [ IMAGE_ID = 3\nNIC = [ NETWORK_ID = 0 ]")
    assert (error.line, error.column) == (3, 1)
    assert error.reason == "expected ',' or ']' in vector 'DISK' (opened at line 2, column 8)"


def test_parse_template_reports_missing_closing_bracket_at_the_end() -> None:
    error = syntax_error("DISK = [ IMAGE_ID = 3,\n  SIZE = 1")
    assert (error.line, error.column) == (2, 11)
    assert "in vector 'DISK'" in error.reason


def test_parse_template_reports_unterminated_string_where_it_starts() -> None:
    error = syntax_error('A = 1\nSCRIPT = "echo\nmore\nlines')
    assert (error.line, error.column) == (2, 10)
    assert "unterminated string" in error.reason


def test_parse_template_reports_string_ending_in_escaped_quote_as_unterminated() -> None:
    error = syntax_error('A = "abc\\"')
    assert (error.line, error.column) == (1, 5)


def test_parse_template_reports_missing_value() -> None:
    error = syntax_error("A = \nB = 1")
    assert (error.line, error.column) == (1, 5)
    assert error.reason == "expected a value after 'A ='"


def test_parse_template_reports_missing_key() -> None:
    error = syntax_error("A = 1\n  = 2")
    assert (error.line, error.column, error.reason) == (2, 3, "expected an attribute name")


def test_parse_template_refuses_repeated_key_inside_a_vector() -> None:
    error = syntax_error("DISK = [ SIZE = 1,\n SIZE = 2 ]")
    assert (error.line, error.column) == (2, 2)
    assert error.reason == "key 'SIZE' repeated in vector 'DISK'"


def test_parse_template_treats_vector_keys_case_insensitively_when_repeated() -> None:
    assert syntax_error("V = [ a = 1, A = 2 ]").reason == "key 'A' repeated in vector 'V'"


def test_parse_template_refuses_nested_vectors() -> None:
    error = syntax_error("A = [ B = [ C = 1 ] ]")
    assert (error.line, error.column) == (1, 11)
    assert "cannot nest" in error.reason


def test_parse_template_refuses_empty_vector() -> None:
    error = syntax_error("CONTEXT = [ ]")
    assert (error.line, error.column) == (1, 13)
    assert error.reason == "expected an attribute name in vector 'CONTEXT'"


def test_parse_template_refuses_trailing_comma_in_vector() -> None:
    assert syntax_error("A = [ B = 1, ]").column == 14


def test_parse_template_refuses_stray_closing_bracket() -> None:
    assert syntax_error("A = 1 ]").column == 7


@pytest.mark.parametrize("text", ["A = x\0y", 'A = "x\0"', "# \0\n", "A = [ B = \0 ]"])
def test_parse_template_refuses_nul_characters(text: str) -> None:
    error = syntax_error(text)
    assert error.reason == "NUL character not allowed"
    assert error.column == text.index("\0") + 1


def test_parse_template_refuses_text_over_one_mib() -> None:
    text = 'A = "' + "x" * MAX_TEMPLATE_BYTES + '"'
    assert "larger than" in syntax_error(text).reason


def test_parse_template_measures_size_in_utf8_bytes() -> None:
    text = 'A = "' + "é" * (MAX_TEMPLATE_BYTES // 2) + '"'
    assert len(text) < MAX_TEMPLATE_BYTES
    assert "larger than" in syntax_error(text).reason


def test_parse_template_accepts_text_at_the_size_limit() -> None:
    text = 'A = "' + "x" * (MAX_TEMPLATE_BYTES - 6) + '"'
    assert len(text) == MAX_TEMPLATE_BYTES
    assert len(parse_template(text)["A"]) == MAX_TEMPLATE_BYTES - 6


def test_parse_template_refuses_too_many_attributes() -> None:
    text = "A = 1\n" * MAX_ATTRIBUTES + "B = 2\n"
    error = syntax_error(text)
    assert (error.line, error.column) == (MAX_ATTRIBUTES + 1, 1)
    assert "more than" in error.reason


def test_parse_template_counts_vector_keys_against_the_attribute_limit() -> None:
    pairs = ", ".join(f"K{i} = 1" for i in range(MAX_ATTRIBUTES))
    assert "more than" in syntax_error(f"V = [ {pairs} ]").reason


def test_parse_template_accepts_exactly_the_attribute_limit() -> None:
    assert len(parse_template("A = 1\n" * MAX_ATTRIBUTES)["A"]) == MAX_ATTRIBUTES


def test_parse_template_refuses_long_keys() -> None:
    error = syntax_error("A = 1\n" + "K" * 129 + " = 1")
    assert (error.line, error.column) == (2, 1)
    assert "longer than 128" in error.reason
    assert parse_template("K" * 128 + " = 1") == {"K" * 128: "1"}


@given(st.text(max_size=200))
def test_parse_template_raises_only_syntax_errors(text: str) -> None:
    error: TemplateSyntaxError | None = None
    try:
        parse_template(text)
    except TemplateSyntaxError as caught:
        error = caught
    if error is not None:
        assert 1 <= error.line <= text.count("\n") + 1
        assert error.column >= 1


# --- render_template ------------------------------------------------------------------


def test_render_template_round_trips_the_example() -> None:
    attrs = parse_template(EXAMPLE)
    assert parse_template(render_template(attrs)) == attrs


def test_render_template_quotes_and_escapes_values() -> None:
    assert render_template({"A": 'a "b" \\c'}) == 'A = "a \\"b\\" \\\\c"\n'


def test_render_template_writes_one_line_per_list_item() -> None:
    text = render_template({"NIC": [{"NETWORK_ID": "0"}, {"NETWORK": "pub"}], "X": ["1", "2"]})
    assert text.count("NIC = [") == 2
    assert text.count("X = ") == 2


def test_render_template_returns_empty_text_for_no_attributes() -> None:
    assert render_template({}) == ""


@pytest.mark.parametrize(
    ("attrs", "error"),
    [
        ({"BAD KEY": "1"}, ValueError),
        ({"": "1"}, ValueError),
        ({"V": {}}, ValueError),
        ({"V": {"a b": "1"}}, ValueError),
        ({"A": 1}, TypeError),
        ({"V": {"K": None}}, TypeError),
    ],
)
def test_render_template_refuses_what_it_cannot_write(
    attrs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        render_template(attrs)


_keys = st.from_regex(r"[A-Z0-9_-]{1,12}", fullmatch=True)
_texts = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=20)
_vectors = st.dictionaries(_keys, _texts, min_size=1, max_size=4)
_values = st.one_of(_texts, _vectors)


def _parsed_shape(items: dict[str, list[Any]]) -> dict[str, Any]:
    return {k: v if k in MULTI_VALUED or len(v) > 1 else v[0] for k, v in items.items()}


_templates = st.dictionaries(
    st.one_of(_keys, st.sampled_from(sorted(MULTI_VALUED))),
    st.lists(_values, min_size=1, max_size=3),
    max_size=6,
).map(_parsed_shape)


@given(_templates)
def test_render_template_round_trips_any_parsed_template(attrs: dict[str, Any]) -> None:
    assert parse_template(render_template(attrs)) == attrs


# --- parse_json_template --------------------------------------------------------------


def test_parse_json_template_converts_to_the_parsed_shape() -> None:
    data = {
        "name": "web",
        "CPU": 0.5,
        "MEMORY": 1024,
        "DISK": {"image_id": 3, "SIZE": 1024},
        "NIC": [{"NETWORK_ID": 0}, {"NETWORK": "pub"}],
        "CONTEXT": {"NETWORK": True, "TOKEN": False},
        "TAGS": ["a", "b"],
        "ONE": ["x"],
    }
    assert parse_json_template(data) == {
        "NAME": "web",
        "CPU": "0.5",
        "MEMORY": "1024",
        "DISK": [{"IMAGE_ID": "3", "SIZE": "1024"}],
        "NIC": [{"NETWORK_ID": "0"}, {"NETWORK": "pub"}],
        "CONTEXT": {"NETWORK": "YES", "TOKEN": "NO"},
        "TAGS": ["a", "b"],
        "ONE": "x",
    }


def test_parse_json_template_matches_parse_template_of_the_same_text() -> None:
    data = {"CPU": "0.5", "DISK": [{"IMAGE": "ubuntu"}], "CONTEXT": {"A": "1"}}
    text = 'CPU = 0.5\nDISK = [ IMAGE = "ubuntu" ]\nCONTEXT = [ A = 1 ]'
    assert parse_json_template(data) == parse_template(text)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"CPU": None}, "template.CPU"),
        ({"CPU": {"A": {"B": "1"}}}, "template.CPU.A"),
        ({"DISK": [{"A": [1]}]}, "template.DISK[0].A"),
        ({"TAGS": ["a", ["b"]]}, "template.TAGS[1]"),
        ({"TAGS": []}, "template.TAGS"),
        ({"CONTEXT": {}}, "template.CONTEXT"),
        ({"CPU": float("nan")}, "template.CPU"),
        ({"CPU": float("inf")}, "template.CPU"),
        ({"NAME": "a\0b"}, "template.NAME"),
        ({"BAD KEY": "1"}, "template.BAD KEY"),
        ({"V": {"bad.key": "1"}}, "template.V.bad.key"),
        ({"K" * 129: "1"}, "template." + "K" * 128),
        ({"cpu": "1", "CPU": "2"}, "template.CPU"),
        ({"V": {"a": "1", "A": "2"}}, "template.V.A"),
        ({"X": object()}, "template.X"),
    ],
)
def test_parse_json_template_refuses_bad_shapes(data: dict[str, Any], field: str) -> None:
    assert invalid_json(data).field == field


@pytest.mark.parametrize("data", [None, [], "CPU = 1", 3])
def test_parse_json_template_refuses_non_objects(data: object) -> None:
    assert invalid_json(data).field == "template"


def test_parse_json_template_refuses_too_many_attributes() -> None:
    data = {"V": [{"K": "1"}] * (MAX_ATTRIBUTES // 2 + 1)}
    assert invalid_json(data).field == "template"
