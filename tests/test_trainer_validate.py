"""The trainers' data checks (`make validate`), each on small fixture data."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bot.brand import PROJECT_ROOT
from bot.trainer import validate


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def examples(n: int, word: str) -> str:
    return "".join(f"    - {word} number {i}\n" for i in range(n))


def findings_for(tmp_path: Path, nlu: str, domain: str = "responses: {}\n"):
    data = tmp_path / "nlu"
    data.mkdir()
    write(data, "topic.yml", nlu)
    return validate.check(data, write(tmp_path, "domain.yml", domain))


def test_the_shipped_data_has_no_errors():
    findings = validate.check(PROJECT_ROOT / "data" / "nlu", PROJECT_ROOT / "domain.yml")
    assert [f for f in findings if f.level == "error"] == []


def test_the_same_example_under_two_intents_is_an_error_with_both_places(tmp_path):
    nlu = ('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n' + examples(25, "hi")
           + "    - Hello there!\n- intent: goodbye\n  examples: |\n" + examples(25, "bye")
           + "    - hello there\n")
    [finding] = findings_for(tmp_path, nlu)
    assert finding.level == "error"
    assert finding.where.endswith("topic.yml:30")
    assert "['goodbye', 'greet']" in finding.message and "topic.yml:58" in finding.message


def test_near_duplicates_across_intents_are_a_warning(tmp_path):
    nlu = ('version: "3.1"\nnlu:\n- intent: order_status\n  examples: |\n'
           + examples(25, "track") + "    - where is order 123456\n"
           + "- intent: cancel_order\n  examples: |\n" + examples(25, "cancel")
           + "    - order 999999 where is\n")
    [finding] = findings_for(tmp_path, nlu)
    assert finding.level == "warning" and "nearly repeats" in finding.message


def test_too_few_examples_is_an_error_saying_how_many_more(tmp_path):
    nlu = 'version: "3.1"\nnlu:\n- intent: praise\n  examples: |\n' + examples(20, "love")
    [finding] = findings_for(tmp_path, nlu)
    assert "praise has 20 examples, fewer than 25" in finding.message
    assert "write 5 more" in finding.hint


def test_faq_answers_and_examples_must_match(tmp_path):
    nlu = ('version: "3.1"\nnlu:\n- intent: faq/gift_cards\n  examples: |\n'
           + examples(8, "gift card"))
    domain = "responses:\n  utter_faq/careers:\n  - text: jobs page\n"
    messages = {f.message for f in findings_for(tmp_path, nlu, domain)}
    assert "faq/gift_cards has examples but no answer" in messages
    assert "utter_faq/careers answers a question no example asks" in messages


def test_entities_must_be_annotated_consistently(tmp_path):
    nlu = ('version: "3.1"\nnlu:\n- intent: order_status\n  examples: |\n'
           + examples(24, "track") + "    - where is my [hoodie](product)\n"
           + "    - the hoodie has not come\n    - [hoodie](color) please\n"
           + "- lookup: product\n  examples: |\n    - hoodie\n")
    findings = findings_for(tmp_path, nlu)
    assert any(f.level == "error" and "annotated as ['color', 'product']" in f.message
               for f in findings)
    assert any(f.level == "warning" and f.where.endswith("topic.yml:30")
               and "[hoodie](" in f.hint for f in findings)


def test_sentiment_labels_must_be_in_the_label_set(tmp_path):
    nlu = 'version: "3.1"\nsentiment:\n- label: furious\n  examples: |\n    - grr\n'
    [finding] = findings_for(tmp_path, nlu)
    assert "sentiment label 'furious'" in finding.message


def test_the_command_exits_non_zero_on_errors(tmp_path, capsys):
    data = tmp_path / "nlu"
    data.mkdir()
    write(data, "x.yml", 'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n')
    domain = write(tmp_path, "domain.yml", "responses: {}\n")
    assert validate.main(["--data", str(data), "--domain", str(domain)]) == 1
    assert "1 error(s), 0 warning(s)" in capsys.readouterr().out
