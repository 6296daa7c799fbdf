"""Writing the evaluation into reports/: tables, confused pairs, charts, summary.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from bot.trainer import devsets
from bot.trainer.metrics import NluScores


def write_reports(folder: Path, summary: Dict[str, Any], test: NluScores,
                  cv: Optional[NluScores], devset_results: Optional[Dict[str, Any]] = None,
                  devset_folder: Optional[Path] = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    report = intent_report(summary, test, cv)
    if devset_folder is not None:
        report += "\n" + devsets.report(devset_results or {}, devset_folder)
    (folder / "intent_report.md").write_text(report, encoding="utf-8")
    if devset_results:
        risk_coverage_png(devset_results, folder / "risk_coverage.png")
    (folder / "confused_pairs.md").write_text(confused_pairs_report(test, cv), encoding="utf-8")
    confusion_matrix_png(test, folder / "confusion_matrix.png")
    confidence_histogram_png(test, folder / "confidence_histogram.png")


def _intent_table(scores: NluScores) -> List[str]:
    lines = ["| intent | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, row in sorted(scores.intents.items(), key=lambda kv: (kv[1]["f1"], kv[0])):
        lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | "
                     f"{row['f1']:.3f} | {int(row['support'])} |")
    lines.append(f"| **macro** | | | **{scores.macro_f1:.3f}** | {len(scores.outcomes)} |")
    return lines


def intent_report(summary: Dict[str, Any], test: NluScores, cv: Optional[NluScores]) -> str:
    lines = ["# NLU evaluation", "", f"Model: `{summary['model']}`", "",
             f"## Test set ({len(test.outcomes)} hand-written examples, never trained on)", "",
             *_intent_table(test), "",
             f"FAQ answer selection: {test.faq_accuracy:.1%} · "
             f"fallback (clarify) rate: {test.fallback_rate:.1%}", ""]
    if test.entities:
        lines += ["| entity | precision | recall | F1 |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} |"
                  for name, row in sorted(test.entities.items())]
        lines.append("")
    if cv is not None:
        folds = summary["cross_validation"]["folds"]
        lines += [f"## {folds}-fold cross-validation on the training data "
                  f"({len(cv.outcomes)} examples)", "", *_intent_table(cv), "",
                  f"FAQ answer selection: {cv.faq_accuracy:.1%}", ""]
    sentiment = summary.get("sentiment")
    if sentiment:
        test = sentiment.get("test") or {}
        lines += ["## Sentiment", "",
                  f"F1 on the test set ({test.get('examples', 0)} hand-written examples) and "
                  f"on a held-out fifth of the training file "
                  f"({sentiment['held_out_examples']} examples).", "",
                  "| label | test set | held out |", "|---|---:|---:|"]
        for label, f1 in sentiment["labels"].items():
            on_test = f"{test['labels'][label]:.3f}" if test else "–"
            lines.append(f"| {label} | {on_test} | {f1:.3f} |")
        macro_test = f"**{test['macro_f1']:.3f}**" if test else "–"
        lines.append(f"| **macro** | {macro_test} | **{sentiment['macro_f1']:.3f}** |")
        if "cv_macro_f1" in sentiment:
            lines.append(f"\n{sentiment['cv_folds']}-fold cross-validation macro-F1: "
                         f"{sentiment['cv_macro_f1']:.3f}")
        lines.append("")
    return "\n".join(lines)


def _pairs(scores: NluScores, title: str) -> List[str]:
    pairs = scores.confused_pairs()
    lines = [f"## {title}", ""]
    if not pairs:
        return lines + ["No confusions.", ""]
    for gold, predicted, count, texts in pairs:
        lines.append(f"### {gold} → {predicted} ({count}×)")
        lines += [f"- {text}" for text in texts]
        lines.append("")
    return lines


def confused_pairs_report(test: NluScores, cv: Optional[NluScores]) -> str:
    lines = ["# Most confused intents", "",
             "True intent → what the model said, with examples. Fix by rewording or moving "
             "training examples so the two intents are told apart.", ""]
    lines += _pairs(test, "Test set")
    if cv is not None:
        lines += _pairs(cv, "Cross-validation")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(scores: NluScores, path: Path) -> None:
    from sklearn.metrics import confusion_matrix

    plt = _pyplot()
    gold = [o.example.intent for o in scores.outcomes]
    predicted = [o.predicted for o in scores.outcomes]
    labels = sorted(set(gold) | set(predicted))
    matrix = confusion_matrix(gold, predicted, labels=labels)
    # Colour by share of each true intent, so a big intent (faq) doesn't wash out the rest.
    shares = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1)
    size = max(6, 0.32 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true intent")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                          color="white" if shares[i, j] > 0.5 else "crimson")
    axes.set_title("Intent confusion matrix (test set; colour: share of the true intent)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def confidence_histogram_png(scores: NluScores, path: Path) -> None:
    plt = _pyplot()
    right = [o.confidence for o in scores.outcomes if o.correct]
    wrong = [o.confidence for o in scores.outcomes if not o.correct]
    figure, axes = plt.subplots(figsize=(7, 4))
    bins = [i / 20 for i in range(21)]
    axes.hist([right, wrong], bins=bins, stacked=True, color=["seagreen", "crimson"],
              label=[f"correct ({len(right)})", f"wrong ({len(wrong)})"])
    axes.set_xlabel("confidence of the predicted intent")
    axes.set_ylabel("examples")
    axes.set_title("Intent confidence (test set)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def risk_coverage_png(results: Dict[str, Any], path: Path) -> bool:
    """Bitext's risk-coverage curve: answering only above a confidence threshold.

    False (no file) when there is no bitext set.
    """
    bitext = results.get("bitext")
    if not bitext or not bitext["curve"]:
        return False
    plt = _pyplot()
    curve = bitext["curve"]
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    axes.plot([p["coverage"] for p in curve], [p["accuracy"] for p in curve], color="seagreen")
    for coverage in devsets.COVERAGE_POINTS:
        value = devsets.accuracy_at(curve, coverage)
        if value is not None:
            axes.scatter([coverage], [value], color="crimson", zorder=3)
            axes.annotate(f"{value:.2f} at {coverage:.0%}", (coverage, value),
                          textcoords="offset points", xytext=(-80, -14), fontsize=8)
    axes.set_xlabel("coverage: share of messages answered")
    axes.set_ylabel("accuracy of the answered messages")
    axes.set_title(f"Risk-coverage on third-party requests ({bitext['examples']} messages)")
    axes.set_xlim(0, 1.01)
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
