"""The listening-query language: one parser, two back ends (stream matcher, ES compiler)."""

from pipeline.listening.analyzer import analyze
from pipeline.listening.compile_es import compile_query, to_es_query
from pipeline.listening.matcher import MentionView, QueryMatcher, matches
from pipeline.listening.nodes import And, Entity, Field, Near, Node, Not, Or, Phrase, Prefix, Term
from pipeline.listening.parser import MAX_DEPTH, MAX_QUERY_CHARS, QuerySyntaxError, parse

__all__ = [
    "MAX_DEPTH", "MAX_QUERY_CHARS", "And", "Entity", "Field", "MentionView", "Near", "Node", "Not",
    "Or", "Phrase", "Prefix", "QueryMatcher", "QuerySyntaxError", "Term", "analyze", "compile_query",
    "matches", "parse", "to_es_query",
]
