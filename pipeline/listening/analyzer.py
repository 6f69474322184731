"""The text analysis both back ends share: a Python copy of Elasticsearch's standard analyzer.

The ``text`` field is indexed with the standard analyzer (Lucene's ``StandardTokenizer``, which
splits on Unicode word boundaries as UAX #29 defines them, then ``LowerCaseFilter``; no stop
words). The matcher must cut a post into the same tokens at the same positions, or phrases,
``NEAR/n`` and prefixes would answer differently in the stream and in search.

Known approximations (none occurs in the EmpythyCorpus posts the equivalence test indexes):
- word boundaries come from the ``regex`` package's Unicode tables, Lucene's from its own
  (older) Unicode version, so characters assigned between the two versions may split differently;
- Lucene emits Thai, Lao, Khmer and Myanmar runs as one token; ``regex`` follows UAX #29 there;
- tokens longer than 255 characters are cut into 255-character pieces by Lucene, kept whole here.
"""

from __future__ import annotations

import re

import regex

# Segments between Unicode (UAX #29) word boundaries; ``V1`` lets split() cut on empty matches.
_WORD_BOUNDARY = regex.compile(r"(?wV1)\b")
# A segment is a token when it holds a letter or digit (Lucene's word types; '_' or combining
# marks alone are not) or an emoji (Lucene >= 8.4 emits emoji sequences, keycaps included, as
# tokens, so they take up positions in phrases). Letters come from the stdlib's Unicode tables,
# which are closer to Lucene's than the ``regex`` package's newer ones (U+058B is a letter there).
_ALNUM = re.compile(r"[^\W_]")
_EMOJI = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")
# UAX #29 joins these only between letters or digits, but ``regex`` keeps a leading one in a
# few cases ("'on" in "ground 'on time'"), which Lucene drops.
_EDGE_PUNCT = regex.compile(
    r"^[\p{WB=MidLetter}\p{WB=MidNumLet}\p{WB=MidNum}\p{WB=Single_Quote}]+"
    r"|[\p{WB=MidLetter}\p{WB=MidNumLet}\p{WB=MidNum}\p{WB=Single_Quote}]+$"
)
# Java's Character.toLowerCase maps code point by code point; Python's str.lower() is
# context-sensitive for these two (final sigma, dotted capital I), so map them first.
_JAVA_LOWER = str.maketrans({"\u03a3": "\u03c3", "\u0130": "i"})


def fold_case(text: str) -> str:
    """Lower-case ``text`` the way Lucene's ``LowerCaseFilter`` does."""
    return text.translate(_JAVA_LOWER).lower()


def analyze(text: str) -> list[str]:
    """The tokens of ``text``, in position order (position = list index)."""
    tokens = []
    # Case-folding first (once per text, not per token): lower-casing keeps each character's
    # word-break class, so the boundaries are the same.
    for segment in _WORD_BOUNDARY.split(fold_case(text)):
        if not (_ALNUM.search(segment) or _EMOJI.search(segment)):
            continue
        # Most segments are plain words: skip the edge clean-up when both ends are alphanumeric.
        if not (segment[0].isalnum() and segment[-1].isalnum()):
            segment = _EDGE_PUNCT.sub("", segment)
        tokens.append(segment)
    return tokens
