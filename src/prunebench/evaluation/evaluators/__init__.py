"""The built-in evaluators, one module each; :data:`prunebench.evaluation.registry.EVALUATORS` imports
every module here on its first lookup (nothing imports them for their registration)."""
