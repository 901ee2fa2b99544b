"""Models: create, read, change serving defaults, delete while nothing of it is live.

Each write validates the whole resulting model (not just the fields given), records its
actor, and commits once; a refused request leaves the database as it was.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane import audit, pagination, redaction
from controlplane.errors import (
    AlreadyExistsError,
    ConflictError,
    FieldIssue,
    InvalidRequestError,
    NotFoundError,
)
from controlplane.models import (
    Model,
    ModelCreate,
    ModelPublic,
    ModelUpdate,
    ModelVersion,
    RoutingMode,
    ServingDefaults,
    VersionStatus,
    env_json,
    utcnow,
)
from controlplane.registry import pools


def serving_issues(serving: ServingDefaults) -> list[FieldIssue]:
    """Checks that span several fields, run on the model as it would be after a write."""
    issues: list[FieldIssue] = []
    stable_gpus = serving.gpus_per_replica * serving.replicas
    if serving.gpu_budget is not None and serving.gpu_budget < stable_gpus:
        issues.append(
            FieldIssue(
                field="gpu_budget",
                code="budget_too_small",
                message=(
                    f"gpu_budget {serving.gpu_budget} is below what the stable version alone "
                    f"needs ({serving.replicas} replicas x {serving.gpus_per_replica} GPUs = "
                    f"{stable_gpus}); raise gpu_budget to at least {stable_gpus} or lower "
                    "replicas"
                ),
            )
        )
    if serving.routing_mode is RoutingMode.GATEWAY_API and not serving.gateway:
        issues.append(
            FieldIssue(
                field="gateway",
                code="gateway_required",
                message="routing_mode 'gateway-api' needs gateway: the 'namespace/name' of the "
                "Gateway that the model's HTTPRoute attaches to",
            )
        )
    if serving.routing_mode is RoutingMode.INFERENCE_POOL:
        if not serving.gateway:
            issues.append(
                FieldIssue(
                    field="gateway",
                    code="gateway_required",
                    message="routing_mode 'inference-pool' needs gateway: the "
                    "'namespace/name' of the Gateway that the model's HTTPRoute attaches to",
                )
            )
        if serving.endpoint_picker is None:
            issues.append(
                FieldIssue(
                    field="endpoint_picker",
                    code="endpoint_picker_required",
                    message="routing_mode 'inference-pool' needs endpoint_picker: at least its "
                    "service_account (allowed to watch pods and InferencePools in the "
                    "namespace); each version's pool gets its own picker",
                )
            )
    return issues


def _raise_if(issues: list[FieldIssue]) -> None:
    if issues:
        raise InvalidRequestError(
            "; ".join(issue.message for issue in issues), code="validation_error", issues=issues
        )


def _keep_redacted(session: Session, model: Model, changes: dict[str, Any]) -> None:
    """What a GET showed in place of a credential, sent back in a PATCH, keeps the stored
    value (a read-modify-write never stores the placeholder); any other placeholder is
    refused."""
    if changes.get("env") is not None:
        changes["env"] = redaction.keep_redacted_env(changes["env"], model.env)
    if changes.get("args") is not None:
        changes["args"] = redaction.keep_redacted_args(changes["args"], model.args)
    issues = [
        FieldIssue(field=f"env.{key}", code="redacted_placeholder", message=problem)
        for key, value in (changes.get("env") or {}).items()
        if isinstance(value, str)
        and (problem := redaction.placeholder_problem(value, f"env {key}"))
    ] + [
        FieldIssue(field=f"args.{index}", code="redacted_placeholder", message=problem)
        for index, arg in enumerate(changes.get("args") or [])
        if (problem := redaction.placeholder_problem(arg, f"args[{index}]"))
    ]
    if issues:
        session.rollback()
        _raise_if(issues)


def to_public(model: Model) -> ModelPublic:
    return ModelPublic.model_validate(model, from_attributes=True)


# built once: building a select costs more than SQLite takes to run it
_BY_NAME = select(Model).where(Model.name == sa.bindparam("name"))
_BY_NAME_FOR_UPDATE = _BY_NAME.with_for_update()


def get_model(session: Session, name: str, *, for_update: bool = False) -> Model:
    statement = _BY_NAME_FOR_UPDATE if for_update else _BY_NAME
    model = session.exec(statement, params={"name": name}).first()
    if model is None:
        raise NotFoundError(
            f"model {name!r} does not exist; list models with GET /v1/models",
            code="model_not_found",
        )
    return model


def create_model(
    session: Session, *, data: ModelCreate, actor: str, now: datetime | None = None
) -> Model:
    now = now or utcnow()
    _raise_if(serving_issues(data))
    if data.base_pool is not None:
        namespace = data.namespace if "namespace" in data.model_fields_set else None
        pool = pools.check_model_pool(session, pool_name=data.base_pool, namespace=namespace)
        data = data.model_copy(update={"namespace": pool.namespace})
    if session.exec(select(Model.id).where(Model.name == data.name)).first() is not None:
        raise AlreadyExistsError(
            f"model {data.name!r} already exists; change it with PATCH /v1/models/{data.name} "
            "or pick another name",
            code="model_exists",
        )
    model = Model.model_validate(
        data.model_dump(),
        update={"created_at": now, "created_by": actor, "updated_at": now, "updated_by": actor},
    )
    session.add(model)
    audit.record(
        session,
        actor=actor,
        action="model.created",
        at=now,
        model=model.name,
        details=data.model_dump(mode="json"),
    )
    try:
        session.commit()
    except IntegrityError as error:  # lost a race with a concurrent create of the same name
        session.rollback()
        raise AlreadyExistsError(
            f"model {data.name!r} already exists", code="model_exists"
        ) from error
    session.refresh(model)
    return model


def list_models(
    session: Session, *, namespace: str | None = None, cursor: str | None = None, limit: int = 50
) -> tuple[list[Model], str | None]:
    statement = select(Model)
    if namespace is not None:
        statement = statement.where(Model.namespace == namespace)
    statement = pagination.page_after(statement, col(Model.id), cursor, limit)
    rows = list(session.exec(statement).all())
    return pagination.split_page(rows, limit, lambda model: model.id)


def update_model(
    session: Session, *, name: str, data: ModelUpdate, actor: str, now: datetime | None = None
) -> Model:
    now = now or utcnow()
    model = get_model(session, name, for_update=True)
    changes = data.model_dump(exclude_unset=True)
    if data.env is not None:  # whole references, as a create stores them
        changes["env"] = env_json(data.env)
    _keep_redacted(session, model, changes)
    nullable = {"gpu_budget", "gateway", "default_strategy", "endpoint_picker"}
    nulls = [field for field, value in changes.items() if value is None and field not in nullable]
    if nulls:
        session.rollback()
        _raise_if(
            [
                FieldIssue(field=field, code="null_not_allowed", message=f"{field} cannot be null")
                for field in nulls
            ]
        )
    routing = changes.get("routing_mode")
    adapters = model.base_pool is not None
    if routing is not None and (routing is RoutingMode.MODEL_REWRITE) != adapters:
        session.rollback()
        _raise_if(
            [
                FieldIssue(
                    field="routing_mode",
                    code="routing_mode_invalid",
                    message=(
                        f"model {name!r} is served as adapters on base pool "
                        f"{model.base_pool!r}: it routes with 'model-rewrite' only"
                        if adapters
                        else "'model-rewrite' is for models served as adapters on a base "
                        "pool; this model runs its own pods"
                    ),
                )
            ]
        )
    candidate = ServingDefaults.model_validate(
        {**ServingDefaults.model_validate(model, from_attributes=True).model_dump(), **changes}
    )
    issues = serving_issues(candidate)
    if issues:
        session.rollback()
        _raise_if(issues)
    for field, value in changes.items():
        setattr(model, field, value)
    model.updated_at = now
    model.updated_by = actor
    session.add(model)
    audit.record(
        session,
        actor=actor,
        action="model.updated",
        at=now,
        model=name,
        details={"changes": data.model_dump(mode="json", exclude_unset=True)},
    )
    session.commit()
    session.refresh(model)
    return model


def delete_model(session: Session, *, name: str, actor: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    model = get_model(session, name, for_update=True)
    live = session.exec(
        select(ModelVersion.version, ModelVersion.status).where(
            ModelVersion.model_id == model.id,
            col(ModelVersion.status).in_([s for s in VersionStatus if s.is_live]),
        )
    ).all()
    if live:
        session.rollback()
        described = ", ".join(f"{version} ({status})" for version, status in live)
        raise ConflictError(
            f"model {name!r} has live versions: {described}; roll them out of service "
            "(or abort their rollout) before deleting the model",
            code="model_live",
            context={"live_versions": [version for version, _ in live]},
        )
    session.delete(model)
    audit.record(session, actor=actor, action="model.deleted", at=now, model=name)
    session.commit()
