"""Strategy steps live in :mod:`controlplane.strategy` (models carry a default strategy, so
the schema sits below the registry); this module keeps the rollout package's name for it."""

from controlplane.strategy import (
    Analysis,
    Bake,
    EvalCheck,
    EvalGate,
    Evaluation,
    Pause,
    SetWeight,
    Step,
    Strategy,
    default_strategy,
    first_deploy_strategy,
)

__all__ = [
    "Analysis",
    "Bake",
    "EvalCheck",
    "EvalGate",
    "Evaluation",
    "Pause",
    "SetWeight",
    "Step",
    "Strategy",
    "default_strategy",
    "first_deploy_strategy",
]
