"""Everything that speaks to Kubernetes: render model versions into objects, apply them
with server-side apply, observe what the cluster made of them, and move traffic.

Only this package imports ``kubernetes``. The rollout engine calls :class:`KubeDriver`
with plain data (:class:`Workload`) and gets plain data back; errors leave as the
:mod:`controlplane.kube.errors` tree, never as the client library's exceptions.
"""

from controlplane.kube.budget import BudgetError, ReplicaPlan, plan_replicas
from controlplane.kube.driver import KubeDriver, WeightReading
from controlplane.kube.errors import (
    FieldConflictError,
    KubeError,
    NotFoundError,
    PermanentKubeError,
    TemporaryKubeError,
)
from controlplane.kube.observe import Problem, ProblemKind, VersionState
from controlplane.kube.render import Track, Workload, workload_for

__all__ = [
    "BudgetError",
    "FieldConflictError",
    "KubeDriver",
    "KubeError",
    "NotFoundError",
    "PermanentKubeError",
    "Problem",
    "ProblemKind",
    "ReplicaPlan",
    "TemporaryKubeError",
    "Track",
    "VersionState",
    "WeightReading",
    "Workload",
    "plan_replicas",
    "workload_for",
]
