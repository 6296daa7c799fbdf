"""Benchmark: the sentiment component's quality (held out) and cost per message.

    python -m bench.sentiment
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from sklearn.metrics import f1_score

from bot.brand import PROJECT_ROOT
from bot.nlu.sentiment import LABELS, SentimentModel, held_out_split, load_examples


def main() -> int:
    examples = load_examples(PROJECT_ROOT / "data" / "nlu" / "sentiment.yml")
    train, held_out = held_out_split(examples)
    model = SentimentModel().fit([t for t, _ in train], [label for _, label in train])
    gold = [label for _, label in held_out]
    predicted = [label for label, _ in model.predict([t for t, _ in held_out])]
    per_label = f1_score(gold, predicted, labels=list(LABELS), average=None)
    timings = []
    for text, _ in held_out * 5:  # one message at a time, as in production
        start = time.perf_counter()
        model.predict([text])
        timings.append((time.perf_counter() - start) * 1000)
    print(json.dumps({
        "train_examples": len(train), "held_out_examples": len(held_out),
        "f1": {label: round(float(f), 3) for label, f in zip(LABELS, per_label, strict=True)},
        "macro_f1": round(float(per_label.mean()), 3),
        "ms_per_message_median": round(statistics.median(timings), 3),
        "ms_per_message_p99": round(sorted(timings)[int(0.99 * (len(timings) - 1))], 3),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
