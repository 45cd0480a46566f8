"""Model zoo: :data:`MODELS` (loads the zoo modules itself on first lookup) and :func:`create_model`."""
from prunebench.models.registry import MODELS, ModelSpec, create_model, scaled

__all__ = ["MODELS", "ModelSpec", "create_model", "scaled"]
