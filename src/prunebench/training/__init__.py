"""Training: the recipe (``TrainConfig``), the closed loop (``train``) and split evaluation."""
from prunebench.training.config import TrainConfig
from prunebench.training.evaluate import evaluate_split
from prunebench.training.trainer import TrainingDiverged, TrainResult, make_optimizer, train

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "evaluate_split", "make_optimizer", "train"]
