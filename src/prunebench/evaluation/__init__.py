"""Evaluators: the EVALUATORS registry (loads itself on first lookup), the evaluation context and the
batched inference helper. The built-in evaluators live in :mod:`prunebench.evaluation.evaluators`."""
from prunebench.evaluation.base import EvalContext, predict_logits
from prunebench.evaluation.registry import EVALUATORS, EvaluatorSpec, run_evaluator

__all__ = ["EVALUATORS", "EvalContext", "EvaluatorSpec", "predict_logits", "run_evaluator"]
