"""Compile a listening query's AST to Elasticsearch query DSL, for search and backfill.

Same answers as ``matcher`` on the same documents (see its docstring for the semantics). Every
user string goes into a structured clause (``match``, ``term``, ...), never into a
``query_string``, so no user input is ever parsed by ES's own query syntax.
"""

from __future__ import annotations

from typing import Any

from pipeline.listening.analyzer import analyze, fold_case
from pipeline.listening.nodes import And, Entity, Field, Near, Node, Not, Or, Phrase, Prefix, Term
from pipeline.listening.parser import parse

TEXT = "text"
FIELD_PATHS = {"author": "author.handle", "lang": "lang", "source": "source"}
ENTITY_PATHS = {"handle": "entities.handles", "hashtag": "entities.hashtags", "cashtag": "entities.cashtags"}
MATCH_NONE: dict[str, Any] = {"match_none": {}}

Query = dict[str, Any]


def _span(node: Node) -> Query | None:
    """The span query for a NEAR operand; ``None`` when it can match nothing (no tokens),
    since ES rejects a span query without terms."""
    if isinstance(node, (Term, Phrase)):
        # Inside NEAR a multi-token word is a phrase, as in the matcher.
        tokens = analyze(node.text)
        clauses = [{"span_term": {TEXT: t}} for t in tokens]
        if len(clauses) <= 1:
            return clauses[0] if clauses else None
        return {"span_near": {"clauses": clauses, "slop": 0, "in_order": True}}
    if isinstance(node, Prefix):
        return {"span_multi": {"match": {"prefix": {TEXT: {"value": fold_case(node.stem)}}}}}
    if isinstance(node, Or):
        clauses = [s for s in map(_span, node.children) if s is not None]
        return {"span_or": {"clauses": clauses}} if clauses else None
    if isinstance(node, Near):
        left, right = _span(node.left), _span(node.right)
        if left is None or right is None:
            return None
        return {"span_near": {"clauses": [left, right], "slop": node.slop, "in_order": False}}
    raise TypeError(f"not a span operand: {node!r}")


def compile_query(node: Node) -> Query:
    """The ES ``query`` clause selecting exactly the mentions that match ``node``."""
    if isinstance(node, Term):
        return {"match": {TEXT: {"query": node.text, "operator": "and"}}}
    if isinstance(node, Phrase):
        return {"match_phrase": {TEXT: {"query": node.text}}}
    if isinstance(node, Prefix):
        return {"prefix": {TEXT: {"value": fold_case(node.stem)}}}
    if isinstance(node, Field):
        return {"term": {FIELD_PATHS[node.name]: {"value": node.value}}}
    if isinstance(node, Entity):
        kind = "prefix" if node.prefix else "term"
        return {kind: {ENTITY_PATHS[node.kind]: {"value": node.value}}}
    if isinstance(node, Near):
        return _span(node) or MATCH_NONE
    if isinstance(node, Not):
        return {"bool": {"must_not": [compile_query(node.child)]}}
    if isinstance(node, And):
        return {"bool": {"must": [compile_query(c) for c in node.children]}}
    if isinstance(node, Or):
        return {"bool": {"should": [compile_query(c) for c in node.children], "minimum_should_match": 1}}
    raise TypeError(f"unknown query node: {node!r}")


def to_es_query(query: str) -> Query:
    """Parse and compile in one step; raises ``QuerySyntaxError`` on a bad query."""
    return compile_query(parse(query))
