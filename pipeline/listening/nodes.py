"""The listening-query AST: small immutable nodes that both back ends walk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

EntityKind = Literal["handle", "hashtag", "cashtag"]


@dataclass(frozen=True, slots=True)
class Term:
    """A word as typed (escapes resolved); analysed like the text, all its tokens required."""

    text: str


@dataclass(frozen=True, slots=True)
class Phrase:
    """Quoted text: its tokens at consecutive positions."""

    text: str


@dataclass(frozen=True, slots=True)
class Prefix:
    """``word*``: any token starting with ``stem`` (as typed; lower-cased by the back ends)."""

    stem: str


@dataclass(frozen=True, slots=True)
class Field:
    """``author:``, ``lang:`` or ``source:`` equal to ``value`` (already normalised)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Entity:
    """``@handle``/``#hashtag`` (lower-case) or ``$CASHTAG`` (upper-case), without the sigil."""

    kind: EntityKind
    value: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Near:
    """``left`` and ``right`` at most ``slop`` tokens apart, in either order."""

    left: Node
    right: Node
    slop: int


Node = Union[Term, Phrase, Prefix, Field, Entity, Not, And, Or, Near]
SpanNode = (Term, Phrase, Prefix, Or, Near)  # what NEAR accepts (an Or only of these)
