"""Scoring on third-party development sets (bot/trainer/devsets.py) and its gate."""

import pytest

from bot.trainer import devsets, gate
from bot.trainer.devsets import DevsetError

FIXTURE = devsets.PROJECT_ROOT / "tests" / "fixtures" / "devsets"


def parse(intent, confidence=0.9, ranking=None, sentiment=None):
    result = {"intent": {"name": intent, "confidence": confidence},
              "intent_ranking": ranking or [{"name": intent, "confidence": confidence}]}
    if sentiment:
        result["sentiment"] = {"label": sentiment, "score": 0.9}
    return result


def test_bitext_counts_right_wrong_and_declined_answers():
    rows = [{"text": "a", "accepted_intents": "order_status"},
            {"text": "b", "accepted_intents": "contact_info|request_human"},
            {"text": "c", "accepted_intents": "cancel_order"},
            {"text": "d", "accepted_intents": "cancel_order"}]
    fallback = parse("nlu_fallback", 0.45, [{"name": "nlu_fallback", "confidence": 0.45},
                                            {"name": "cancel_order", "confidence": 0.3}])
    parses = [parse("order_status"), parse("request_human", 0.8), parse("refund_status", 0.6),
              fallback]
    scores = devsets.score_bitext(rows, parses)
    assert (scores["accuracy"], scores["wrong"], scores["fallback"]) == (0.5, 0.25, 0.25)
    assert scores["confusions"] == [
        {"accepted": "cancel_order", "predicted": "refund_status", "count": 1}]
    # Ranked by confidence, the fallback's best guess (right, 0.3) comes last.
    assert [p["accuracy"] for p in scores["curve"]] == [1.0, 1.0, pytest.approx(2 / 3), 0.75]
    assert scores["risk_coverage"] == {"accuracy_at_80": 0.75, "accuracy_at_95": 0.75}


def test_offtopic_offensive_and_sentiment_measures():
    rows = [{"text": t} for t in "abcd"]
    handled = devsets.score_offtopic(rows, [parse("out_of_scope"), parse("nlu_fallback"),
                                            parse("faq"), parse("out_of_scope")])
    assert handled["handled"] == 0.75 and handled["taken_for"] == {"faq": 1}
    labelled = [{"text": "x", "label": label}
                for label in ("offensive", "offensive", "not-offensive", "not-offensive")]
    offensive = devsets.score_offensive(labelled, [parse("greet", sentiment=s) for s in
                                                   ("hostile", "negative", "neutral", "neutral")])
    assert offensive["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    tweets = [{"text": "x", "label": label} for label in ("negative", "negative", "positive")]
    sentiment = devsets.score_sentiment(tweets, [parse("greet", sentiment=s) for s in
                                                 ("hostile", "neutral", "positive")])
    assert sentiment["f1_negative"] == pytest.approx(2 / 3)  # hostile counts as negative


def test_loading_reads_every_known_file_and_reports_bad_ones(tmp_path):
    loaded = devsets.load(FIXTURE)
    assert loaded.present == ["bitext", "offtopic", "offensive", "sentiment"]
    assert len(loaded.rows["bitext"]) == 8
    assert devsets.load(tmp_path).present == []
    (tmp_path / "bitext_validation.csv").write_text("text,intent\nhello,greet\n")
    with pytest.raises(DevsetError, match="missing column"):
        devsets.load(tmp_path)


def test_the_gate_guards_devset_scores_both_ways(tmp_path):
    summary = {"test": {"macro_f1": 0.95, "intents": {}},
               "devsets": {"bitext": {"accuracy": 0.85, "wrong": 0.04},
                           "offtopic": {"handled": 0.95}}}
    path = tmp_path / "baseline.json"
    gate.update_baseline(path, summary)
    worse = {**summary, "devsets": {"bitext": {"accuracy": 0.80, "wrong": 0.09},
                                    "offtopic": {"handled": 0.95}}}
    assert gate.check_against_baseline(path, worse) == [
        "third-party requests (bitext) accuracy fell from 0.850 to 0.800 (allowed drop 0.020)",
        "third-party wrong-answer share (bitext) rose from 0.040 to 0.090 (allowed rise 0.020)"]
    # A run without the sets is not compared, and accepting it keeps the old numbers.
    assert gate.check_against_baseline(path, {**summary, "devsets": None}) == []
    gate.update_baseline(path, {**summary, "devsets": None})
    assert gate.load_baseline(path)["devsets"]["bitext"]["wrong"] == 0.04
