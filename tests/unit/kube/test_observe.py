"""Classifying why a version is not ready, from API objects (as the API server returns them)."""

from __future__ import annotations

from typing import Any

from controlplane.kube.observe import ProblemKind, classify, free_gpus, pod_problems


def pod(
    name: str = "chat-v2-abc",
    *,
    phase: str = "Running",
    node: str | None = "gpu-0",
    gpus: int = 4,
    conditions: list[dict[str, Any]] | None = None,
    container_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if container_status is not None:
        status["containerStatuses"] = [container_status]
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "server", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
            ],
        },
        "status": status,
    }


def node(name: str, gpus: int, *, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus)},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_unschedulable_says_how_many_gpus_are_free() -> None:
    pending = pod(
        phase="Pending",
        node=None,
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 2 Insufficient nvidia.com/gpu.",
            }
        ],
    )
    free = free_gpus(
        [node("gpu-0", 8), node("gpu-1", 8), node("cpu-0", 0)],
        [pod("a", node="gpu-0", gpus=8), pod("b", node="gpu-1", gpus=6)],
        "nvidia.com/gpu",
    )
    assert free == {"gpu-0": 0, "gpu-1": 2}
    [problem] = pod_problems(pending, gpu_resource="nvidia.com/gpu", free=free)
    assert problem.kind is ProblemKind.UNSCHEDULABLE
    assert (
        "needs 4 nvidia.com/gpu, 2 free on the 2 GPU nodes it may use (at most 2 on one node"
        in problem.message
    )
    assert "Insufficient nvidia.com/gpu" in problem.message


def test_free_gpus_ignores_finished_pods_and_unready_nodes() -> None:
    free = free_gpus(
        [node("gpu-0", 8), node("gpu-1", 8, ready=False)],
        [pod("done", node="gpu-0", phase="Succeeded", gpus=8), pod("run", node="gpu-0", gpus=4)],
        "nvidia.com/gpu",
    )
    assert free == {"gpu-0": 4}


def test_crash_loop_reports_restarts_and_exit_code() -> None:
    crashing = pod(
        container_status={
            "name": "server",
            "restartCount": 5,
            "ready": False,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
        }
    )
    [problem] = pod_problems(crashing, gpu_resource="nvidia.com/gpu")
    assert problem.kind is ProblemKind.CRASH_LOOP
    assert problem.restarts == 5
    assert "after 5 restarts, last exit code 1 (Error)" in problem.message


def test_image_pull_errors() -> None:
    bad = pod(
        phase="Pending",
        container_status={
            "name": "server",
            "image": "vllm/nope:1",
            "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}},
        },
    )
    [problem] = pod_problems(bad, gpu_resource="nvidia.com/gpu")
    assert problem.kind is ProblemKind.IMAGE_PULL
    assert "vllm/nope:1" in problem.message


def test_a_missing_secret_is_a_config_error_naming_it() -> None:
    """An env value referencing a Secret that is not there (and not optional): the kubelet
    holds the container back, and the canary fails with the Secret's name."""
    waiting = pod(
        phase="Pending",
        container_status={
            "name": "server",
            "restartCount": 0,
            "state": {
                "waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": 'secret "hf-token" not found',
                }
            },
        },
    )
    [problem] = pod_problems(waiting, gpu_resource="nvidia.com/gpu")
    assert problem.kind is ProblemKind.CONFIG_ERROR
    assert problem.message == (
        'pod chat-v2-abc container cannot start: CreateContainerConfigError (secret "hf-token" '
        "not found)"
    )


def test_progress_deadline_and_readiness() -> None:
    deployment = {
        "metadata": {
            "name": "chat-v2",
            "generation": 2,
            "labels": {"controlplane.dev/track": "canary"},
        },
        "spec": {"replicas": 2, "progressDeadlineSeconds": 600},
        "status": {
            "observedGeneration": 2,
            "readyReplicas": 1,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "chat-v2-x" has timed out progressing.',
                }
            ],
        },
    }
    state = classify("chat-v2", deployment, [], gpu_resource="nvidia.com/gpu")
    assert state.track == "canary"
    assert not state.is_ready
    assert state.failure is not None
    assert state.failure.kind is ProblemKind.PROGRESS_DEADLINE


def test_ready_when_all_desired_replicas_are_ready_and_observed() -> None:
    deployment = {
        "metadata": {"name": "x", "generation": 3},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "readyReplicas": 2},
    }
    assert not classify("x", deployment, [], gpu_resource="g").is_ready, "spec not yet observed"
    deployment["status"]["observedGeneration"] = 3
    assert classify("x", deployment, [], gpu_resource="g").is_ready


def test_missing_deployment() -> None:
    state = classify("x", None, [], gpu_resource="g")
    assert not state.exists
    assert not state.is_ready


def test_free_gpus_for_a_pod_counts_only_nodes_it_may_use() -> None:
    a100 = node("a100-0", 8)
    a100["metadata"]["labels"] = {"pool": "a100"}
    h100 = node("h100-0", 8)
    h100["metadata"]["labels"] = {"pool": "h100"}
    tainted = node("a100-1", 8)
    tainted["metadata"]["labels"] = {"pool": "a100"}
    tainted["spec"] = {"taints": [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]}
    wants_a100 = pod(node=None)
    wants_a100["spec"]["nodeSelector"] = {"pool": "a100"}
    assert free_gpus([a100, h100, tainted], [], "nvidia.com/gpu", for_pod=wants_a100) == {
        "a100-0": 8
    }
    wants_a100["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    assert set(free_gpus([a100, h100, tainted], [], "nvidia.com/gpu", for_pod=wants_a100)) == {
        "a100-0",
        "a100-1",
    }
