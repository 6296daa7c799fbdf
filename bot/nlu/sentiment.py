"""Sentiment of every message, as a Rasa NLU component.

Adds ``"sentiment": {"label": "hostile" | "negative" | "neutral" | "positive",
"score": <probability>}`` to each parse result, so escalation can react to a
customer turning hostile or souring over several turns.

Hostile means abusive, insulting, threatening or swearing *at* someone;
negative is dissatisfied but civil. The model is a linear classifier over
character and word n-grams, the pretrained sentence encoder's vector (what the
message means, beyond its words; bot/nlu/encoder.py), and lexicon signals:
VADER's polarity scores (the vaderSentiment package ships its lexicon) and
whether profanity, including censored forms like f*ck and sh!t, is aimed at
"you". A message it calls hostile stays hostile only with abusive language in
it: alt-profanity-check's offensive probability (a model shipped in that
package) or our abuse and threat patterns; otherwise it is negative. It is
trained from
``data/nlu/sentiment.yml``, which trainers edit; that file's content is part of
the component's fingerprint, so changing it retrains the component.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import yaml
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bot.nlu.encoder import shared_encoder
from bot.nlu.linear import linear_probabilities
from bot.nlu.stored_model import StoredModelComponent

LABELS = ("hostile", "negative", "neutral", "positive")
SENTIMENT = "sentiment"
MODEL_FILE = "sentiment.joblib"

# Swearing, plain or censored (f*ck, f**k, sh!t, b*llocks...), and insulting words.
_ABUSIVE = re.compile(
    r"\b(f[\W_u]?[\W_c]?k\w*|f\*+\w*|fk\w*|sh[i!1*]t\w*|b[o*]ll[o*]cks|bastard\w*|"
    r"crap\w*|wtf|ffs|stfu|piss\w*|d[i*]ck\w*|twat\w*|w[a*]nk\w*|arse\w*|ass(hole)?s?|"
    r"damn\w*|bloody|idiot\w*|moron\w*|clown\w*|useless|pathetic|scum\w*|thie(f|ves)|"
    r"incompetent|stupid|liars?|crooks?|joke)\b",
    re.IGNORECASE,
)
_AT_SOMEONE = re.compile(r"\b(you|your|you're|youre|u|ur|yall|y'all|lot|staff|team)\b",
                         re.IGNORECASE)
_THREAT = re.compile(r"\b(i'?ll|gonna|going to|will)\b.{0,30}\b(find|come|sort|hurt|smash|"
                     r"destroy|end)\b", re.IGNORECASE)


def load_examples(path: Path) -> List[Tuple[str, str]]:
    """(text, label) pairs from a sentiment data file; errors name the problem."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    blocks = data.get("sentiment")
    if not isinstance(blocks, list):
        raise ValueError(f"{path}: expected a top-level 'sentiment:' list")
    examples: List[Tuple[str, str]] = []
    for block in blocks:
        label = block.get("label")
        if label not in LABELS:
            raise ValueError(f"{path}: label {label!r} is not one of {LABELS}")
        for line in str(block.get("examples", "")).splitlines():
            text = line.strip()
            if text.startswith("- "):
                examples.append((text[2:].strip(), label))
    return examples


def held_out_split(examples: List[Tuple[str, str]], every: int = 5
                   ) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    """(train, held out): every ``every``-th example of each label is held out."""
    train, held_out = [], []
    seen = {label: 0 for label in LABELS}
    for text, label in examples:
        seen[label] += 1
        (held_out if seen[label] % every == 0 else train).append((text, label))
    return train, held_out


class SentimentModel:
    """The classifier itself, independent of Rasa (trained, saved, evaluated)."""

    # How much the encoder's vector counts next to the n-grams (unit vectors,
    # so 384 small values; scaled to carry weight in the regularised model).
    ENCODER_WEIGHT = 0.7
    # Hostile needs abusive language: the profanity model's probability at
    # least this, or our abuse/threat patterns. Without it the encoder reads
    # any heated post (politics, sport) as hostile; such a message is negative.
    HOSTILE_EVIDENCE = 0.15

    def __init__(self) -> None:
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                     min_df=1, lowercase=True)
        self.words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                     token_pattern=r"[\w*!']+", lowercase=True)
        self.classifier = LogisticRegression(C=8.0, max_iter=3000, class_weight="balanced")
        self._vader = SentimentIntensityAnalyzer()

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_vader")  # rebuilt from the package's lexicon on load
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._vader = SentimentIntensityAnalyzer()

    @staticmethod
    def _offensive(texts: List[str]) -> np.ndarray:
        """alt-profanity-check's probability that each text is offensive."""
        from profanity_check import predict_prob

        return predict_prob(list(texts)) if texts else np.zeros(0)

    def _signals(self, texts: List[str]) -> csr_matrix:
        rows = []
        for text in texts:
            vader = self._vader.polarity_scores(text)
            letters = [c for c in text if c.isalpha()]
            caps = sum(c.isupper() for c in letters) / len(letters) if letters else 0.0
            profane = bool(_ABUSIVE.search(text))
            at_someone = bool(_AT_SOMEONE.search(text))
            rows.append([
                vader["neg"], vader["pos"], vader["compound"],
                caps, min(text.count("!"), 5) / 5,
                float(profane), float(profane and at_someone),
                float(bool(_THREAT.search(text))),
            ])
        return csr_matrix(np.array(rows))

    def _features(self, texts: List[str]) -> csr_matrix:
        meaning = shared_encoder().encode(texts) * self.ENCODER_WEIGHT
        return hstack([self.chars.transform(texts), self.words.transform(texts),
                       self._signals(texts), csr_matrix(meaning)]).tocsr()

    def fit(self, texts: List[str], labels: List[str]) -> SentimentModel:
        self.chars.fit(texts)
        self.words.fit(texts)
        self.classifier.fit(self._features(texts), labels)
        return self

    def _probabilities(self, texts: List[str]) -> np.ndarray:
        """``predict_proba`` of the stacked features, scored block by block.

        Stacking the four feature blocks into one scipy matrix cost more than
        scoring them; each block times its own columns of the weights sums to
        the same decision values.
        """
        blocks = [self.chars.transform(texts), self.words.transform(texts),
                  self._signals(texts).toarray(),
                  shared_encoder().encode(texts) * self.ENCODER_WEIGHT]
        coef = self.classifier.coef_
        decision = np.tile(self.classifier.intercept_, (len(texts), 1)).astype(np.float64)
        start = 0
        for block in blocks:
            end = start + block.shape[1]
            decision += block @ coef[:, start:end].T
            start = end
        return linear_probabilities(self.classifier, decision)

    def predict(self, texts: List[str]) -> List[Tuple[str, float]]:
        probabilities = self._probabilities(texts)
        classes = list(self.classifier.classes_)
        labels = [classes[int(row.argmax())] for row in probabilities]
        # The profanity model costs a few ms: asked only about hostile-looking texts.
        suspects = [i for i, label in enumerate(labels) if label == "hostile"]
        offensive = dict(zip(suspects, self._offensive([texts[i] for i in suspects]),
                             strict=True))
        results = []
        for i, (text, row) in enumerate(zip(texts, probabilities, strict=True)):
            label, score = labels[i], float(row.max())
            if label == "hostile" and not self._has_abuse(text, float(offensive[i])):
                label = "negative"
                score = float(row[classes.index("hostile")] + row[classes.index("negative")])
            results.append((label, score))
        return results

    def _has_abuse(self, text: str, p_offensive: float) -> bool:
        return (p_offensive >= self.HOSTILE_EVIDENCE or bool(_ABUSIVE.search(text))
                or bool(_THREAT.search(text)))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class SentimentAnalyzer(StoredModelComponent[SentimentModel]):
    """Rasa wrapper: trains from the sentiment file, tags every message."""

    MODEL_FILE = MODEL_FILE

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {"data": "data/nlu/sentiment.yml"}

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        """The data file is not Rasa training data, so its content joins the fingerprint."""
        path = Path(config.get("data", cls.get_default_config()["data"]))
        data = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "none"
        return f"{cls.code_fingerprint()}:{data}"

    def train(self, training_data: TrainingData) -> Resource:
        path = Path(self._config["data"])
        examples = load_examples(path)
        missing = set(LABELS) - {label for _, label in examples}
        if missing:
            raise ValueError(f"{path}: no examples for {sorted(missing)}")
        texts, labels = zip(*examples, strict=False)
        return self._save(SentimentModel().fit(list(texts), list(labels)))

    def process(self, messages: List[Message]) -> List[Message]:
        texts = [m.get("text") or "" for m in messages]
        if self._model is None or not any(texts):
            return messages
        for message, (label, score) in zip(messages, self._model.predict(texts), strict=True):
            message.set(SENTIMENT, {"label": label, "score": round(score, 4)},
                        add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
