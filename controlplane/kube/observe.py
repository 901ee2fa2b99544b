"""What the cluster made of a version, classified: pure functions over API objects.

A rollout must fail with a reason a person can act on ("needs 4 nvidia.com/gpu, 0 free")
rather than wait forever, so every way a GPU pod commonly fails to become ready is named
here: unschedulable, crash-looping, image not pullable, bad container config, progress
deadline exceeded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from controlplane.kube.render import LABEL_TRACK

IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONFIG_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)


class ProblemKind(StrEnum):
    UNSCHEDULABLE = "unschedulable"
    CRASH_LOOP = "crash_loop"
    IMAGE_PULL = "image_pull"
    CONFIG_ERROR = "config_error"
    POD_FAILED = "pod_failed"
    PROGRESS_DEADLINE = "progress_deadline_exceeded"


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    message: str
    pod: str | None = None
    restarts: int = 0


@dataclass(frozen=True)
class WeightReading:
    """The canary's share of traffic actually in force, where it was read from, and the
    field manager other than the control plane that last wrote the weights, if any."""

    canary: int
    stable: int
    source: str
    owner: str | None = None


@dataclass(frozen=True)
class VersionState:
    """A version's Deployment and pods as last seen. ``exists`` is False when there is none."""

    name: str
    exists: bool
    desired: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    track: str | None = None
    observed: bool = True  # the Deployment controller has seen the latest spec
    problems: tuple[Problem, ...] = field(default=())
    # the field manager other than the control plane that last set spec.replicas (a person
    # with `kubectl scale`, an HPA), when there is one: who to name in a drift event
    replicas_owner: str | None = None
    note: str = ""  # what "ready" means here, when it is not pods (an adapter on a pool)

    @property
    def is_ready(self) -> bool:
        """Every desired replica is ready and the controller has caught up."""
        return self.exists and self.observed and self.ready >= self.desired

    @property
    def failure(self) -> Problem | None:
        """The most telling problem, if any: the one a rollout should fail with."""
        order = list(ProblemKind)
        return min(self.problems, key=lambda p: order.index(p.kind)) if self.problems else None

    def summary(self) -> str:
        text = f"{self.name}: " + (self.note or f"{self.ready}/{self.desired} ready")
        if self.problems:
            text += "; " + "; ".join(p.message for p in self.problems[:3])
        return text


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def pod_gpu_request(pod: dict[str, Any], resource: str) -> int:
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        value = (resources.get("requests") or {}).get(resource) or (
            resources.get("limits") or {}
        ).get(resource)
        if value is not None:
            total += int(str(value))
    return total


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") not in (None, "", taint.get("effect")):
            continue
        key = toleration.get("key")
        if toleration.get("operator") == "Exists" and key in (None, "", taint.get("key")):
            return True
        if key == taint.get("key") and toleration.get("value") == taint.get("value"):
            return True
    return False


def node_accepts(node: dict[str, Any], pod: dict[str, Any]) -> bool:
    """Whether ``pod``'s nodeSelector matches ``node`` and it tolerates the node's taints
    (the scheduler's checks that matter for "how many GPUs could this pod get")."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    tolerations = spec.get("tolerations") or []
    return all(
        _tolerates(tolerations, taint)
        for taint in (node.get("spec") or {}).get("taints") or []
        if taint.get("effect") in ("NoSchedule", "NoExecute")
    )


def free_gpus(
    nodes: Iterable[dict[str, Any]],
    pods: Iterable[dict[str, Any]],
    resource: str,
    *,
    for_pod: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Allocatable GPUs minus what bound, unfinished pods request, per schedulable node
    (only the nodes ``for_pod`` could be placed on, when given)."""
    free: dict[str, int] = {}
    for node in nodes:
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        if for_pod is not None and not node_accepts(node, for_pod):
            continue
        ready = _condition(node, "Ready")
        if ready is not None and ready.get("status") != "True":
            continue
        allocatable = ((node.get("status") or {}).get("allocatable") or {}).get(resource)
        if allocatable is not None and int(str(allocatable)) > 0:
            free[node["metadata"]["name"]] = int(str(allocatable))
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if node_name in free and phase not in ("Succeeded", "Failed"):
            free[node_name] -= pod_gpu_request(pod, resource)
    return free


def _unschedulable_message(
    pod: dict[str, Any], scheduler_message: str, gpu_resource: str, free: dict[str, int] | None
) -> str:
    needed = pod_gpu_request(pod, gpu_resource)
    message = f"pod {pod['metadata']['name']} cannot be scheduled"
    if needed:
        message += f": needs {needed} {gpu_resource}"
        if free is not None:
            largest = max(free.values(), default=0)
            total = sum(max(0, v) for v in free.values())
            message += (
                f", {total} free on the {len(free)} GPU nodes it may use "
                f"(at most {largest} on one node)"
            )
    return f"{message} ({scheduler_message})" if scheduler_message else message


def pod_problems(
    pod: dict[str, Any], *, gpu_resource: str, free: dict[str, int] | None = None
) -> list[Problem]:
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return [
            Problem(
                ProblemKind.POD_FAILED,
                f"pod {name} failed: "
                f"{status.get('reason', '')} {status.get('message', '')}".strip(),
                name,
            )
        ]
    scheduled = _condition(pod, "PodScheduled")
    if (
        scheduled
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == "Unschedulable"
    ):
        message = _unschedulable_message(pod, str(scheduled.get("message", "")), gpu_resource, free)
        return [Problem(ProblemKind.UNSCHEDULABLE, message, name)]
    problems = []
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        restarts = int(container.get("restartCount", 0))
        detail = waiting.get("message", "")
        if reason == "CrashLoopBackOff":
            last = (container.get("lastState") or {}).get("terminated") or {}
            exit_info = f"exit code {last['exitCode']}" if "exitCode" in last else ""
            if last.get("reason"):
                exit_info += f" ({last['reason']})"
            problems.append(
                Problem(
                    ProblemKind.CRASH_LOOP,
                    f"pod {name} container {container.get('name')} is crash-looping after "
                    f"{restarts} restarts{', last ' + exit_info if exit_info else ''}",
                    name,
                    restarts,
                )
            )
        elif reason in IMAGE_PULL_REASONS:
            problems.append(
                Problem(
                    ProblemKind.IMAGE_PULL,
                    f"pod {name} cannot pull image {container.get('image')}: {reason}"
                    + (f" ({detail})" if detail else ""),
                    name,
                    restarts,
                )
            )
        elif reason in CONFIG_REASONS:
            problems.append(
                Problem(
                    ProblemKind.CONFIG_ERROR,
                    f"pod {name} container cannot start: {reason}"
                    + (f" ({detail})" if detail else ""),
                    name,
                    restarts,
                )
            )
    return problems


def classify(
    name: str,
    deployment: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    gpu_resource: str,
    free: dict[str, int] | None = None,
) -> VersionState:
    if deployment is None:
        return VersionState(name=name, exists=False)
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    metadata = deployment.get("metadata") or {}
    problems: list[Problem] = []
    progressing = _condition(deployment, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        problems.append(
            Problem(
                ProblemKind.PROGRESS_DEADLINE,
                f"deployment {name} exceeded its progress deadline "
                f"({spec.get('progressDeadlineSeconds', 600)}s): {progressing.get('message', '')}",
            )
        )
    live_pods = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    for pod in live_pods:
        problems.extend(pod_problems(pod, gpu_resource=gpu_resource, free=free))
    return VersionState(
        name=name,
        exists=True,
        desired=int(spec.get("replicas", 1)),
        ready=int(status.get("readyReplicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        track=(metadata.get("labels") or {}).get(LABEL_TRACK),
        observed=int(status.get("observedGeneration", 0)) >= int(metadata.get("generation", 0)),
        problems=tuple(problems),
    )
