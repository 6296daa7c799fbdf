"""Base for our trainable Rasa components whose whole state is one joblib file."""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any, Dict, Generic, Optional, TypeVar

import joblib
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage

from bot.nlu.linear import laid_out_for_sparse_rows

Model = TypeVar("Model")



class StoredModelComponent(GraphComponent, Generic[Model]):
    """Keeps config and storage, loads and saves ``MODEL_FILE`` in Rasa's model storage."""

    MODEL_FILE = "model.joblib"

    @classmethod
    def code_fingerprint(cls) -> str:
        """A hash of the component's source: changed code retrains, not a stale cache."""
        return hashlib.sha256(Path(inspect.getfile(cls)).read_bytes()).hexdigest()[:16]

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        return cls.code_fingerprint()

    def __init__(self, config: Dict[str, Any], model_storage: ModelStorage,
                 resource: Resource, model: Optional[Model] = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self._model = model

    @classmethod
    def create(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> StoredModelComponent:
        return cls(config, model_storage, resource)

    @classmethod
    def load(cls, config: Dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> StoredModelComponent:
        with model_storage.read_from(resource) as directory:
            model = joblib.load(directory / cls.MODEL_FILE)
        return cls(config, model_storage, resource, laid_out_for_sparse_rows(model))

    def _save(self, model: Model) -> Resource:
        """Keep the trained model and write it where Rasa packages the model."""
        self._model = model
        with self._storage.write_to(self._resource) as directory:
            joblib.dump(model, directory / self.MODEL_FILE)
        return self._resource
