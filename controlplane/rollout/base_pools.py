"""A model's base pool as the rollout engine reaches it: the recorded row, and the
reference the Kubernetes driver takes. Shared by the reconciler, the pool keeper and the
evaluation runs (which ask an adapter on the pool's pods)."""

from __future__ import annotations

from sqlmodel import Session, select

from controlplane.kube import PermanentKubeError
from controlplane.kube.adapters import PoolRef
from controlplane.models import BasePool, Model


def pool_of(session: Session, model: Model) -> BasePool:
    """An adapter model's base pool; a permanent error when it is not recorded."""
    assert model.base_pool is not None
    pool = session.exec(select(BasePool).where(BasePool.name == model.base_pool)).first()
    if pool is None:
        raise PermanentKubeError(
            f"model {model.name}'s base pool {model.base_pool!r} is not recorded",
            reason="PoolNotFound",
        )
    return pool


def pool_ref(pool: BasePool) -> PoolRef:
    return PoolRef(
        name=pool.name,
        namespace=pool.namespace,
        port=pool.port,
        deployment=pool.deployment,
        inference_pool=pool.inference_pool,
    )
