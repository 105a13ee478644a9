"""Model registry and the classifier interface."""

from deeptao.models._loading import load_model
from deeptao.models._registry import create_model, get_model_builder, list_models, register_model
from deeptao.models.base import NotFittedError, ObjectClassifier

__all__ = [
    "create_model",
    "get_model_builder",
    "list_models",
    "load_model",
    "register_model",
    "NotFittedError",
    "ObjectClassifier",
]
