"""Benchmark: the sentiment component's quality (held out) and cost per message.

    python -m bench.sentiment
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from bot.brand import PROJECT_ROOT
from bot.nlu.sentiment import SentimentModel, held_out_split, load_examples
from bot.trainer.sentiment_eval import evaluate_sentiment

DATA = PROJECT_ROOT / "data" / "nlu" / "sentiment.yml"


def main() -> int:
    quality = evaluate_sentiment(DATA)
    train, held_out = held_out_split(load_examples(DATA))
    model = SentimentModel().fit([t for t, _ in train], [label for _, label in train])
    timings = []
    for text, _ in held_out * 5:  # one message at a time, as in production
        start = time.perf_counter()
        model.predict([text])
        timings.append((time.perf_counter() - start) * 1000)
    print(json.dumps({
        "train_examples": quality["train_examples"],
        "held_out_examples": quality["held_out_examples"],
        "f1": {label: round(f1, 3) for label, f1 in quality["labels"].items()},
        "macro_f1": round(quality["macro_f1"], 3),
        "cv_macro_f1": round(quality["cv_macro_f1"], 3),
        "ms_per_message_median": round(statistics.median(timings), 3),
        "ms_per_message_p99": round(sorted(timings)[int(0.99 * (len(timings) - 1))], 3),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
