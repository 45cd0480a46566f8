"""Evaluators: importing this package registers every evaluator in ``EVALUATORS``."""
from prunebench.evaluation.base import EVALUATORS, EvalContext, predict_logits

from prunebench.evaluation import (  # noqa: F401,E402  (registration)
    adversarial, calibration, corruptions_eval, informative_features, nominal, noise_similarity, ood, trainability,
)

__all__ = ["EVALUATORS", "EvalContext", "predict_logits"]
