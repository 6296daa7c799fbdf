"""Export what real customers said that the bot missed, for trainers to label.

    python -m bot.trainer.review [--out reports/review.yml] [--days 30]

Three sources, all already stored by the running product:
- Rasa's tracker store (endpoints.yml): messages that fell back, had low
  confidence, or whose top two intents were close;
- the gateway's handoffs: the message that made the bot hand over;
- the gateway's "bot misunderstood" marks, set by agents in the web inbox.
Personal data is masked, repeats are merged, and similar messages are
grouped, so a trainer labels a group at a time. Import the labelled file
with `python -m bot.trainer.review_import FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import yaml

from bot.brand import PROJECT_ROOT
from bot.handoff_contract import is_external
from bot.privacy import PLACEHOLDERS, to_placeholders
from bot.rasa_trackers import open_tracker_store
from bot.trainer.metrics import FALLBACK
from bot.trainer.nlu_files import normalise

LOW_CONFIDENCE = 0.6
CLOSE_TOP2 = 0.1
SIMILAR = 0.5  # cosine similarity of character n-grams that puts two messages in a group


@dataclass
class Candidate:
    """One customer message worth a trainer's look (text already masked)."""

    text: str
    reasons: List[str]
    bot_thought: str = ""
    predicted: Optional[str] = None
    seen: int = 1
    notes: List[str] = field(default_factory=list)


def unsure_reasons(parse: Dict[str, Any], low: float = LOW_CONFIDENCE,
                   close: float = CLOSE_TOP2) -> List[str]:
    """Why the NLU result of one message was doubtful; empty when it was clear."""
    ranking = [r for r in parse.get("intent_ranking") or [] if r.get("name") != FALLBACK]
    reasons = []
    if (parse.get("intent") or {}).get("name") == FALLBACK:
        reasons.append("fallback")
    if ranking and ranking[0]["confidence"] < low:
        reasons.append("low_confidence")
    if len(ranking) > 1 and ranking[0]["confidence"] - ranking[1]["confidence"] < close:
        reasons.append("close_top2")
    return reasons


def _bot_thought(parse: Dict[str, Any]) -> tuple:
    ranking = [r for r in parse.get("intent_ranking") or [] if r.get("name") != FALLBACK]
    if not ranking:
        return "", None
    faq = (parse.get("response_selector", {}).get("faq", {}).get("response", {})
           .get("intent_response_key"))
    names = [faq if r["name"] == "faq" and faq else r["name"] for r in ranking[:2]]
    described = ", then ".join(f"{name} ({r['confidence']:.2f})"
                               for name, r in zip(names, ranking, strict=False))
    return described, names[0]


async def from_tracker_store(endpoints: Path, since: float) -> List[Candidate]:
    """Doubtful customer messages from Rasa's conversation history."""
    store = open_tracker_store(endpoints)
    if store is None:
        return []  # in memory, or nothing stored yet: nothing to review
    candidates = []
    for sender in await store.keys():
        tracker = await store.retrieve_full_tracker(sender)
        for event in tracker.events if tracker else []:
            if (getattr(event, "type_name", "") != "user" or (event.timestamp or 0) < since
                    or is_external(event.metadata)):
                continue  # the customer's recent words only, not the gateway's signals
            parse = event.parse_data or {}
            text = event.text or ""
            reasons = unsure_reasons(parse)
            if reasons and text and not text.startswith("/"):
                thought, predicted = _bot_thought(parse)
                candidates.append(Candidate(text, reasons, thought, predicted))
    return candidates


def from_gateway(database_url: str, since: float) -> List[Candidate]:
    """Messages that made the bot hand over, and those agents marked as misunderstood."""
    from sqlalchemy.engine import make_url

    from bot.gateway.store import Store

    path = make_url(database_url).database if database_url.startswith("sqlite:///") else None
    if path and path != ":memory:" and not Path(path).exists():  # the URL may end in ?timeout=
        print(f"note: no gateway conversations yet ({path} does not exist)")
        return []
    store = Store(database_url)
    candidates = []
    for handoff in store.handoff_queue(include_resolved=True):
        turns = (handoff.get("context") or {}).get("turns") or []
        if handoff["created_at"] < since or not turns:
            continue
        last = turns[-1]
        if last.get("text") and not str(last["text"]).startswith("/"):
            thought = f"{last.get('intent')} ({last.get('confidence') or 0:.2f})"
            candidates.append(Candidate(last["text"], [f"escalated: {handoff['reason']}"],
                                        thought, last.get("intent")))
    for mark in store.misunderstood_messages():
        if mark["marked_at"] >= since:
            # Agents' notes can quote the customer: masked like the messages.
            notes = ([f"{mark['agent']}: {to_placeholders(mark['note'])}"] if mark.get("note")
                     else [])
            candidates.append(Candidate(mark["text"], [f"agent_marked: {mark['agent']}"],
                                        notes=notes))
    return candidates


def merge(candidates: Iterable[Candidate]) -> List[Candidate]:
    """Mask personal data, then merge repeats of the same message."""
    merged: Dict[str, Candidate] = {}
    for candidate in candidates:
        text = " ".join(to_placeholders(candidate.text).split())
        key = normalise(text)
        if not key:
            continue
        if key not in merged:
            merged[key] = Candidate(text, [], candidate.bot_thought, candidate.predicted, 0)
        target = merged[key]
        target.seen += candidate.seen
        target.reasons += [r for r in candidate.reasons if r not in target.reasons]
        target.notes += [n for n in candidate.notes if n not in target.notes]
        if not target.bot_thought and candidate.bot_thought:
            target.bot_thought, target.predicted = candidate.bot_thought, candidate.predicted
    return sorted(merged.values(), key=lambda c: (-c.seen, c.text))


def group(candidates: List[Candidate], threshold: float = SIMILAR) -> List[List[Candidate]]:
    """Similar messages together (character n-gram cosine), most frequent first."""
    if not candidates:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit_transform(
        [normalise(c.text) for c in candidates])
    similarity = (vectors @ vectors.T).toarray()
    groups: List[List[int]] = []
    for i in range(len(candidates)):
        for members in groups:
            if similarity[i, members[0]] >= threshold:
                members.append(i)
                break
        else:
            groups.append([i])
    return [[candidates[i] for i in members] for members in groups]


def review_document(groups: List[List[Candidate]]) -> Dict[str, Any]:
    document = []
    for number, members in enumerate(groups, 1):
        predicted = [c.predicted for c in members if c.predicted]
        suggestion = max(set(predicted), key=predicted.count) if predicted else None
        messages = []
        for c in members:
            entry: Dict[str, Any] = {"text": c.text, "seen": c.seen, "why": c.reasons}
            if c.bot_thought:
                entry["bot_thought"] = c.bot_thought
            if c.notes:
                entry["notes"] = c.notes
            entry["label"] = None
            messages.append(entry)
        document.append({"group": number, "suggested": suggestion, "label": None,
                         "messages": messages})
    return {"groups": document}


HEADER = """\
# Customer messages the bot was unsure about: {count} distinct, in {groups} groups.
# Exported {when} by `make review`.
# Personal data is masked as {placeholders}; importing turns these into
# fictional, annotated values.
#
# To label: set `label:` to the intent a message should have (e.g. order_status),
# or faq/<question> for an FAQ (e.g. faq/opening_hours). A group's label applies
# to every message in it without its own label. Leave a label empty to skip.
# Then: make import-review FILE={file}
"""


def write_review(path: Path, groups: List[List[Candidate]]) -> None:
    body = yaml.safe_dump(review_document(groups), sort_keys=False, allow_unicode=True,
                          width=100).replace("label: null", "label:")
    header = HEADER.format(
        count=sum(len(g) for g in groups), groups=len(groups),
        when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        placeholders=", ".join(PLACEHOLDERS), file=_shown(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body, encoding="utf-8")


def _shown(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


async def export(out: Path, endpoints: Path, database_url: str, days: float
                 ) -> List[List[Candidate]]:
    """Collect, mask, merge and group the messages; write the review file."""
    since = time.time() - days * 86400
    candidates = await from_tracker_store(endpoints, since)
    candidates += from_gateway(database_url, since)
    groups = group(merge(candidates))
    write_review(out, groups)
    return groups


def main(argv: Optional[List[str]] = None) -> int:
    from bot.gateway.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "review.yml")
    parser.add_argument("--endpoints", type=Path, default=PROJECT_ROOT / "endpoints.yml",
                        help="Rasa endpoints file naming the tracker store")
    parser.add_argument("--database-url", help="the gateway's store (default: $DATABASE_URL)")
    parser.add_argument("--days", type=float, default=30, help="look back this many days")
    args = parser.parse_args(argv)
    if not args.endpoints.exists():
        parser.error(f"{args.endpoints} does not exist")
    database_url = args.database_url or Settings.from_env().database_url
    try:
        groups = asyncio.run(export(args.out, args.endpoints, database_url, args.days))
    except Exception as error:  # noqa: BLE001 - any store failure is reported, not raised
        print(f"error: could not read the conversation stores: {error}", file=sys.stderr)
        return 1
    count = sum(len(g) for g in groups)
    print(f"{count} message(s) in {len(groups)} group(s) written to {_shown(args.out)}. "
          f"Label them, then run: make import-review FILE={_shown(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
