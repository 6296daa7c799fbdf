"""Which customer messages report the same problem: cheap, explainable, no model.

A message can belong to an incident only if it reports a *symptom*: something
broken (a crash, "down", an error, a failed or declined payment, a page that
will not load, a sign-in that does not work). That gate is what keeps ordinary
traffic out: twenty different "where is my order?" questions in a quarter of
an hour share words, but no symptom, so they are never an incident; twenty
"the tracking page is down" are.

Two reports are *alike* when all three hold:
- they read alike: cosine similarity, averaged over hashed word uni/bigrams of
  the content words (stop words removed, crude stems, symptoms as concepts, so
  "froze" and "keeps crashing" agree) and character 3-5-grams (typos, "log in"
  and "login"), is at least ``similarity``;
- they share a symptom concept;
- they share a subject word ("app", "checkout", "card", "tracking"...).
An incident forms when one report is alike with reports from at least
``min_conversations - 1`` other conversations within the window; a later
message joins an incident when it is alike with at least two of its reports.

Hashing (scikit-learn's HashingVectorizer) needs no fitting, so every gateway
replica computes the same vectors with no shared state, in microseconds.
Nothing here touches the store or the clock: ``replay`` runs the same steps
over a list of timestamped messages, for the evaluation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Set

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, HashingVectorizer

from bot.brand import IncidentSettings
from bot.privacy import to_placeholders

# Symptom concepts: what a report of something broken says, in the ways customers say it.
_NEGATED = (r"(?:not|cannot|can ?not|cant|wont|will not|doesnt|does not|dont|do not|isnt|"
            r"is not|arent|are not|didnt|did not|unable to|stopped|never)")
SYMPTOMS: Dict[str, re.Pattern] = {name: re.compile(pattern) for name, pattern in {
    "crash": r"\bcrash\w*|\bfr[eo]ez\w*|\bfroze\b|\bkeeps? (?:closing|shutting)|"
             r"\bclos(?:es|ing) (?:itself|on me|by itself)|\bforce clos",
    "down": r"\b(?:is|are|was|went|goes|gone|been|seems?|looks?|still|all|site|page|app|it)"
            r" down\b|\bdown (?:again|for everyone|right now|atm|today)\b|\boutage\b|"
            r"\boffline\b",
    "error": r"\berrors?\b|\b(?:404|500|502|503)\b|\bsomething went wrong\b|\boops\b",
    "failed": r"\bfail\w*|\bdeclin\w*|\breject\w*|\b(?:didnt|wont|not|doesnt|wouldnt) go "
              r"through\b|\b" + _NEGATED + r" (?:pay|process|check ?out)\b",
    "broken": r"\bbroken\b|\bbugg?(?:y|ed)?\b|\bglitch\w*|\b" + _NEGATED + r" work\w*",
    "wont_load": r"\b" + _NEGATED + r" (?:load|open|show|display|connect)\w*|"
                 r"\b(?:blank|white) (?:screen|page)\b|\bkeeps? loading\b|"
                 r"\bloading forever\b|\bjust spins\b|\bspinning\b|\btim(?:es|ed|ing) out\b|"
                 r"\bstuck (?:on|loading)\b",
    "cant_sign_in": r"\b" + _NEGATED + r" (?:log ?in|sign ?in|log on)\b|"
                    r"\b(?:login|log in|sign in) (?:is |isnt |not )?(?:broken|failing|fails)",
}.items()}
# A problem that is over, or was one customer's some time ago, is no incident now.
_NOT_NOW = re.compile(r"\b(?:yesterday|last (?:week|night|month)|(?:fine|ok|okay|working|sorted)"
                      r" now|works now)\b")
# Words that say a symptom (not what is broken); they are no subject.
_SYMPTOM_WORDS = {
    "crash", "freez", "froz", "frozen", "down", "error", "fail", "failur", "declin",
    "reject", "broken", "bug", "buggy", "glitch", "work", "load", "open", "outag", "offlin",
    "oop", "wrong", "keep", "stuck", "spin", "blank", "white", "screen", "time", "close",
    "clos", "shut", "through", "unabl", "stop",
}
# Greetings, politeness and filler a customer adds to any message.
_FILLER = {
    "hi", "hello", "hey", "hiya", "morning", "afternoon", "evening", "thank", "thanks", "pleas",
    "help", "just", "anyon", "anyone", "els", "else", "today", "now", "right", "guy", "guys",
    "team", "lol", "ok", "okay", "sorry", "tri", "try", "trying", "time", "keep", "still",
    "again", "know", "get", "got", "say", "says", "said", "happen", "thing", "want", "need",
    "like", "realli", "really", "tell", "use", "using", "wait", "minut", "hour", "ago", "sure",
    "ive", "im", "id", "dont", "cant", "wont", "doesnt", "isnt", "didnt", "u", "ur", "pls",
    "plz", "mate", "eh", "doe", "does", "did", "anybodi", "anybody", "mine", "same", "issu",
    "problem", "fix",
}
_STOP = ENGLISH_STOP_WORDS | _FILLER
_CONTRACTIONS = [("can't", "cannot"), ("won't", "will not"), ("n't", " not"), ("'m", ""),
                 ("'ve", ""), ("'s", ""), ("'re", ""), ("'ll", ""), ("'d", "")]
_WORDS = HashingVectorizer(analyzer=str.split, ngram_range=(1, 1), n_features=2**18,
                           alternate_sign=False, norm="l2")
_CHARS = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=2**18,
                           alternate_sign=False, norm="l2")


def stem(word: str) -> str:
    """A crude, fixed stem: crashing/crashed/crashes -> crash, pages -> pag, logging -> log."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[:-len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # logg -> log, stopp -> stop
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def normalise(text: str) -> str:
    """Lower case, contractions spelt out, personal details as placeholders (<order_number>)."""
    text = to_placeholders(text).lower().replace("\u2019", "'")
    for short, long in _CONTRACTIONS:
        text = text.replace(short, long)
    return re.sub(r"[^a-z0-9<>_ ]+", " ", text).strip()


@dataclass(frozen=True)
class Report:
    """One customer message, as the matcher sees it."""

    symptoms: FrozenSet[str]
    subjects: FrozenSet[str]
    # Words and characters, each L2-normalised, halves of one row; None for a message
    # that reports no symptom (most of them): nothing compares those, so none is made.
    vector: Optional[sparse.csr_matrix]

    @property
    def is_symptom(self) -> bool:
        return bool(self.symptoms)


def read(text: str) -> Report:
    """What a message reports: its symptoms, its subject words and its vector."""
    clean = re.sub(r"<\w+>", " ", normalise(text))  # an order number is nobody's subject
    flat = re.sub(r"[^a-z ]+", " ", clean)
    symptoms = frozenset(name for name, pattern in SYMPTOMS.items() if pattern.search(flat)
                         and not _NOT_NOW.search(flat))
    stems = [stem(w) for w in flat.split() if w not in _STOP and len(w) > 1]
    content = [s for s in stems if s not in _STOP]
    subjects = frozenset(s for s in content if s not in _SYMPTOM_WORDS and len(s) > 2)
    if not symptoms:
        return Report(symptoms, subjects, None)
    words = content + [f"{a}_{b}" for a, b in zip(content, content[1:], strict=False)]
    words += [f"symptom_{name}" for name in sorted(symptoms)] * 2
    word_vector = _WORDS.transform([" ".join(words)])
    char_vector = _CHARS.transform([" ".join(content)])
    vector = sparse.hstack([word_vector, char_vector]).tocsr() * np.sqrt(0.5)
    return Report(symptoms, subjects, vector)


def similarity(a: Report, b: Report) -> float:
    return float(a.vector.multiply(b.vector).sum())


def alike(a: Report, b: Report, threshold: float) -> bool:
    """The pair rule: two symptom reports that share a subject word and read alike."""
    return (a.is_symptom and b.is_symptom and bool(a.subjects & b.subjects)
            and similarity(a, b) >= threshold)


@dataclass(frozen=True)
class Candidate:
    """A symptom report waiting in the window, not yet part of an incident."""

    key: int  # the message's id
    conversation_id: str
    report: Report


def find_group(candidates: Sequence[Candidate], settings: IncidentSettings) -> List[int]:
    """Keys of the largest group of alike reports from at least ``min_conversations``
    conversations (one report and the reports alike with it), or [] when there is none."""
    best: List[int] = []
    best_size = 0
    for seed in candidates:
        group = [seed] + [c for c in candidates if c.conversation_id != seed.conversation_id
                          and alike(seed.report, c.report, settings.similarity)]
        size = len({c.conversation_id for c in group})
        if size >= settings.min_conversations and size > best_size:
            best, best_size = [c.key for c in group], size
    return best


MIN_AGREEING = 2  # a later message joins an incident alike with this many of its reports


def joins(report: Report, members: Sequence[Report], settings: IncidentSettings) -> bool:
    """Whether a new message reports the same problem as an incident's reports."""
    if not report.is_symptom:
        return False
    agreeing = sum(1 for m in members if alike(report, m, settings.similarity))
    return agreeing >= min(MIN_AGREEING, len(members))


def key_terms(members: Sequence[Report], limit: int = 5) -> List[str]:
    """What the reports have in common, most shared first: the incident's short title."""
    counts: Dict[str, int] = {}
    for member in members:
        for term in member.symptoms | member.subjects:
            counts[term] = counts.get(term, 0) + 1
    common = [t for t, n in counts.items() if n * 2 >= len(members)]
    return sorted(common, key=lambda t: (-counts[t], t not in SYMPTOMS, t))[:limit]


# --- replaying a day's messages (the evaluation; the gateway's desk does the same) --------
@dataclass(frozen=True)
class Message:
    key: int
    conversation_id: str
    text: str
    at: float  # seconds


@dataclass
class Found:
    """An incident found by ``replay``: the messages it holds, in order."""

    keys: List[int]
    reports: List[Report] = field(default_factory=list)


def replay(messages: Sequence[Message], settings: IncidentSettings) -> List[Found]:
    """The incidents these messages make, taken in time order as the gateway takes them:
    a symptom report joins an incident it matches, else waits in the window, where a
    group of ``min_conversations`` alike reports becomes a new incident."""
    window = settings.window_minutes * 60
    found: List[Found] = []
    waiting: List[Candidate] = []
    times: Dict[int, float] = {}
    for message in sorted(messages, key=lambda m: m.at):
        report = read(message.text)
        if not report.is_symptom:
            continue
        incident = next((f for f in found if joins(report, f.reports, settings)), None)
        if incident is not None:
            incident.keys.append(message.key)
            incident.reports.append(report)
            continue
        times[message.key] = message.at
        waiting = [c for c in waiting if times[c.key] >= message.at - window]
        waiting.append(Candidate(message.key, message.conversation_id, report))
        group: Set[int] = set(find_group(waiting, settings))
        if group:
            members = [c for c in waiting if c.key in group]
            found.append(Found([c.key for c in members], [c.report for c in members]))
            waiting = [c for c in waiting if c.key not in group]
    return found


def first_match(report: Report, incidents: Sequence[Sequence[Report]],
                settings: IncidentSettings) -> Optional[int]:
    """The index of the first incident ``report`` joins, or None."""
    return next((i for i, members in enumerate(incidents) if joins(report, members, settings)),
                None)
