"""`make evaluate`: reports, and a regression gate that fires on worse data.

Runs the real command on small fixture data (a tiny pipeline trains in
seconds), so the whole path is exercised: training, test set, k-fold
cross-validation, sentiment, reports and the baseline comparison.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.brand import PROJECT_ROOT
from bot.trainer import gate
from bot.trainer.nlu_files import read_examples

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "trainer"
DEVSETS = PROJECT_ROOT / "tests" / "fixtures" / "devsets"


def evaluate(tmp_path: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bot.trainer.evaluate",
               "--config", str(FIXTURE / "config.yml"), "--domain", str(FIXTURE / "domain.yml"),
               "--data", str(data), "--test", str(FIXTURE / "test"),
               "--reports", str(tmp_path / "reports"),
               "--baseline", str(tmp_path / "baseline.json"), "--devsets", str(DEVSETS),
               *extra]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=900)


def worsen(source: Path, target: Path) -> Path:
    """A trainer pastes the order-status examples under refund_request by mistake."""
    shutil.copytree(source, target)
    orders = target / "orders.yml"
    status = [e.raw for e in read_examples(orders) if e.name == "order_status"]
    block = "- intent: refund_request\n  examples: |\n"
    orders.write_text(orders.read_text().replace(
        block, block + "".join(f"    - {text}\n" for text in status)))
    return target


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("evaluate")
    result = evaluate(tmp_path, FIXTURE / "data" / "nlu", "--folds", "2", "--update-baseline")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp_path, result


def test_evaluate_writes_the_reports(baseline_run):
    tmp_path, result = baseline_run
    reports = tmp_path / "reports"
    table = (reports / "intent_report.md").read_text()
    for intent in ("order_status", "refund_request", "cancel_order", "greet", "faq"):
        assert f"| {intent} | " in table
    assert "| intent | precision | recall | F1 | support |" in table
    assert "## 2-fold cross-validation on the training data (76 examples)" in table
    assert "FAQ answer selection" in table
    assert "| label | test set | held out |" in table  # sentiment
    assert "| order_id |" in table  # entities
    assert "# Most confused intents" in (reports / "confused_pairs.md").read_text()
    assert "## Third-party development sets" in table
    assert "| bitext | 8 | accuracy |" in table
    assert "| offtopic | 4 | handled as off-topic |" in table
    for chart in ("confusion_matrix.png", "confidence_histogram.png", "risk_coverage.png"):
        assert (reports / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["test"]["examples"] == 30
    assert summary["cross_validation"]["folds"] == 2
    assert summary["sentiment"]["test"]["examples"] == 12
    devsets = summary["devsets"]
    assert {devsets["bitext"][k] for k in ("accuracy", "wrong", "fallback")} <= {
        i / 8 for i in range(9)}
    assert devsets["bitext"]["accuracy"] + devsets["bitext"]["wrong"] + \
        devsets["bitext"]["fallback"] == pytest.approx(1.0)
    assert set(devsets["bitext"]["risk_coverage"]) == {"accuracy_at_80", "accuracy_at_95"}
    assert 0 <= devsets["offtopic"]["handled"] <= 1
    assert 0 <= devsets["offensive"]["macro_f1"] <= 1
    assert 0 <= devsets["sentiment"]["f1_negative"] <= 1
    baseline = json.loads((tmp_path / "baseline.json").read_text())
    assert baseline["devsets"]["bitext"]["accuracy"] == round(devsets["bitext"]["accuracy"], 4)
    assert baseline["gate"] == gate.DEFAULT_GATE
    assert baseline["test"]["macro_f1"] == round(summary["test"]["macro_f1"], 4)
    assert "Baseline updated" in result.stdout


def test_the_gate_fires_on_a_worsened_dataset(baseline_run, tmp_path):
    base_dir, _ = baseline_run
    shutil.copy(base_dir / "baseline.json", tmp_path / "baseline.json")
    worse = worsen(FIXTURE / "data" / "nlu", tmp_path / "worse")
    result = evaluate(tmp_path, worse, "--folds", "0")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "REGRESSION: test-set intent macro-F1 fell from" in result.stdout
    assert "REGRESSION: intent order_status F1" in result.stdout
    assert "below its floor 0.75, was 1.000" in result.stdout
    # Half the third-party requests are about orders: they go wrong too.
    assert "REGRESSION: third-party requests (bitext) accuracy fell from" in result.stdout
    assert "REGRESSION: third-party wrong-answer share (bitext) rose from" in result.stdout
    confused = (tmp_path / "reports" / "confused_pairs.md").read_text()
    assert "### order_status → refund_request" in confused


def test_unchanged_data_passes_the_gate(baseline_run, tmp_path):
    base_dir, _ = baseline_run
    shutil.copy(base_dir / "baseline.json", tmp_path / "baseline.json")
    result = evaluate(tmp_path, FIXTURE / "data" / "nlu", "--folds", "0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Gate passed" in result.stdout


def test_missing_devsets_are_skipped_with_a_clear_line(baseline_run, tmp_path):
    base_dir, _ = baseline_run
    shutil.copy(base_dir / "baseline.json", tmp_path / "baseline.json")
    result = evaluate(tmp_path, FIXTURE / "data" / "nlu", "--folds", "0",
                      "--devsets", str(tmp_path / "nowhere"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Third-party development sets: " in result.stdout and "not found, skipped" in \
        result.stdout
    assert json.loads((tmp_path / "reports" / "summary.json").read_text())["devsets"] is None


def test_bad_input_is_a_clear_error(tmp_path):
    result = evaluate(tmp_path, tmp_path / "missing", "--folds", "0")
    assert result.returncode == 2
    assert "missing does not exist" in result.stderr
    assert not (tmp_path / "reports").exists()


SUMMARY = {
    "test": {"macro_f1": 0.93, "faq_accuracy": 0.97,
             "intents": {"greet": {"f1": 0.95}, "order_status": {"f1": 0.8}}},
    "cross_validation": {"folds": 3, "macro_f1": 0.9},
    "sentiment": {"macro_f1": 0.73},
}


def test_gate_margin_and_floors(tmp_path):
    path = tmp_path / "baseline.json"
    gate.update_baseline(path, SUMMARY)
    assert gate.check_against_baseline(path, SUMMARY) == []
    slightly = {**SUMMARY, "test": {**SUMMARY["test"], "macro_f1": 0.915}}
    assert gate.check_against_baseline(path, slightly) == []  # within the 0.02 margin
    worse = {**SUMMARY, "cross_validation": {"folds": 3, "macro_f1": 0.85},
             "sentiment": {"macro_f1": 0.70}}
    assert gate.check_against_baseline(path, worse) == [
        "cross-validation intent macro-F1 fell from 0.900 to 0.850 (allowed drop 0.020)",
        "sentiment held-out macro-F1 fell from 0.730 to 0.700 (allowed drop 0.020)"]
    other_folds = {**worse, "cross_validation": {"folds": 5, "macro_f1": 0.85}}
    assert len(gate.check_against_baseline(path, other_folds)) == 1  # CV not comparable
    # Trainers tune the gate in baseline.json; accepting new numbers keeps it.
    settings = json.loads(path.read_text())
    settings["gate"]["intent_floors"] = {"order_status": 0.85}
    path.write_text(json.dumps(settings))
    assert gate.check_against_baseline(path, SUMMARY) == [
        "intent order_status F1 0.800 is below its floor 0.85, was 0.800"]
    gate.update_baseline(path, SUMMARY)
    assert json.loads(path.read_text())["gate"]["intent_floors"] == {"order_status": 0.85}
    # A quick run without CV keeps the accepted CV numbers.
    gate.update_baseline(path, {**SUMMARY, "cross_validation": None})
    assert json.loads(path.read_text())["cross_validation"] == {"folds": 3, "macro_f1": 0.9}


def test_a_missing_baseline_fails_with_the_way_forward(tmp_path):
    [failure] = gate.check_against_baseline(tmp_path / "none.json", SUMMARY)
    assert "there is no baseline" in failure and "--update-baseline" in failure
