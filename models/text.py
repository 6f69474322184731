"""Text normalisation applied identically before training and before inference.

TweetEval anonymises every handle to ``@user``; doing the same everywhere (and folding URLs
to ``http``) keeps handles and links from acting as spurious sentiment features.
"""

from __future__ import annotations

import re

_HANDLE = re.compile(r"(?<!\w)@\w{1,50}")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalise_for_model(text: str) -> str:
    text = _URL.sub("http", text)
    text = _HANDLE.sub("@user", text)
    return _SPACE.sub(" ", text).strip()
