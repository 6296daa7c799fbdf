"""Evaluate the NLU model and gate regressions against the committed baseline.

    python -m bot.trainer.evaluate [--folds 3] [--update-baseline]

Trains if needed, then scores intents, entities, FAQ answer selection and
sentiment on the hand-written test set (tests/nlu/: NLU files, and a
sentiment file), by k-fold cross-validation on the training data, and on the
third-party development sets in ../shared/devsets/ when present (or
--devsets DIR; bot/trainer/devsets.py). Writes reports/ (tables, confused
pairs, PNG charts including risk_coverage.png, summary.json) and compares
with reports/baseline.json:
exit 1 when macro-F1 falls by more than the margin or an intent falls below
its floor, exit 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from bot.brand import PROJECT_ROOT
from bot.trainer.datasets import labelled, load_training_data, nlu_files
from bot.trainer.devsets import DEFAULT_DEVSETS, DevsetError, Devsets, load
from bot.trainer.devsets import score as score_devsets
from bot.trainer.devsets import summary as devsets_summary
from bot.trainer.devsets import texts as devset_texts
from bot.trainer.metrics import NluScores, score

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """What to evaluate; the defaults are the shipped bot."""

    config: Path = PROJECT_ROOT / "config.yml"
    domain: Path = PROJECT_ROOT / "domain.yml"
    data: Path = PROJECT_ROOT / "data" / "nlu"
    test: Path = PROJECT_ROOT / "tests" / "nlu"
    reports: Path = PROJECT_ROOT / "reports"
    baseline: Path = PROJECT_ROOT / "reports" / "baseline.json"
    model: Optional[Path] = None
    devsets: Optional[Path] = DEFAULT_DEVSETS  # None: skip the external evaluation

    @property
    def is_shipped_bot(self) -> bool:
        default = Inputs()
        return (self.config, self.domain, self.data) == (default.config, default.domain,
                                                         default.data)


class InputError(ValueError):
    """The inputs can't be evaluated (missing files, no examples); nothing was written."""


def ensure_model(inputs: Inputs) -> Path:
    """A model for the inputs: the shipped bot's (trained if stale), or an NLU-only one."""
    if inputs.model:
        return inputs.model
    if inputs.is_shipped_bot:
        from bot.train import train

        return train()
    return train_nlu_model(inputs.config, inputs.domain, inputs.data,
                           inputs.reports / "tmp" / "model")


def train_nlu_model(config: Path, domain: Path, data: Path, output: Path) -> Path:
    from rasa.model_training import train_nlu

    output.mkdir(parents=True, exist_ok=True)
    model = train_nlu(str(config), str(data), str(output), domain=str(domain),
                      fixed_model_name="nlu")
    if not model:
        raise InputError(f"Rasa could not train on {data}; see the log above")
    return Path(model)


async def _parse_all(model: Path, texts: List[str]) -> List[Dict[str, Any]]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    return [await agent.parse_message(text) for text in texts]


def parse_all(model: Path, texts: List[str]) -> List[Dict[str, Any]]:
    return asyncio.run(_parse_all(model, texts))


def cross_validate(inputs: Inputs, folds: int) -> NluScores:
    """Train on k-1 folds of the training data, predict the k-th, score all predictions."""
    from rasa.shared.nlu.training_data.training_data import TrainingData
    from sklearn.model_selection import StratifiedKFold

    data = load_training_data(nlu_files(inputs.data))
    messages = data.intent_examples
    examples = labelled(data)
    keys = [e.key for e in examples]
    parses: List[Dict[str, Any]] = [{}] * len(messages)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=1)
    with tempfile.TemporaryDirectory(prefix="cv-", dir=_tmp(inputs)) as work:
        for fold, (train_idx, test_idx) in enumerate(splitter.split(keys, keys), 1):
            started = time.monotonic()
            fold_data = TrainingData(
                [messages[i] for i in train_idx], entity_synonyms=data.entity_synonyms,
                regex_features=data.regex_features, lookup_tables=data.lookup_tables,
                responses=data.responses)
            fold_dir = Path(work) / f"fold{fold}"
            fold_dir.mkdir()
            fold_data.persist_nlu(str(fold_dir / "nlu.yml"))
            model = train_nlu_model(inputs.config, inputs.domain, fold_dir / "nlu.yml",
                                    fold_dir)
            for i, parse in zip(test_idx, parse_all(model, [examples[i].text for i in test_idx]),
                                strict=True):
                parses[i] = parse
            log.info("Cross-validation fold %d/%d done in %.0f s", fold, folds,
                     time.monotonic() - started)
    return score(examples, parses)


def _tmp(inputs: Inputs) -> Path:
    folder = inputs.reports / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sentiment_data(config: Path) -> Optional[Path]:
    """The sentiment file the pipeline's SentimentAnalyzer trains from, if it has one."""
    pipeline = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("pipeline") or []
    for component in pipeline:
        if str(component.get("name", "")).endswith("SentimentAnalyzer"):
            path = Path(component.get("data", "data/nlu/sentiment.yml"))
            return path if path.is_absolute() else PROJECT_ROOT / path
    return None


def scores_summary(scores: NluScores) -> Dict[str, Any]:
    return {"examples": len(scores.outcomes), "macro_f1": scores.macro_f1,
            "faq_accuracy": scores.faq_accuracy, "fallback_rate": scores.fallback_rate,
            "intents": scores.intents, "entities": scores.entities}


def evaluate(inputs: Inputs, folds: int) -> Dict[str, Any]:
    """Run every evaluation; returns the summary and writes reports/."""
    from bot.nlu.sentiment import load_examples
    from bot.trainer.reports import write_reports
    from bot.trainer.sentiment_eval import evaluate_sentiment, score_test_set

    for path in (inputs.config, inputs.domain, inputs.data, inputs.test):
        if not path.exists():
            raise InputError(f"{path} does not exist")
    test_examples = labelled(load_training_data(nlu_files(inputs.test)))
    if not test_examples:
        raise InputError(f"no labelled examples under {inputs.test}")
    sentiment_file = sentiment_data(inputs.config)
    sentiment_tests = [pair for path in nlu_files(inputs.test, key="sentiment")
                       for pair in load_examples(path)] if sentiment_file else []
    external = load_devsets(inputs.devsets)
    started = time.monotonic()
    model = ensure_model(inputs)
    trained = time.monotonic()
    texts = [e.text for e in test_examples] + [t for t, _ in sentiment_tests]
    parses = parse_all(model, texts + (devset_texts(external) if external else []))
    devset_results = score_devsets(external, parses[len(texts):]) if external else None
    test_scores = score(test_examples, parses[:len(test_examples)])
    cv_scores = cross_validate(inputs, folds) if folds >= 2 else None
    sentiment = evaluate_sentiment(sentiment_file) if sentiment_file else None
    if sentiment and sentiment_tests:
        sentiment["test"] = score_test_set(sentiment_tests, parses[len(test_examples):len(texts)])
    summary: Dict[str, Any] = {
        "model": str(model),
        "test": scores_summary(test_scores),
        "cross_validation": ({"folds": folds, **scores_summary(cv_scores)}
                             if cv_scores else None),
        "sentiment": sentiment,
        "devsets": devsets_summary(devset_results) if devset_results else None,
        "seconds": {"training": round(trained - started),
                    "evaluation": round(time.monotonic() - trained)},
    }
    write_reports(inputs.reports, summary, test_scores, cv_scores, devset_results,
                  inputs.devsets)
    return summary


def load_devsets(folder: Optional[Path]) -> Optional[Devsets]:
    """The development sets in the folder; None (and a line saying so) when there are none."""
    if folder is None:
        return None
    if not folder.is_dir():
        print(f"Third-party development sets: {folder} not found, skipped.")
        return None
    try:
        external = load(folder)
    except DevsetError as error:
        raise InputError(str(error)) from None
    if not external.present:
        print(f"Third-party development sets: none in {folder}, skipped.")
        return None
    return external


def main(argv: Optional[List[str]] = None) -> int:
    from bot.trainer.gate import check_against_baseline, update_baseline

    defaults = Inputs()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=int(os.environ.get("FOLDS", 3)),
                        help="cross-validation folds; 0 skips CV (default 3, or $FOLDS)")
    parser.add_argument("--update-baseline", action="store_true",
                        help="accept these numbers as the new baseline")
    parser.add_argument("--config", type=Path, default=defaults.config)
    parser.add_argument("--domain", type=Path, default=defaults.domain)
    parser.add_argument("--data", type=Path, default=defaults.data, help="NLU training data")
    parser.add_argument("--test", type=Path, default=defaults.test, help="labelled test set")
    parser.add_argument("--model", type=Path, help="evaluate this model instead of training")
    parser.add_argument("--reports", type=Path, default=defaults.reports)
    parser.add_argument("--baseline", type=Path, default=defaults.baseline)
    parser.add_argument("--devsets", type=Path, default=defaults.devsets,
                        help="folder of third-party development sets (default ../shared/devsets)")
    parser.add_argument("--no-devsets", action="store_true",
                        help="skip the third-party development sets")
    args = parser.parse_args(argv)
    if args.folds == 1 or args.folds < 0:
        parser.error("--folds must be 0 (no cross-validation) or at least 2")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from rasa.utils.common import configure_logging_and_warnings

    # As `rasa run` does: without it every parse is logged at debug level, text
    # included, which floods the output and slows the evaluation.
    configure_logging_and_warnings(logging.INFO)
    inputs = Inputs(args.config.resolve(), args.domain.resolve(), args.data.resolve(),
                    args.test.resolve(), args.reports.resolve(), args.baseline.resolve(),
                    args.model.resolve() if args.model else None,
                    None if args.no_devsets else args.devsets.resolve())
    try:
        summary = evaluate(inputs, args.folds)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((inputs.reports / "intent_report.md").read_text(encoding="utf-8"))
    if args.update_baseline:
        update_baseline(inputs.baseline, summary)
        print(f"Baseline updated: {inputs.baseline}")
        return 0
    failures = check_against_baseline(inputs.baseline, summary)
    for failure in failures:
        print(f"REGRESSION: {failure}")
    if failures:
        print("The gate failed. Fix the data, or accept the numbers with "
              "`make evaluate ARGS=--update-baseline`.")
        return 1
    print(f"Gate passed against {inputs.baseline}. Reports in {inputs.reports}/.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
