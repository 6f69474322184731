"""Parse a listening query into a small immutable AST.

The language, loosest binding first::

    query   := or
    or      := and ("OR" and)*
    and     := near (["AND"] near)*        adjacent operands are ANDed
    near    := unary ("NEAR/" n unary)*     both within n tokens, either order
    unary   := ("NOT" | "-") unary | primary
    primary := "(" or ")" | word | word* | "phrase" | field:value | @handle | #hashtag | $CASHTAG

``AND``/``OR``/``NOT``/``NEAR/n`` are keywords in any case; quote or backslash-escape a word to
search for it (``"and"``, ``\\or``). A backslash also makes ``( ) " : * -`` and the sigils literal.
Fields are ``author:`` (a handle, '@' optional, exact), ``lang:`` and ``source:`` (lower-cased).
``NEAR`` takes words, phrases, prefixes and ORs or NEARs of them on each side.

Errors are ``QuerySyntaxError`` with the 0-based character offset and what was expected there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.listening.nodes import (
    And, Entity, EntityKind, Field, Near, Node, Not, Or, Phrase, Prefix, SpanNode, Term,
)

MAX_QUERY_CHARS = 4096
MAX_DEPTH = 32  # parentheses and NOTs; keeps hostile input far from Python's recursion limit
MAX_NEAR_SLOP = 100  # tokens; a tweet is rarely longer, and larger slops are slow span queries
FIELDS = ("author", "lang", "source")


class QuerySyntaxError(ValueError):
    """A query that does not parse: ``position`` (0-based chars) and what was ``expected``."""

    def __init__(self, position: int, expected: str, got: str):
        super().__init__(f"at {position}: expected {expected}, got {got}")
        self.position = position
        self.expected = expected
        self.got = got


# --- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(" ")" "and" "or" "not" "near" "atom" "end"
    pos: int
    raw: str  # as written, for error messages
    node: Node | None = None
    slop: int = 0


_DELIMITERS = frozenset(' \t\r\n\f\v()"')
_NEAR = re.compile(r"near/(\d+)\Z", re.IGNORECASE)
_FIELD_NAME = re.compile(r"([A-Za-z]+):")
_ENTITY_VALUE = {
    "handle": (re.compile(r"\w{1,50}"), "a handle (letters, digits, '_')"),
    "hashtag": (re.compile(r"\w*[^\W\d]\w*"), "a hashtag (letters, digits, '_')"),
    "cashtag": (re.compile(r"[A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?"), "a cashtag (1-6 letters)"),
}
_SIGILS = {"@": "handle", "#": "hashtag", "$": "cashtag"}


def _describe(raw: str) -> str:
    return "end of query" if raw == "" else repr(raw)


class _Lexer:
    """Cuts a query into tokens; words keep which of their characters were escaped."""

    def __init__(self, query: str):
        self.query = query
        self.i = 0

    def tokens(self) -> list[_Token]:
        out: list[_Token] = []
        q = self.query
        while True:
            while self.i < len(q) and q[self.i].isspace():
                self.i += 1
            if self.i >= len(q):
                out.append(_Token("end", self.i, ""))
                return out
            start, ch = self.i, q[self.i]
            if ch in "()":
                self.i += 1
                out.append(_Token(ch, start, ch))
            elif ch == '"':
                out.append(_Token("atom", start, '"', Phrase(self._quoted())))
            elif ch == "-":
                self.i += 1
                if self.i >= len(q) or q[self.i] in _DELIMITERS - {"(", '"'}:
                    raise QuerySyntaxError(self.i, "a term after '-'", self._got_at(self.i))
                out.append(_Token("not", start, "-"))
            else:
                out.append(self._word(start))

    def _got_at(self, pos: int) -> str:
        return _describe(self.query[pos : pos + 1])

    def _quoted(self) -> str:
        """The text of a quoted phrase starting at ``self.i``; ``\\"`` and ``\\\\`` escape."""
        start, q = self.i, self.query
        self.i += 1
        chars: list[str] = []
        while self.i < len(q) and q[self.i] != '"':
            if q[self.i] == "\\" and self.i + 1 < len(q):
                self.i += 1
            chars.append(q[self.i])
            self.i += 1
        if self.i >= len(q):
            raise QuerySyntaxError(len(q), f"'\"' to close the phrase opened at {start}", "end of query")
        self.i += 1
        return "".join(chars)

    def _word(self, start: int) -> _Token:
        q = self.query
        chars: list[str] = []
        escaped: list[bool] = []
        while self.i < len(q) and q[self.i] not in _DELIMITERS:
            if q[self.i] == "\\" and self.i + 1 < len(q):
                self.i += 1
                chars.append(q[self.i])
                escaped.append(True)
            else:
                chars.append(q[self.i])
                escaped.append(False)
            self.i += 1
        raw = q[start : self.i]
        word = "".join(chars)
        if not any(escaped):
            lowered = word.lower()
            if lowered in ("and", "or", "not"):
                return _Token(lowered, start, raw)
            near = _NEAR.match(word)
            if near:
                slop = int(near.group(1))
                if slop > MAX_NEAR_SLOP:
                    raise QuerySyntaxError(start + 5, f"a distance of at most {MAX_NEAR_SLOP}", repr(near.group(1)))
                return _Token("near", start, raw, slop=slop)
            if lowered.startswith("near/"):
                raise QuerySyntaxError(start + 5, "a number of tokens after 'NEAR/'", _describe(word[5:]))
        return _Token("atom", start, raw, self._atom(start, word, escaped))

    def _atom(self, start: int, word: str, escaped: list[bool]) -> Node:
        """A word's meaning: entity, field, prefix or plain term (``escaped`` per character)."""
        if word[0] in _SIGILS and not escaped[0]:
            return self._entity(start, word, escaped)
        field = _FIELD_NAME.match(word)
        # "http://..." is a word (a URL), not an unknown field.
        if field and not any(escaped[: field.end()]) and not word.startswith("//", field.end()):
            return self._field(start, word, field.group(1), field.end())
        stars = [k for k, c in enumerate(word) if c == "*" and not escaped[k]]
        if stars and stars[0] != len(word) - 1:
            raise QuerySyntaxError(self._offset(start, stars[0]), "'*' only at the end of a word", "'*'")
        if stars:
            if len(word) == 1:
                raise QuerySyntaxError(start, "a word before '*'", "'*'")
            return Prefix(word[:-1])
        return Term(word)

    def _offset(self, start: int, k: int) -> int:
        """Offset in the query of the ``k``-th character of the word starting at ``start``
        (escapes make the two differ)."""
        i, q = start, self.query
        for _ in range(k):
            i += 2 if q[i] == "\\" else 1
        return i + (1 if i < len(q) - 1 and q[i] == "\\" else 0)

    def _entity(self, start: int, word: str, escaped: list[bool]) -> Entity:
        kind: EntityKind = _SIGILS[word[0]]  # type: ignore[assignment]
        body, prefix = word[1:], False
        if body.endswith("*") and not escaped[-1]:
            body, prefix = body[:-1], True
        pattern, expected = _ENTITY_VALUE[kind]
        valid = pattern.match(body)
        if not valid or valid.end() != len(body):
            at = self._offset(start, 1 + (valid.end() if valid else 0))
            raise QuerySyntaxError(at, f"{expected} after '{word[0]}'", self._got_at(at))
        value = body.upper() if kind == "cashtag" else body.lower()
        return Entity(kind, value, prefix)

    def _field(self, start: int, word: str, name: str, value_at: int) -> Field:
        """``name:value`` or ``name:"quoted value"`` (the word ended at the quote)."""
        key = name.lower()
        if key not in FIELDS:
            raise QuerySyntaxError(start, "a field author:, lang: or source:", repr(name + ":"))
        value_pos = start + value_at  # the name has no escapes, so word and query offsets agree
        if value_at == len(word) and self.query.startswith('"', self.i):
            value = self._quoted()
        else:
            value = word[value_at:]
        if key != "author":
            value = value.lower()  # lang codes and source names are stored lower-case
        elif value.startswith("@"):
            value, value_pos = value[1:], value_pos + 1  # handles are stored without the '@'
        if not value:
            raise QuerySyntaxError(value_pos, f"a value after '{name}:'", self._got_at(value_pos))
        return Field(key, value)


# --- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Token]):
        self.tokens = tokens
        self.k = 0
        self.depth = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.k]

    def _fail(self, expected: str) -> QuerySyntaxError:
        return QuerySyntaxError(self.peek.pos, expected, _describe(self.peek.raw))

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QuerySyntaxError(self.peek.pos, f"at most {MAX_DEPTH} levels of nesting", "deeper")

    def query(self) -> Node:
        node = self.or_()
        if self.peek.kind != "end":
            expected = "end of query" if self.peek.kind == ")" else "a term or operator"
            raise self._fail(expected)
        return node

    def or_(self) -> Node:
        children = [self.and_()]
        while self.peek.kind == "or":
            self.k += 1
            children.append(self.and_())
        return children[0] if len(children) == 1 else Or(_flatten(Or, children))

    def and_(self) -> Node:
        children = [self.near()]
        while self.peek.kind not in ("or", ")", "end"):
            if self.peek.kind == "and":
                self.k += 1
            children.append(self.near())
        return children[0] if len(children) == 1 else And(_flatten(And, children))

    def near(self) -> Node:
        start = self.peek
        node = self.unary()
        chain = 0
        while self.peek.kind == "near":
            chain += 1  # each NEAR nests the chain so far one level deeper in the AST
            if self.depth + chain > MAX_DEPTH:
                raise QuerySyntaxError(self.peek.pos, f"at most {MAX_DEPTH} levels of nesting", "deeper")
            op = self.peek
            self.k += 1
            right_start = self.peek
            right = self.unary()
            for operand, token in ((node, start), (right, right_start)):
                if not _spannable(operand):
                    raise QuerySyntaxError(
                        token.pos, f"words, phrases or prefixes on each side of {op.raw}", _describe(token.raw)
                    )
            node = Near(node, right, op.slop)
        return node

    def unary(self) -> Node:
        if self.peek.kind == "not":
            self.k += 1
            self._deeper()
            node = Not(self.unary())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        token = self.peek
        if token.kind == "atom":
            self.k += 1
            assert token.node is not None
            return token.node
        if token.kind == "(":
            self.k += 1
            self._deeper()
            node = self.or_()
            if self.peek.kind != ")":
                raise self._fail("')' or a term")
            self.k += 1
            self.depth -= 1
            return node
        raise self._fail("a term")


def _flatten(kind: type[And] | type[Or], children: list[Node]) -> tuple[Node, ...]:
    """``a OR (b OR c)`` is ``a OR b OR c``: one n-ary node, not a chain."""
    out: list[Node] = []
    for child in children:
        out.extend(child.children if isinstance(child, kind) else (child,))
    return tuple(out)


def _spannable(node: Node) -> bool:
    if isinstance(node, Or):
        return all(_spannable(c) for c in node.children)
    return isinstance(node, SpanNode)


def parse(query: str) -> Node:
    """The AST of ``query``; raises ``QuerySyntaxError`` saying where and what was expected."""
    if len(query) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(MAX_QUERY_CHARS, f"at most {MAX_QUERY_CHARS} characters", f"{len(query)}")
    return _Parser(_Lexer(query).tokens()).query()
