"""Model zoo: importing this package registers every model."""
from prunebench.models.registry import MODELS, create_model, scaled

from prunebench.models import lenet, resnet, vgg, wrn, densenet  # noqa: F401  (registration)

__all__ = ["MODELS", "create_model", "scaled"]
