"""Evaluate listening queries against mentions in the stream, as Elasticsearch would.

Semantics (the same as ``compile_es``; ``tests/integration/test_listening_es.py`` proves the two
agree on real posts):
- the text is cut into tokens by ``analyzer.analyze``, a copy of ES's standard analyzer;
- a word needs all of its tokens anywhere in the text (``match`` with operator ``and``): ``e-mail``
  needs ``e`` and ``mail``; a word or phrase with no tokens (``"!!"``) matches nothing;
- a phrase needs its tokens at consecutive positions; ``word*`` any token starting with ``word``
  (lower-cased);
- ``a NEAR/n b``: a span of ``a`` and one of ``b`` with at most ``n`` tokens between them, in either
  order, overlapping allowed (Lucene's unordered ``span_near``); inside NEAR a word with several
  tokens is a phrase, and a NEAR is itself a span from its first to its last token;
- ``lang:``, ``source:`` and ``author:`` compare the keyword exactly (the parser lower-cases the
  lang and source values); ``@x``/``#x``/``$X`` look in ``entities.handles/hashtags/cashtags``.

Remaining difference from ES: for a NEAR nested in a NEAR, Lucene enumerates only some of the
inner spans (it advances the leftmost sub-span), while this matcher considers them all, so on
texts where the same words repeat the matcher can match where ES does not.

``QueryMatcher`` holds many named queries behind a prefilter: an inverted index from the tokens
and entities a query cannot match without (one of its "required" alternatives) to the query, so
each mention evaluates only the queries whose required tokens it contains, plus those that
require nothing (only NOT, prefixes or fields). Matching is on whole tokens, so a hash lookup
per token of the mention does the job an Aho-Corasick automaton would do on raw text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.listening.analyzer import analyze, fold_case
from pipeline.listening.nodes import And, Entity, Field, Near, Node, Not, Or, Phrase, Prefix, Term
from pipeline.listening.parser import parse

_FIELD_PATHS = {"lang": ("lang",), "source": ("source",), "author": ("author", "handle")}
_ENTITY_LISTS = {"handle": "handles", "hashtag": "hashtags", "cashtag": "cashtags"}

Span = tuple[int, int]  # token positions [start, end)
Key = tuple[str, str]  # ("token", t) or (entity kind, value): what the prefilter indexes


def _get(record: Any, name: str) -> Any:
    """A field of a document dict or of an ``EnrichedMention`` (or ``None``)."""
    if record is None:
        return None
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


@dataclass(frozen=True, slots=True)
class MentionView:
    """What queries look at in one mention, computed once per mention."""

    tokens: tuple[str, ...]
    positions: Mapping[str, tuple[int, ...]]
    fields: Mapping[str, Any]
    entities: Mapping[str, frozenset[str]]
    vocabulary: tuple[str, ...] = ()  # the distinct tokens, sorted: prefixes by binary search

    @classmethod
    def of(cls, mention: Any) -> MentionView:
        """From a document dict (as indexed) or an ``EnrichedMention``."""
        tokens = tuple(analyze(_get(mention, "text") or ""))
        positions: dict[str, list[int]] = defaultdict(list)
        for i, token in enumerate(tokens):
            positions[token].append(i)
        fields = {}
        for name, path in _FIELD_PATHS.items():
            value = mention
            for step in path:
                value = _get(value, step)
            fields[name] = value
        found = _get(mention, "entities")
        entities = {kind: frozenset(_get(found, attr) or ()) for kind, attr in _ENTITY_LISTS.items()}
        return cls(tokens, {t: tuple(p) for t, p in positions.items()}, fields, entities, tuple(sorted(positions)))

    def has_prefix(self, stem: str) -> bool:
        """Whether any token starts with ``stem``."""
        i = bisect_left(self.vocabulary, stem)
        return i < len(self.vocabulary) and self.vocabulary[i].startswith(stem)

    def keys(self) -> Iterable[Key]:
        yield from (("token", t) for t in self.positions)
        for kind, values in self.entities.items():
            yield from ((kind, v) for v in values)


Predicate = Callable[[MentionView], bool]
SpanFinder = Callable[[MentionView], list[Span]]


def _sequence_spans(tokens: list[str]) -> SpanFinder:
    """Where ``tokens`` occur at consecutive positions (none if there are no tokens)."""
    n = len(tokens)

    def find(view: MentionView) -> list[Span]:
        if not n:
            return []
        return [(p, p + n) for p in view.positions.get(tokens[0], ()) if list(view.tokens[p : p + n]) == tokens]

    return find


def _near_spans(left: SpanFinder, right: SpanFinder, slop: int) -> SpanFinder:
    def find(view: MentionView) -> list[Span]:
        found = []
        for a in left(view):
            for b in right(view):
                start, end = min(a[0], b[0]), max(a[1], b[1])
                # Lucene's unordered rule: the window less both spans' lengths is the slop used.
                if end - start - (a[1] - a[0]) - (b[1] - b[0]) <= slop:
                    found.append((start, end))
        return found

    return find


def _spans(node: Node) -> SpanFinder:
    """Span finder for a NEAR operand (the parser lets only these through)."""
    if isinstance(node, (Term, Phrase)):
        return _sequence_spans(analyze(node.text))
    if isinstance(node, Prefix):
        stem = fold_case(node.stem)
        return lambda view: [(p, p + 1) for p, t in enumerate(view.tokens) if t.startswith(stem)]
    if isinstance(node, Or):
        finders = [_spans(c) for c in node.children]
        return lambda view: [s for f in finders for s in f(view)]
    if isinstance(node, Near):
        return _near_spans(_spans(node.left), _spans(node.right), node.slop)
    raise TypeError(f"not a span operand: {node!r}")


def compile_predicate(node: Node) -> Predicate:
    """A function telling whether a ``MentionView`` matches ``node`` (analysis done once here)."""
    if isinstance(node, Term):
        tokens = analyze(node.text)
        return lambda view: bool(tokens) and all(t in view.positions for t in tokens)
    if isinstance(node, (Phrase, Near)):
        finder = _spans(node)
        return lambda view: bool(finder(view))
    if isinstance(node, Prefix):
        stem = fold_case(node.stem)
        return lambda view: view.has_prefix(stem)
    if isinstance(node, Field):
        return lambda view: view.fields[node.name] == node.value
    if isinstance(node, Entity):
        if node.prefix:
            return lambda view: any(v.startswith(node.value) for v in view.entities[node.kind])
        return lambda view: node.value in view.entities[node.kind]
    if isinstance(node, Not):
        inner = compile_predicate(node.child)
        return lambda view: not inner(view)
    if isinstance(node, And):
        parts = [compile_predicate(c) for c in node.children]
        return lambda view: all(p(view) for p in parts)
    if isinstance(node, Or):
        parts = [compile_predicate(c) for c in node.children]
        return lambda view: any(p(view) for p in parts)
    raise TypeError(f"unknown query node: {node!r}")


def matches(query: str | Node, mention: Any) -> bool:
    """Whether one mention (document dict or ``EnrichedMention``) matches one query."""
    node = parse(query) if isinstance(query, str) else query
    return compile_predicate(node)(MentionView.of(mention))


def required_keys(node: Node) -> frozenset[Key] | None:
    """Keys a mention must hold at least one of to match ``node``; ``None``: no such set
    (the query must always be checked); the empty set: ``node`` can never match."""
    if isinstance(node, (Term, Phrase)):
        tokens = analyze(node.text)
        # Any one token is required; the longest is likely the rarest, so the fewest candidates.
        return frozenset({("token", max(tokens, key=len))}) if tokens else frozenset()
    if isinstance(node, Entity) and not node.prefix:
        return frozenset({(node.kind, node.value)})
    if isinstance(node, (And, Near)):
        children = node.children if isinstance(node, And) else (node.left, node.right)
        known = [k for k in map(required_keys, children) if k is not None]
        return min(known, key=len) if known else None
    if isinstance(node, Or):
        alternatives = [required_keys(c) for c in node.children]
        if any(a is None for a in alternatives):
            return None
        return frozenset().union(*alternatives)
    return None  # prefixes, fields, NOT: nothing a mention must contain


class QueryMatcher:
    """Tags mentions with the ids of the named queries they match, through a prefilter."""

    def __init__(self, queries: Mapping[str, str | Node]):
        """``queries``: id -> query text or parsed AST; raises ``QuerySyntaxError`` on a bad one."""
        self._predicates: dict[str, Predicate] = {}
        self._index: dict[Key, list[str]] = defaultdict(list)
        self._always: list[str] = []
        for query_id, query in queries.items():
            node = parse(query) if isinstance(query, str) else query
            self._predicates[query_id] = compile_predicate(node)
            keys = required_keys(node)
            if keys is None:
                self._always.append(query_id)
            for key in keys or ():  # the empty set: never matches, never a candidate
                self._index[key].append(query_id)

    def candidates(self, view: MentionView) -> set[str]:
        """Ids of the queries ``view`` could match (a superset of those it does)."""
        found = set(self._always)
        for key in view.keys():
            found.update(self._index.get(key, ()))
        return found

    def match(self, mention: Any) -> list[str]:
        """Sorted ids of the queries the mention (document dict or ``EnrichedMention``) matches."""
        view = MentionView.of(mention)
        return sorted(q for q in self.candidates(view) if self._predicates[q](view))
