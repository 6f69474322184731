"""The listening-query parser: precedence, implicit AND, quoting, escapes, errors and limits."""

from __future__ import annotations

import random

import pytest

from pipeline.listening import (
    MAX_DEPTH,
    MAX_QUERY_CHARS,
    And,
    Entity,
    Field,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    QuerySyntaxError,
    Term,
    compile_query,
    matches,
    parse,
)

a, b, c, d = Term("a"), Term("b"), Term("c"), Term("d")


@pytest.mark.parametrize(
    "query, ast",
    [
        ("a", a),
        ("a b", And((a, b))),  # implicit AND
        ("a AND b OR c", Or((And((a, b)), c))),  # AND binds tighter than OR
        ("a OR b c", Or((a, And((b, c))))),
        ("a or b and c", Or((a, And((b, c))))),  # keywords in any case
        ("NOT a b", And((Not(a), b))),  # NOT binds tightest
        ("-a b", And((Not(a), b))),
        ("not not a", Not(Not(a))),
        ("a NEAR/3 b c", And((Near(a, b, 3), c))),  # NEAR binds tighter than AND
        ("a NEAR/3 b NEAR/1 c", Near(Near(a, b, 3), c, 1)),
        ("(a OR b) NEAR/2 c*", Near(Or((a, b)), Prefix("c"), 2)),
        ("a OR (b OR c) OR d", Or((a, b, c, d))),  # flattened
        ("(a b) (c d)", And((a, b, c, d))),
        ('"on time" flight', And((Phrase("on time"), Term("flight")))),
        ('"say \\"hi\\" \\\\ now"', Phrase('say "hi" \\ now')),
        ("\\and \\(x\\) \\-y", And((Term("and"), Term("(x)"), Term("-y")))),
        ("\\@delta \\#x a\\*", And((Term("@delta"), Term("#x"), Term("a*")))),
        ("e-mail near me", And((Term("e-mail"), Term("near"), Term("me")))),
        ("http://t.co/x", Term("http://t.co/x")),
        ("@Delta #Fail $aapl $brk.b", And((Entity("handle", "delta"), Entity("hashtag", "fail"),
                                          Entity("cashtag", "AAPL"), Entity("cashtag", "BRK.B")))),
        ("@del* #co*", And((Entity("handle", "del", True), Entity("hashtag", "co", True)))),
        ('LANG:EN source:"My Feed" author:@JetBlue', And((Field("lang", "en"), Field("source", "my feed"),
                                                         Field("author", "JetBlue")))),
        ('a "" b', And((a, Phrase(""), b))),
    ],
)
def test_parses(query, ast):
    assert parse(query) == ast


@pytest.mark.parametrize(
    "query, position, expected, got",
    [
        ("", 0, "a term", "end of query"),
        ("   ", 3, "a term", "end of query"),
        ("(a OR b", 7, "')' or a term", "end of query"),
        ("a)", 1, "end of query", "')'"),
        ("a OR", 4, "a term", "end of query"),
        ("a AND OR b", 6, "a term", "'OR'"),
        ("NOT", 3, "a term", "end of query"),
        ("()", 1, "a term", "')'"),
        ('"open', 5, "'\"' to close the phrase opened at 0", "end of query"),
        ("a - b", 3, "a term after '-'", "' '"),
        ("fl*ght", 2, "'*' only at the end of a word", "'*'"),
        ("\\a\\b*c*", 4, "'*' only at the end of a word", "'*'"),
        ("*", 0, "a word before '*'", "'*'"),
        ("a NEAR/x b", 7, "a number of tokens after 'NEAR/'", "'x'"),
        ("a NEAR/1000 b", 7, "a distance of at most 100", "'1000'"),
        ("a NEAR/2", 8, "a term", "end of query"),
        ("a NEAR/2 lang:en", 9, "words, phrases or prefixes on each side of NEAR/2", "'lang:en'"),
        ("@x NEAR/2 b", 0, "words, phrases or prefixes on each side of NEAR/2", "'@x'"),
        ("(a b) NEAR/2 c", 0, "words, phrases or prefixes on each side of NEAR/2", "'('"),
        ("NOT a NEAR/2 b", 0, "words, phrases or prefixes on each side of NEAR/2", "'NOT'"),
        ("foo:bar", 0, "a field author:, lang: or source:", "'foo:'"),
        ("lang:", 5, "a value after 'lang:'", "end of query"),
        ("x author:@ y", 10, "a value after 'author:'", "' '"),
        ("@", 1, "a handle (letters, digits, '_') after '@'", "end of query"),
        ("@del-ta", 4, "a handle (letters, digits, '_') after '@'", "'-'"),
        ("#123", 1, "a hashtag (letters, digits, '_') after '#'", "'1'"),
        ("$5", 1, "a cashtag (1-6 letters) after '$'", "'5'"),
    ],
)
def test_errors_say_where_and_what_was_expected(query, position, expected, got):
    with pytest.raises(QuerySyntaxError) as err:
        parse(query)
    assert (err.value.position, err.value.expected, err.value.got) == (position, expected, got)
    assert str(err.value) == f"at {position}: expected {expected}, got {got}"


def test_error_is_a_value_error():
    assert issubclass(QuerySyntaxError, ValueError)


def test_nesting_is_limited():
    assert parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == a
    with pytest.raises(QuerySyntaxError, match="levels of nesting"):
        parse("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(QuerySyntaxError, match="levels of nesting"):
        parse("NOT " * 1000 + "a")
    with pytest.raises(QuerySyntaxError, match="levels of nesting"):
        parse("a" + " NEAR/1 a" * (MAX_DEPTH + 1))


def test_length_is_limited():
    parse(" ".join(["a"] * (MAX_QUERY_CHARS // 2)))
    with pytest.raises(QuerySyntaxError) as err:
        parse("a " * MAX_QUERY_CHARS)
    assert err.value.position == MAX_QUERY_CHARS


def test_long_flat_queries_do_not_recurse():
    many = " OR ".join(f"w{i}" for i in range(500))
    assert len(parse(many).children) == 500


def test_random_input_raises_nothing_but_syntax_errors():
    """Whatever parses also matches and compiles without error."""
    rng = random.Random(7)
    alphabet = list('ab ()"\\*-:@#$/') + ["AND ", "OR ", "NOT ", "NEAR/2 ", "lang:", "é", "😀", "\t"]
    for _ in range(3000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        try:
            node = parse(query)
        except QuerySyntaxError as err:
            assert 0 <= err.position <= len(query), query
            continue
        matches(node, {"text": "a b ab", "lang": "en", "entities": {"handles": ["a"]}})
        compile_query(node)
