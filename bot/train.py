"""Train the Rasa model only when its inputs changed.

Rasa's own cache skips retraining unchanged components but still repackages
the model (tens of seconds). A fingerprint of the inputs, stored next to the
model, lets `make run`, `make test` and the tests reuse it outright.

    python -m bot.train [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path
from typing import Iterable, List, Optional

from bot.brand import PROJECT_ROOT

MODEL_NAME = "juniper-lane"
MODELS_DIR = PROJECT_ROOT / "models"
MODEL_PATH = MODELS_DIR / f"{MODEL_NAME}.tar.gz"
FINGERPRINT_PATH = MODELS_DIR / f"{MODEL_NAME}.fingerprint"
DOMAIN = PROJECT_ROOT / "domain.yml"
CONFIG = PROJECT_ROOT / "config.yml"
DATA = PROJECT_ROOT / "data"

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Rasa could not train a model from the current data."""


def training_inputs(root: Path = PROJECT_ROOT) -> List[Path]:
    """Every file whose content changes the trained model, our components' code included."""
    data_files = sorted(p for p in (root / "data").rglob("*") if p.suffix in {".yml", ".yaml"})
    code = sorted([*(root / "bot" / "nlu").glob("*.py"), *(root / "bot" / "policies").glob("*.py")])
    return [root / "config.yml", root / "domain.yml", *data_files, *code]


def fingerprint(files: Iterable[Path], root: Path = PROJECT_ROOT) -> str:
    import rasa

    digest = hashlib.sha256(f"rasa {rasa.__version__}\n".encode())
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_current() -> bool:
    return (
        MODEL_PATH.exists()
        and FINGERPRINT_PATH.exists()
        and FINGERPRINT_PATH.read_text().strip() == fingerprint(training_inputs())
    )


def train(force: bool = False) -> Path:
    """The path of a model trained on the current data, training only if needed."""
    if not force and is_current():
        log.info("Model %s is up to date; not retraining.", MODEL_PATH)
        return MODEL_PATH
    from rasa.api import train as rasa_train

    current = fingerprint(training_inputs())
    result = rasa_train(
        domain=str(DOMAIN),
        config=str(CONFIG),
        training_files=[str(DATA)],
        output=str(MODELS_DIR),
        fixed_model_name=MODEL_NAME,
        force_training=force,
    )
    if result.code != 0 or not result.model:
        raise TrainingError(f"Rasa training failed with code {result.code}; see the log above.")
    FINGERPRINT_PATH.write_text(current + "\n")
    return Path(result.model)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="retrain even if nothing changed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = train(force=args.force)
    except TrainingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Model ready: {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
