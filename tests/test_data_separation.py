"""The held-out test sets stay held out: no test example is also a training example."""

from bot.brand import PROJECT_ROOT
from bot.nlu.sentiment import load_examples
from bot.trainer.nlu_files import normalise, read_examples


def _texts(paths, kind):
    return {normalise(e.text): e.where for path in paths for e in read_examples(path)
            if e.block_kind == kind}


def test_no_nlu_test_example_is_in_the_training_data():
    training = _texts(sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml")), "intent")
    test = _texts([PROJECT_ROOT / "tests" / "nlu" / "test_nlu.yml"], "intent")
    shared = sorted(f"{where} (also {training[text]})" for text, where in test.items()
                    if text in training)
    assert not shared, "test examples also used for training:\n" + "\n".join(shared)


def test_no_sentiment_test_example_is_in_the_sentiment_training_file():
    training = {normalise(t) for t, _ in load_examples(PROJECT_ROOT / "data/nlu/sentiment.yml")}
    test = [t for t, _ in load_examples(PROJECT_ROOT / "tests/nlu/sentiment.yml")]
    assert not [t for t in test if normalise(t) in training]
