"""Base pools: pods of a base model with LoRA enabled, shared by the adapter models that
name them. Create, read, change the capacity, delete while no model uses the pool.

What a pool promises (its base model, its LoRA rank and slots) is checked on the way in:
an adapter version that cannot run on its model's pool is refused at registration, and a
rollout that would need a slot the pool does not have is refused before it starts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane import audit, pagination
from controlplane.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from controlplane.models import (
    ArtifactKind,
    BasePool,
    Model,
    ModelVersion,
    PoolCreate,
    PoolPublic,
    PoolUpdate,
    Rollout,
    VersionCreate,
    VersionStatus,
    utcnow,
)
from controlplane.naming import workload_name


def to_public(pool: BasePool) -> PoolPublic:
    return PoolPublic.model_validate(pool, from_attributes=True)


def get_pool(session: Session, name: str, *, for_update: bool = False) -> BasePool:
    statement = select(BasePool).where(BasePool.name == name)
    if for_update:
        statement = statement.with_for_update()
    pool = session.exec(statement).first()
    if pool is None:
        raise NotFoundError(
            f"base pool {name!r} does not exist; list pools with GET /v1/pools",
            code="pool_not_found",
        )
    return pool


def create_pool(
    session: Session, *, data: PoolCreate, actor: str, now: datetime | None = None
) -> BasePool:
    now = now or utcnow()
    if session.exec(select(BasePool.id).where(BasePool.name == data.name)).first() is not None:
        raise AlreadyExistsError(
            f"base pool {data.name!r} already exists; change it with PATCH "
            f"/v1/pools/{data.name} or pick another name",
            code="pool_exists",
        )
    pool = BasePool.model_validate(
        data.model_dump(),
        update={"created_at": now, "created_by": actor, "updated_at": now, "updated_by": actor},
    )
    session.add(pool)
    audit.record(
        session, actor=actor, action="pool.created", at=now, details=data.model_dump(mode="json")
    )
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise AlreadyExistsError(
            f"base pool {data.name!r} already exists", code="pool_exists"
        ) from error
    session.refresh(pool)
    return pool


def list_pools(
    session: Session, *, cursor: str | None = None, limit: int = 50
) -> tuple[list[BasePool], str | None]:
    statement = pagination.page_after(select(BasePool), col(BasePool.id), cursor, limit)
    rows = list(session.exec(statement).all())
    return pagination.split_page(rows, limit, lambda pool: pool.id)


def models_on(session: Session, pool: BasePool) -> list[Model]:
    return list(session.exec(select(Model).where(Model.base_pool == pool.name)).all())


def adapters_held(session: Session, pool: BasePool) -> list[tuple[Model, ModelVersion]]:
    """The adapters the pool's pods hold now or are about to: every live version (stable
    or canary) of every model on the pool, and the version each live rollout on the pool
    is bringing in (a first deployment's version is live only once it succeeds)."""
    models = {m.id: m for m in models_on(session, pool)}
    if not models:
        return []
    ids = list(models)
    live = session.exec(
        select(ModelVersion).where(
            col(ModelVersion.model_id).in_(ids),
            col(ModelVersion.status).in_([s for s in VersionStatus if s.is_live]),
        )
    ).all()
    incoming = session.exec(
        select(ModelVersion)
        .join(Rollout, col(Rollout.model_id) == col(ModelVersion.model_id))
        .where(
            col(Rollout.live_model_id).in_(ids),
            col(Rollout.canary_version) == col(ModelVersion.version),
        )
    ).all()
    held: dict[int | None, tuple[Model, ModelVersion]] = {}
    for version in [*live, *incoming]:
        held[version.id] = (models[version.model_id], version)
    return sorted(held.values(), key=lambda pair: (pair[0].name, pair[1].version))


def update_pool(
    session: Session, *, name: str, data: PoolUpdate, actor: str, now: datetime | None = None
) -> BasePool:
    now = now or utcnow()
    pool = get_pool(session, name, for_update=True)
    changes = data.model_dump(exclude_unset=True)
    nulls = [
        f for f, v in changes.items() if v is None and f not in ("deployment", "inference_pool")
    ]
    if nulls:
        session.rollback()
        raise InvalidRequestError(f"{', '.join(nulls)} cannot be null", code="null_not_allowed")
    deployment = changes.get("deployment", pool.deployment)
    inference_pool = changes.get("inference_pool", pool.inference_pool)
    if deployment is None and inference_pool is None:
        session.rollback()
        raise InvalidRequestError(
            "a pool must name its pods: keep deployment or inference_pool", code="pods_unnamed"
        )
    held = adapters_held(session, pool)
    max_loras = changes.get("max_loras", pool.max_loras)
    if len(held) > max_loras:
        session.rollback()
        raise ConflictError(
            f"the pool's pods hold {len(held)} adapters now "
            f"({', '.join(workload_name(m.name, v.version) for m, v in held)}); max_loras "
            f"{max_loras} would not fit them",
            code="pool_too_small",
        )
    rank = changes.get("max_lora_rank", pool.max_lora_rank)
    too_big = [(m, v) for m, v in held if (v.lora_rank or 0) > rank]
    if too_big:
        session.rollback()
        raise ConflictError(
            f"max_lora_rank {rank} is below the rank of live adapters: "
            + ", ".join(
                f"{workload_name(m.name, v.version)} (rank {v.lora_rank})" for m, v in too_big
            ),
            code="pool_rank_too_small",
        )
    for field, value in changes.items():
        setattr(pool, field, value)
    pool.updated_at, pool.updated_by = now, actor
    session.add(pool)
    audit.record(
        session,
        actor=actor,
        action="pool.updated",
        at=now,
        details={"pool": name, "changes": data.model_dump(mode="json", exclude_unset=True)},
    )
    session.commit()
    session.refresh(pool)
    return pool


def delete_pool(session: Session, *, name: str, actor: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    pool = get_pool(session, name, for_update=True)
    users = [model.name for model in models_on(session, pool)]
    if users:
        session.rollback()
        raise ConflictError(
            f"base pool {name!r} serves the models {', '.join(users)}: delete them first",
            code="pool_in_use",
            context={"models": users},
        )
    session.delete(pool)
    audit.record(session, actor=actor, action="pool.deleted", at=now, details={"pool": name})
    session.commit()


def check_model_pool(session: Session, *, pool_name: str, namespace: str | None) -> BasePool:
    """The pool an adapter model names, which must exist in the model's namespace (the
    rewrite object that routes the model lives beside the pool's InferencePool); a model
    that names no namespace goes where its pool is."""
    try:
        pool = get_pool(session, pool_name)
    except NotFoundError as error:
        raise InvalidRequestError(error.message, code="pool_not_found") from error
    if namespace is not None and pool.namespace != namespace:
        raise InvalidRequestError(
            f"base pool {pool.name!r} is in namespace {pool.namespace!r}: create the model "
            f"there too (namespace {pool.namespace!r}), beside the pool's pods",
            code="pool_namespace_mismatch",
        )
    return pool


def check_adapter_version(session: Session, model: Model, data: VersionCreate) -> None:
    """An adapter model's version must be an adapter of the pool's base model, of a rank the
    pool's pods accept."""
    if model.base_pool is None:
        return
    pool = get_pool(session, model.base_pool)
    if data.artifact_kind is not ArtifactKind.LORA_ADAPTER:
        raise InvalidRequestError(
            f"model {model.name!r} is served as LoRA adapters on base pool {pool.name!r}: "
            "register its versions with artifact_kind 'lora_adapter'",
            code="adapter_required",
        )
    if data.base_model != pool.base_model:
        raise InvalidRequestError(
            f"base_model {data.base_model!r} is not the base pool's ({pool.base_model!r}): "
            f"an adapter only runs on the base model it was trained on",
            code="base_model_mismatch",
        )
    if data.lora_rank is None:
        raise InvalidRequestError(
            f"lora_rank is required for an adapter served on base pool {pool.name!r} (its "
            f"pods accept ranks up to {pool.max_lora_rank}): give the adapter's rank (the r of "
            "its adapter_config.json)",
            code="lora_rank_required",
        )
    if data.lora_rank > pool.max_lora_rank:
        raise InvalidRequestError(
            f"lora_rank {data.lora_rank} is over base pool {pool.name!r}'s max_lora_rank "
            f"{pool.max_lora_rank}: vLLM would refuse to load it; raise the pool's "
            "--max-lora-rank (and max_lora_rank here) or retrain at a lower rank",
            code="lora_rank_too_large",
        )
    # adapters of every model on the pool share one namespace of names on its pods:
    # chat/fr-v1 and chat-fr/v1 would both load as chat-fr-v1, and serve each other
    name = adapter_name(model.name, data.version)
    for other in models_on(session, pool):
        if other.id == model.id or not name.startswith(f"{other.name}-"):
            continue
        taken = session.exec(
            select(ModelVersion).where(
                ModelVersion.model_id == other.id,
                ModelVersion.version == name[len(other.name) + 1 :],
            )
        ).first()
        if taken is not None:
            raise ConflictError(
                f"the adapter name {name!r} is taken on base pool {pool.name!r} by model "
                f"{other.name!r}'s version {taken.version!r}: adapters load under "
                "<model>-<version>, so choose another version name",
                code="adapter_name_taken",
            )


def check_room(session: Session, model: Model, canary: str) -> None:
    """A rollout of an adapter needs one more slot on every pod of the pool, beside every
    live adapter: refused before it starts, never half-way."""
    if model.base_pool is None:
        return
    pool = get_pool(session, model.base_pool, for_update=True)  # one slot, one taker
    held = adapters_held(session, pool)
    names = [workload_name(m.name, v.version) for m, v in held]
    if workload_name(model.name, canary) in names:
        return
    # a slot is also taken by what a pod still holds beside the live adapters, as the
    # keeper last read the pods: an old stable draining after a promotion (unloaded within
    # seconds), a leftover, another tool's adapter
    extra: set[str] = set()
    for pod in pool.pods:
        if pod.get("serving"):
            beside = set(pod.get("adapters") or ()) - set(names)
            extra = beside if len(beside) > len(extra) else extra
    if len(held) + len(extra) + 1 > pool.max_loras:
        also = f"; besides, a pod still holds {', '.join(sorted(extra))}" if extra else ""
        raise ConflictError(
            f"base pool {pool.name!r} has no room for one more adapter: its pods hold or are "
            f"loading {len(held)} live adapters ({', '.join(names) or 'none'}) of max_loras "
            f"{pool.max_loras}{also}; try again once a rollout on the pool has ended and "
            "its old adapter is unloaded (seconds after the end), or raise the pool's "
            "--max-loras (and max_loras here)",
            code="pool_full",
            context={
                "pool": pool.name,
                "held": names,
                "also_on_pods": sorted(extra),
                "max_loras": pool.max_loras,
            },
        )


def adapter_name(model: str, version: str) -> str:
    """The name an adapter version is loaded under on the pool's pods (and that the model's
    rewrite routes to): ``<model>-<version>``."""
    return workload_name(model, version)


def pool_needs(session: Session, pool: BasePool) -> tuple[dict[str, str], set[str]]:
    """What the pool's pods must hold (adapter name -> artifact URI: every stable adapter of
    the pool's models, and each live rollout's canary once it was asked for), and which of
    those a pod needs before it takes traffic (the stable adapters, and each canary that
    has traffic)."""
    models = {m.id: m for m in models_on(session, pool)}
    load: dict[str, str] = {}
    gate: set[str] = set()
    if not models:
        return load, gate
    stable = session.exec(
        select(ModelVersion).where(
            col(ModelVersion.model_id).in_(list(models)),
            ModelVersion.status == VersionStatus.STABLE,
        )
    ).all()
    for version in stable:
        name = adapter_name(models[version.model_id].name, version.version)
        load[name] = version.artifact_uri
        gate.add(name)
    rollouts = session.exec(
        select(Rollout).where(col(Rollout.live_model_id).in_(list(models)))
    ).all()
    for rollout in rollouts:
        if rollout.canary_replicas <= 0:
            continue
        version = session.exec(
            select(ModelVersion).where(
                ModelVersion.model_id == rollout.model_id,
                ModelVersion.version == rollout.canary_version,
            )
        ).one()
        name = adapter_name(rollout.model, rollout.canary_version)
        load[name] = version.artifact_uri
        if rollout.routed_weight > 0:
            gate.add(name)
    return load, gate


DRAIN = timedelta(seconds=10)
POOL_LEASE = timedelta(seconds=30)


def claim_pool(
    session: Session, name: str, *, owner: str, now: datetime, lease: timedelta = POOL_LEASE
) -> bool:
    """Take the pool's lease (a conditional UPDATE, the same on SQLite and PostgreSQL):
    True when ``owner`` may act on the pool's pods now. Committed at once."""
    result = session.execute(
        sa.update(BasePool)
        .where(
            col(BasePool.name) == name,
            sa.or_(
                col(BasePool.lease_until).is_(None),
                col(BasePool.lease_until) < now,
                col(BasePool.lease_owner) == owner,
            ),
        )
        .values(lease_owner=owner, lease_until=now + lease)
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_pool(session: Session, name: str, *, owner: str) -> None:
    session.execute(
        sa.update(BasePool)
        .where(col(BasePool.name) == name, col(BasePool.lease_owner) == owner)
        .values(lease_owner=None, lease_until=None)
    )
    session.commit()


def retired_adapters(
    session: Session, pool: BasePool, *, now: datetime | None = None, drain: timedelta = DRAIN
) -> set[str]:
    """Adapters of the pool's models that nothing needs any more (retired, rolled back or
    failed versions no live rollout names, for at least ``drain``: the gateway has long
    stopped routing to them): safe to unload wherever they were left."""
    now = now or utcnow()
    models = {m.id: m for m in models_on(session, pool)}
    if not models:
        return set()
    named = {
        (r.model_id, v)
        for r in session.exec(
            select(Rollout).where(col(Rollout.live_model_id).in_(list(models)))
        ).all()
        for v in (r.canary_version, r.stable_version)
        if v is not None
    }
    done = session.exec(
        select(ModelVersion).where(
            col(ModelVersion.model_id).in_(list(models)),
            col(ModelVersion.status).in_(
                [VersionStatus.RETIRED, VersionStatus.ROLLED_BACK, VersionStatus.FAILED]
            ),
        )
    ).all()
    return {
        adapter_name(models[v.model_id].name, v.version)
        for v in done
        if (v.model_id, v.version) not in named and v.status_changed_at <= now - drain
    }
