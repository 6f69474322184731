"""Feed dates as aware UTC: RFC 822 dates with English or localised month and day names and
numeric offsets (``Seg, 24 Set 2018 19:42:40 -0300``), odd forms real feeds use
(``03 Apr 02 1500 GMT``), and ISO 8601. feedparser reads only English names; what it cannot
read, the RSS connector reads here rather than stamping the entry "now".
"""

from __future__ import annotations

import email.utils
import re
from datetime import datetime, timezone
from typing import Any

from connectors.common import parse_utc

# Month and weekday names of the languages feeds are written in, to English (lower-case, accents
# kept and also stripped). feedparser reads only English names: "Seg, 24 Set 2018 19:42:40 -0300"
# (Portuguese) is unreadable to it.
_MONTHS = {
    "jan": ["janeiro", "jan", "enero", "ene", "janvier", "janv", "januar", "jän", "jänner", "gennaio", "gen",
            "januari"],
    "feb": ["fevereiro", "fev", "febrero", "février", "févr", "fevrier", "fevr", "februar", "febbraio", "februari"],
    "mar": ["março", "marco", "marzo", "mars", "märz", "maerz", "mär", "mrz", "maart", "mrt"],
    "apr": ["abril", "abr", "avril", "avr", "aprile", "april"],
    "may": ["maio", "mai", "mayo", "maggio", "mag", "mei"],
    "jun": ["junho", "junio", "juin", "juni", "giugno", "giu"],
    "jul": ["julho", "julio", "juillet", "juil", "juli", "luglio", "lug"],
    "aug": ["agosto", "ago", "août", "aout", "august", "augustus"],
    "sep": ["setembro", "set", "septiembre", "sept", "septembre", "september", "settembre", "sett"],
    "oct": ["outubro", "out", "octubre", "octobre", "oktober", "okt", "ottobre", "ott"],
    "nov": ["novembro", "noviembre", "novembre", "november"],
    "dec": ["dezembro", "dez", "diciembre", "dic", "décembre", "decembre", "déc", "dezember", "dicembre", "december"],
}
_DAYS = ["seg", "ter", "qua", "qui", "sex", "sáb", "sab", "dom", "segunda", "terça", "terca", "quarta", "quinta",
         "sexta", "sábado", "sabado", "domingo", "lun", "mar", "mié", "mie", "jue", "vie", "lunes", "martes",
         "miércoles", "jueves", "viernes", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
         "mer", "jeu", "ven", "sam", "mo", "di", "mi", "do", "fr", "sa", "so", "montag", "dienstag", "mittwoch",
         "donnerstag", "freitag", "samstag", "sonntag", "gio", "lunedì", "martedì", "mercoledì", "giovedì",
         "venerdì", "sabato"]
_ENGLISH_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
                   "october", "november", "december")
_MONTH_OF = {name: english for english, names in _MONTHS.items() for name in names}
# English names first: "mar" is March before it is Tuesday in Spanish.
_MONTH_OF.update({name: name[:3] for name in _ENGLISH_MONTHS}, **{name[:3]: name[:3] for name in _ENGLISH_MONTHS},
                 sept="sep")
_WORD = re.compile(r"[^\W\d_]+\.?", re.UNICODE)
# Zone names RFC 822 knows and feeds use beyond them (email.utils reads numeric offsets itself).
_ZONES = {"ut": "+0000", "utc": "+0000", "gmt": "+0000", "z": "+0000", "est": "-0500", "edt": "-0400",
          "cst": "-0600", "cdt": "-0500", "mst": "-0700", "mdt": "-0600", "pst": "-0800", "pdt": "-0700",
          "cet": "+0100", "cest": "+0200", "mez": "+0100", "mesz": "+0200", "bst": "+0100", "brt": "-0300",
          "aest": "+1000", "aedt": "+1100"}


_HHMM = re.compile(r"^(\d{1,2} \w+ \d{2,4}) (\d{2})(\d{2})(?=\s|$)")


def parse_date(value: Any) -> datetime | None:
    """A feed's date string as aware UTC, or None: RFC 822 with English or localised month and
    day names and numeric offsets (``Seg, 24 Set 2018 19:42:40 -0300``), or ISO 8601."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    iso = parse_utc(text)
    if iso is not None:
        return iso

    def english(match: re.Match[str]) -> str:
        word = match.group(0).rstrip(".").lower()
        if word in _MONTH_OF:
            return _MONTH_OF[word].title()
        if word in _ZONES:
            return _ZONES[word]
        if word in _DAYS or word in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
            return ""  # the weekday says nothing the date does not
        return match.group(0)

    # A weekday name that is also a month ("mar": Tuesday in Spanish, March) is the first word.
    head, sep, rest = text.partition(",")
    body = rest if sep and head.strip().lower().rstrip(".") in _DAYS + ["mon", "tue", "wed", "thu", "fri", "sat",
                                                                             "sun"] else text
    candidate = " ".join(_WORD.sub(english, body).split())
    candidate = _HHMM.sub(r"\1 \2:\3", candidate)  # "03 Apr 02 1500 GMT": a time without colons
    try:
        when = email.utils.parsedate_to_datetime(candidate)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)
