"""The sentiment component: held-out quality, hard cases, and its place in Rasa."""

from __future__ import annotations

import asyncio

import pytest
from sklearn.metrics import f1_score

from bot.brand import PROJECT_ROOT
from bot.nlu.sentiment import LABELS, SentimentModel, held_out_split, load_examples

DATA = PROJECT_ROOT / "data" / "nlu" / "sentiment.yml"
MACRO_F1_FLOOR = 0.70  # measured: 0.73 held out, 0.82 in 5-fold CV (472 examples)


@pytest.fixture(scope="module")
def held_out_result():
    train, held_out = held_out_split(load_examples(DATA))
    model = SentimentModel().fit([t for t, _ in train], [label for _, label in train])
    predicted = [label for label, _ in model.predict([t for t, _ in held_out])]
    gold = [label for _, label in held_out]
    per_label = f1_score(gold, predicted, labels=list(LABELS), average=None)
    return model, dict(zip(LABELS, per_label, strict=True)), sum(per_label) / len(per_label)


def test_trainers_data_has_enough_of_every_label():
    examples = load_examples(DATA)
    counts = {label: sum(1 for _, x in examples if x == label) for label in LABELS}
    assert len(examples) >= 400 and min(counts.values()) >= 80, counts
    texts = [t.lower() for t, _ in examples]
    assert len(texts) == len(set(texts)), "duplicate examples"


def test_held_out_macro_f1(held_out_result, capsys):
    _, per_label, macro = held_out_result
    with capsys.disabled():
        print("\nsentiment held-out F1: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                      per_label.items()) + f"; macro {macro:.3f}")
    assert macro >= MACRO_F1_FLOOR, per_label


@pytest.mark.parametrize(("text", "label"), [
    ("you are all useless f*cking clowns, answer me", "hostile"),
    ("three weeks and still no parcel, really disappointed", "negative"),
    ("can you tell me where order JL-204815 is", "neutral"),
    ("omg this jacket is f***ing awesome, love it 😍", "positive"),
])
def test_hard_cases_read_like_a_person_would(held_out_result, text, label):
    model, _, _ = held_out_result
    assert model.predict([text])[0][0] == label


def test_a_label_outside_the_set_is_rejected_with_the_file_named(tmp_path):
    bad = tmp_path / "sentiment.yml"
    bad.write_text('version: "3.1"\nsentiment:\n- label: angry\n  examples: |\n    - grr\n')
    with pytest.raises(ValueError, match="label 'angry' is not one of"):
        load_examples(bad)


@pytest.mark.model
def test_every_parse_result_carries_sentiment(agent):
    async def parse(text):
        return await agent.parse_message(text)

    loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(parse("you useless idiots, where is my refund"))
    finally:
        loop.close()
    assert result["sentiment"]["label"] in LABELS
    assert 0.0 <= result["sentiment"]["score"] <= 1.0
