"""Loading NLU training and test data as Rasa reads it, for evaluation.

Rasa's `load_data` on the whole data/nlu folder rejects our sentiment file
(its own top-level key), so files are loaded one by one and merged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, List

import yaml

from bot.trainer.metrics import Labelled

if TYPE_CHECKING:
    from rasa.shared.nlu.training_data.training_data import TrainingData


def nlu_files(*roots: Path, key: str = "nlu") -> List[Path]:
    """The YAML files under the roots whose top level has ``key``.

    ``nlu`` finds Rasa NLU data; ``sentiment`` finds our sentiment files.
    """
    files = []
    for root in roots:
        candidates = [root] if root.is_file() else sorted(root.rglob("*.y*ml"))
        for path in candidates:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if isinstance(content, dict) and key in content:
                files.append(path)
    return files


def load_training_data(files: Iterable[Path]) -> TrainingData:
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData

    parts = [load_data(str(path)) for path in files]
    return parts[0].merge(*parts[1:]) if parts else TrainingData()


def labelled(data: TrainingData) -> List[Labelled]:
    """The intent examples as (text, intent, FAQ key, entities)."""
    examples = []
    for message in data.intent_examples:
        key = message.get("intent_response_key") or ""
        examples.append(Labelled(
            text=message.get("text"), intent=message.get("intent"),
            response_key=key if "/" in key else None,
            entities=[{"entity": e["entity"], "value": e["value"]}
                      for e in message.get("entities") or []]))
    return examples
