"""What changed: the explanation of an incident against the brand's baseline. Pure.

``explain`` turns the incident's mentions and the brand's ``Background`` into the object every
channel carries (API, SSE, webhooks, Slack):

* ``phrases``: words and 2-3 word phrases that rose, ranked by Dunning's log-likelihood ratio G2
  of their document frequency in the incident against the background (decayed, half-life
  ``half_life_s`` of event time, so it follows what the brand is usually talked about this
  week). A phrase replaces its words when it carries most of their posts (it reads better:
  "engine fire" rather than "engine", "fire"). Stop words, URL fragments (``http``, ``t.co``,
  ``www``), @handles, numbers and the brand's own names are never terms.
* ``hashtags``: the same for hashtags and cashtags.
* ``sentiment``: share of each label in the incident, in the baseline, and the shift (points
  of share, -1..1); ``emotion`` likewise when the mentions carry an emotion label (else null).
* ``sources`` (platform, from the mention id ``<source>:<id>``) and ``authors`` (most engaged).
* ``near_duplicates``: share of the incident's posts that copy another one of it (SimHash of
  word 3-shingles within 3 bits, as ``pipeline/enrich/near_dup.py`` links them, or the post's
  own ``duplicate_of``): a copy-paste campaign reads differently from an organic crisis.
* ``representatives``: up to five posts from distinct clusters (one per copy family, each
  carrying a different rising phrase where possible), most engaged first. The alert keeps their
  text in its ``mentions`` (which erasure and retention strip) and here only id, copies, theme.
* ``summary``: one paragraph assembled from those facts (extractive: figures, shares and the
  rising phrases, no handle or post text).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from pipeline.enrich.near_dup import distance, simhash

# A compact English stop list with social-media filler (scikit-learn's list is larger but holds
# words a crisis is made of, such as "fire" and "system").
STOP_WORDS = frozenset("""
a about above after again against ago all almost also although always am among an and another any anybody
anyone anything are aren around as at away back be became because become been before being below between
both but by can cannot cant could couldnt did didnt do does doesnt doing done dont down during each either
else even ever every everyone everything few for from further get gets getting go goes going gone gonna got
gotta had hadnt has hasnt have havent having he hed hes her here heres hers herself him himself his how i
id if ill im in into is isnt it its itself ive just know last let lets like lol make many may me might mine
more most much must my myself never no nor not nothing now of off oh ok okay on once one only or other our
ours ourselves out over own please pls really rt said same say says see seems shall she shes should shouldnt
since so some someone something soon still such sure take than thank thanks that thats the their theirs them
themselves then there theres these they theyre thing things think this those though through thru to today too
u under until up upon ur us use used very via want wants was wasnt way we well were werent weve what whats
when where which while who whom whos why will with without wont would wouldnt yeah yes yet you youll your
youre yours yourself yourselves youve amp gt lt http https co com www html htm php net org ly bit
""".split())
URL_FRAGMENTS = frozenset({"http", "https", "www", "co", "com", "t.co", "html", "amp", "bit.ly"})
_URL = re.compile(r"https?://\S+|www\.\S+|\b[\w-]+\.(?:com|co|ly|io|net|org|me|gl|be)(?:/\S*)?", re.IGNORECASE)
_HANDLE = re.compile(r"@\w+")
_TOKEN = re.compile(r"[#$]?[^\W\d_][\w'-]{2,}", re.UNICODE)
_WORD = re.compile(r"[#$]?[^\W_][\w'-]*", re.UNICODE)
MAX_PHRASE = 3
DUPLICATE_BITS = 3  # as pipeline/enrich/near_dup.py


def _clean(text: str) -> str:
    return _HANDLE.sub(" ", _URL.sub(" ", text.lower()))


def _is_term(token: str) -> bool:
    return len(token.lstrip("#$")) >= 3 and token not in STOP_WORDS and token not in URL_FRAGMENTS \
        and not token.lstrip("#$").isdigit()


def terms_of(text: str) -> set[str]:
    """The distinct terms of a post: lower-case words of 3+ letters, hashtags and cashtags kept,
    links, @handles and stop words dropped."""
    text = _clean(text)
    return {t.strip("'-") for t in _TOKEN.findall(text) if _is_term(t.strip("'-"))}


def phrases_of(text: str, longest: int = MAX_PHRASE) -> set[str]:
    """The distinct 2..``longest``-word phrases of a post: runs of words inside one clause
    (punctuation breaks a run) that start and end with a term; a stop word may sit inside
    ("cancelled without notice"). Hashtags are not phrase words."""
    phrases: set[str] = set()
    for clause in re.split(r"[.!?;:,()\[\]\"\n]+", _clean(text)):
        words = [w.strip("'-") for w in _WORD.findall(clause)]
        for i, first in enumerate(words):
            if first.startswith(("#", "$")) or not _is_term(first):
                continue
            for n in range(2, longest + 1):
                run = words[i:i + n]
                if len(run) < n or any(w.startswith(("#", "$")) or w.isdigit() for w in run):
                    break
                if _is_term(run[-1]):
                    phrases.add(" ".join(run))
    return phrases


def own_terms(*names: str) -> frozenset[str]:
    """Terms that name the brand itself (its id, name, aliases, handles, hashtags, cashtags):
    never an explanation of its own spike."""
    own: set[str] = set()
    for name in names:
        lowered = name.lower().strip()
        if not lowered:
            continue
        own.add(lowered)
        for sigil in ("#", "$", "@"):
            own.add(sigil + lowered.lstrip("#$@"))
        own.update(w.strip("'-") for w in _WORD.findall(lowered))
        own.add(lowered.replace(" ", ""))
    return frozenset(own)


def post_terms(text: str, own: frozenset[str] = frozenset()) -> set[str]:
    """Words, hashtags and phrases of a post, without the brand's own names."""
    words = {t for t in terms_of(text) if t not in own and t.lstrip("#$") not in own}
    phrases = {p for p in phrases_of(text) if not (set(p.split()) & own)}
    return words | phrases


def g2(a: float, n1: float, b: float, n2: float) -> float:
    """Dunning's log-likelihood ratio for a term in ``a`` of ``n1`` spike documents and ``b``
    of ``n2`` background documents (0 when it is not over-represented in the spike)."""
    if n1 <= 0 or n2 <= 0 or a / n1 <= b / n2:
        return 0.0
    total = a + b
    e1, e2 = n1 * total / (n1 + n2), n2 * total / (n1 + n2)
    c, d = n1 - a, n2 - b
    f1, f2 = (n1 * (c + d)) / (n1 + n2), (n2 * (c + d)) / (n1 + n2)

    def part(observed: float, expected: float) -> float:
        return observed * math.log(observed / expected) if observed > 0 and expected > 0 else 0.0

    return 2.0 * (part(a, e1) + part(b, e2) + part(c, f1) + part(d, f2))


@dataclass
class Background:
    """Decayed document frequencies of a brand's terms, and of its facets (``sentiment:negative``,
    ``source:x``, ``emotion:anger``), in event time."""

    half_life_s: float = 6 * 3600
    max_terms: int = 20_000
    documents: float = 0.0
    counts: dict[str, float] = field(default_factory=dict)
    facets: dict[str, float] = field(default_factory=dict)
    at: float | None = None  # event time (epoch s) the counts are decayed to

    def _decay_to(self, ts: float) -> None:
        if self.at is None:
            self.at = ts
        elif ts > self.at:
            factor = 0.5 ** ((ts - self.at) / self.half_life_s)
            self.documents *= factor
            for table in (self.counts, self.facets):
                for term in table:
                    table[term] *= factor
            self.at = ts

    def add(self, terms: set[str], ts: float, facets: Iterable[str] = ()) -> None:
        # Decay in steps of a minute at most: a per-mention pass over every term would cost more
        # than the model does on a busy brand.
        if self.at is None or ts - self.at >= 60:
            self._decay_to(ts)
        self.documents += 1
        for term in terms:
            self.counts[term] = self.counts.get(term, 0.0) + 1.0
        for facet in facets:
            self.facets[facet] = self.facets.get(facet, 0.0) + 1.0
        if len(self.counts) > self.max_terms:
            keep = sorted(self.counts.items(), key=lambda kv: kv[1], reverse=True)[: self.max_terms // 2]
            self.counts = dict(keep)

    def share(self, facet: str, prefix: str, without: Counter[str] | None = None) -> float:
        """A facet's share among the facets of its kind (``prefix``), 0..1, leaving out the
        counts ``without`` (the incident's own posts, which were added to the background too)."""
        without = without or Counter()
        total = sum(max(v - without.get(k, 0), 0.0) for k, v in self.facets.items() if k.startswith(prefix))
        mine = max(self.facets.get(facet, 0.0) - without.get(facet, 0), 0.0)
        return mine / total if total > 0 else 0.0


def significant_terms(spike: list[set[str]], background: Background, top: int = 10,
                      min_count: int = 3) -> list[tuple[str, float, int, int]]:
    """(term, G2, spike count, background count rounded) of the terms that explain ``spike``.

    The spike's own documents are taken out of the background first if they were added to it.
    """
    counts: Counter[str] = Counter()
    for doc in spike:
        counts.update(doc)
    n1 = len(spike)
    n2 = max(background.documents - n1, 1.0)
    scored = []
    for term, a in counts.items():
        if a < min_count:
            continue
        b = max(background.counts.get(term, 0.0) - a, 0.0)
        score = g2(a, n1, b, n2)
        if score > 0:
            scored.append((term, round(score, 2), a, int(round(b))))
    scored.sort(key=lambda t: (-t[1], t[0]))
    return scored[:top]


def readable_phrases(scored: list[tuple[str, float, int, int]], top: int = 8) -> list[tuple[str, float, int, int]]:
    """The rising words and phrases a person should read: a phrase that holds at least 60% of the
    posts of a word in it replaces that word; a longer phrase replaces a shorter one inside it
    the same way. Hashtags and cashtags are left to ``hashtags``."""
    plain = [t for t in scored if not t[0].startswith(("#", "$"))]
    dropped: set[str] = set()
    for term, _, count, _ in sorted(plain, key=lambda t: -len(t[0].split())):
        if term in dropped or " " not in term:
            continue
        for other, _, other_count, _ in plain:
            if other != term and other not in dropped and f" {other} " in f" {term} " and count >= 0.6 * other_count:
                dropped.add(other)
    return [t for t in plain if t[0] not in dropped][:top]


def source_of(record: dict[str, Any]) -> str:
    """The platform a mention came from: its ``source``, else the prefix of its id."""
    if record.get("source"):
        return str(record["source"])
    head, sep, _ = str(record.get("id", "")).partition(":")
    return head if sep else "unknown"


def facets_of(record: dict[str, Any]) -> list[str]:
    facets = [f"source:{source_of(record)}"]
    if record.get("sentiment"):
        facets.append(f"sentiment:{record['sentiment']}")
    if record.get("emotion"):
        facets.append(f"emotion:{record['emotion']}")
    return facets


def copy_families(records: list[dict[str, Any]]) -> list[int]:
    """For each record, the index of the first record of its copy family (itself if it is first):
    near-duplicate texts (SimHash within ``DUPLICATE_BITS``, found through 4 bands of 16 bits) or
    a ``duplicate_of`` naming a record of the list."""
    by_id = {r.get("id"): i for i, r in enumerate(records)}
    bands: dict[tuple[int, int], list[int]] = {}
    hashes: list[int | None] = []
    family: list[int] = []
    for i, record in enumerate(records):
        first = by_id.get(record.get("duplicate_of"))
        if "_simhash" not in record:  # kept on the record: the next version's explanation reuses it
            record["_simhash"] = simhash(record.get("text") or "")
        h = record["_simhash"]
        hashes.append(h)
        if first is None and h is not None:
            for band in range(4):
                for j in bands.get((band, (h >> (16 * band)) & 0xFFFF), ()):
                    if hashes[j] is not None and distance(h, hashes[j]) <= DUPLICATE_BITS:
                        first = j
                        break
                if first is not None:
                    break
        root = i if first is None or first >= i else family[first]
        family.append(root)
        if h is not None and root == i:
            for band in range(4):
                bands.setdefault((band, (h >> (16 * band)) & 0xFFFF), []).append(i)
    return family


def _shares(values: list[str]) -> dict[str, float]:
    counts = Counter(v for v in values if v)
    total = sum(counts.values())
    return {k: round(v / total, 3) for k, v in counts.most_common()} if total else {}


def _shift(records: list[dict[str, Any]], background: Background, kind: str,
           own: Counter[str]) -> dict[str, Any] | None:
    spike = _shares([r.get(kind) for r in records])
    if not spike:
        return None
    labels = sorted(set(spike) | {k.split(":", 1)[1] for k in background.facets if k.startswith(kind + ":")})
    base = {label: round(background.share(f"{kind}:{label}", kind + ":", own), 3) for label in labels}
    return {"incident": {label: spike.get(label, 0.0) for label in labels}, "baseline": base,
            "shift": {label: round(spike.get(label, 0.0) - base[label], 3) for label in labels}}


def _term(t: tuple[str, float, int, int]) -> dict[str, Any]:
    return {"term": t[0], "score": t[1], "spike_count": t[2], "baseline_count": t[3]}


def explain(records: list[dict[str, Any]], terms: list[set[str]], background: Background,
            facts: dict[str, Any] | None = None, max_posts: int = 5) -> dict[str, Any]:
    """The explanation of an incident from its mentions (``records``, with ``terms[i]`` the
    ``post_terms`` of ``records[i]``) against the brand's ``background``. ``facts`` are the
    incident's figures for the summary: brand, severity_score, severity, signals, observed,
    expected, minutes."""
    facts = facts or {}
    scored = significant_terms(terms, background, top=40)
    phrases = readable_phrases(scored)
    hashtags = [t for t in scored if t[0].startswith(("#", "$"))][:5]
    family = copy_families(records)
    sizes = Counter(family)
    copies = sum(1 for i, root in enumerate(family) if root != i)
    sources = Counter(source_of(r) for r in records)
    engaged: dict[str, list[int]] = {}
    for r in records:
        if r.get("author"):
            posts_engagement = engaged.setdefault(r["author"], [0, 0])
            posts_engagement[0] += 1
            posts_engagement[1] += int(r.get("engagement") or 0)
    authors = sorted(engaged.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))[:5]
    representatives = _representatives(records, terms, family, sizes, [t[0] for t in phrases + hashtags], max_posts)
    own = Counter(f for r in records for f in facets_of(r))  # the incident's posts are in the background too
    explanation = {
        "mentions": len(records),
        "phrases": [_term(t) for t in phrases],
        "hashtags": [_term(t) for t in hashtags],
        "sentiment": _shift(records, background, "sentiment", own),
        "emotion": _shift(records, background, "emotion", own),
        "sources": [{"source": s, "count": n, "share": round(n / len(records), 3),
                     "baseline_share": round(background.share(f"source:{s}", "source:", own), 3)}
                    for s, n in sources.most_common(5)],
        "authors": [{"author": a, "posts": pe[0], "engagement": pe[1]} for a, pe in authors],
        "near_duplicates": {"share": round(copies / len(records), 3) if records else 0.0,
                            "families": len(sizes), "largest": max(sizes.values(), default=0)},
        "representatives": representatives,
    }
    explanation["summary"] = summary(explanation, facts)
    return explanation


def _representatives(records, terms, family, sizes, rising: list[str], limit: int) -> list[dict[str, Any]]:
    """One post per copy family, each carrying a different rising term where possible (the most
    engaged such post), then the most engaged of the remaining families that carry any rising
    term; most engaged first."""
    order = sorted(range(len(records)), key=lambda i: (-int(records[i].get("engagement") or 0), records[i]["ts"]))
    chosen: list[tuple[int, str | None]] = []
    used_families: set[int] = set()
    for term in rising:
        if len(chosen) >= limit:
            break
        for i in order:
            if family[i] not in used_families and term in terms[i]:
                chosen.append((i, term))
                used_families.add(family[i])
                break
    if not chosen:  # nothing rose in words (a pure volume spike of varied posts): the most engaged
        for i in order:
            if len(chosen) >= limit:
                break
            if family[i] not in used_families:
                chosen.append((i, None))
                used_families.add(family[i])
    chosen.sort(key=lambda c: (-int(records[c[0]].get("engagement") or 0), records[c[0]]["ts"]))
    return [{"id": records[i]["id"], "text": records[i].get("text") or "", "ts": records[i]["ts"],
             "author": records[i].get("author"), "url": records[i].get("url"),
             "engagement": int(records[i].get("engagement") or 0), "sentiment": records[i].get("sentiment"),
             "copies": sizes[family[i]], "theme": term}
            for i, term in chosen]


def summary(explanation: dict[str, Any], facts: dict[str, Any]) -> str:
    """One paragraph from the explanation's facts, most telling first."""
    parts: list[str] = []
    brand = facts.get("brand", "the brand")
    if facts.get("severity_score") is not None:
        signals = ", ".join(facts.get("signals") or [])
        head = f"{brand}: severity {facts['severity_score']}/10 ({facts.get('severity', '')})"
        if facts.get("observed") is not None and facts.get("expected") is not None:
            head += (f", {facts['observed']:g} mentions in the last {facts.get('window_min', 15)} min"
                     f" vs {facts['expected']:.1f} expected")
        if facts.get("minutes") is not None:
            head += f", open {facts['minutes']} min"
        parts.append(head + (f"; signals: {signals}." if signals else "."))
    rising = [t["term"] for t in explanation["phrases"][:4]] + [t["term"] for t in explanation["hashtags"][:2]]
    if rising:
        parts.append("Rising: " + ", ".join(f'"{t}"' for t in rising) + ".")
    sentiment = explanation.get("sentiment")
    if sentiment and "negative" in sentiment["incident"]:
        parts.append(f"Negative {sentiment['incident']['negative']:.0%} vs {sentiment['baseline']['negative']:.0%}"
                     " usually.")
    emotion = explanation.get("emotion")
    if emotion:
        label, shift = max(emotion["shift"].items(), key=lambda kv: kv[1])
        if shift > 0:
            parts.append(f"Most risen emotion: {label} ({emotion['incident'][label]:.0%}, {shift:+.0%}).")
    dup = explanation["near_duplicates"]
    if explanation["mentions"]:
        if dup["share"] >= 0.5:
            parts.append(f"{dup['share']:.0%} are near-copies ({dup['families']} distinct posts): "
                         "looks like a copy-paste campaign.")
        else:
            parts.append(f"{dup['share']:.0%} near-copies: mostly distinct posts (organic).")
    if explanation["sources"]:
        top = explanation["sources"][0]
        parts.append(f"Mostly from {top['source']} ({top['share']:.0%}).")
    if explanation["authors"]:
        a = explanation["authors"][0]
        parts.append(f"{len(explanation['authors'])} authors lead; the most engaged has {a['engagement']} "
                     f"engagements over {a['posts']} posts.")
    themes = [r["theme"] for r in explanation["representatives"] if r.get("theme")]
    if explanation["representatives"]:
        quoted = ", ".join(f'"{t}"' for t in themes[:3])
        parts.append(f"{len(explanation['representatives'])} representative posts"
                     + (f" on {quoted}." if themes else "."))
    # No handle and no post text here: the summary is copied into webhooks and digests, where an
    # erasure request could not reach them (the posts themselves are the alert's ``mentions``).
    return " ".join(parts)
