"""Versions: register (immutable), list (newest first, filtered), read.

A version's status is not writable here: the rollout engine owns it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane import audit, pagination
from controlplane.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from controlplane.models import (
    MAX_LABELS,
    Model,
    ModelVersion,
    VersionCreate,
    VersionPublic,
    VersionStatus,
    env_json,
    utcnow,
)
from controlplane.naming import (
    LABEL_MAX,
    label_key_problem,
    label_value_problem,
    workload_name,
)
from controlplane.registry import pools
from controlplane.registry.models import get_model


def to_public(version: ModelVersion, model_name: str) -> VersionPublic:
    return VersionPublic.model_validate(
        {**version.model_dump(), "metadata": version.meta, "model": model_name}
    )


def _duplicate(model: str, version: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"version {version!r} of model {model!r} is already registered, and versions are "
        "immutable: register the change under a new version name",
        code="version_exists",
        context={"model": model, "version": version},
    )


_ID_BY_NAME = select(ModelVersion.id).where(
    ModelVersion.model_id == sa.bindparam("model_id"),
    ModelVersion.version == sa.bindparam("version"),
)


def register_version(
    session: Session,
    *,
    model_name: str,
    data: VersionCreate,
    actor: str,
    now: datetime | None = None,
) -> tuple[Model, ModelVersion]:
    now = now or utcnow()
    model = get_model(session, model_name)
    name = workload_name(model.name, data.version)
    if len(name) > LABEL_MAX:
        raise InvalidRequestError(
            f"'{name}' (model-version) would be {len(name)} characters, over the Kubernetes "
            f"limit of {LABEL_MAX} for Service names: shorten the version name to at most "
            f"{LABEL_MAX - len(model.name) - 1} characters",
            code="name_too_long",
        )
    exists = session.exec(
        _ID_BY_NAME, params={"model_id": model.id, "version": data.version}
    ).first()
    if exists is not None:
        raise _duplicate(model.name, data.version)
    pools.check_adapter_version(session, model, data)
    version = ModelVersion.model_validate(
        data,
        update={
            "model_id": model.id,
            "env": env_json(data.env),
            "meta": data.meta,
            "status": VersionStatus.REGISTERED,
            "status_changed_at": now,
            "created_at": now,
            "created_by": actor,
        },
    )
    session.add(version)
    audit.record(
        session,
        actor=actor,
        action="version.registered",
        at=now,
        model=model.name,
        version=data.version,
        details={
            "artifact_uri": data.artifact_uri,
            "image": data.image,
            **({"lora_rank": data.lora_rank} if data.lora_rank is not None else {}),
        },
    )
    try:
        session.commit()
    except IntegrityError as error:  # a concurrent registration of the same name won
        session.rollback()
        raise _duplicate(model.name, data.version) from error
    # no refresh: every column was set here (the id by the flush), none by the database
    return model, version


def get_version(session: Session, *, model_name: str, version: str) -> tuple[Model, ModelVersion]:
    model = get_model(session, model_name)
    row = session.exec(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version
        )
    ).first()
    if row is None:
        raise NotFoundError(
            f"model {model_name!r} has no version {version!r}; list its versions with "
            f"GET /v1/models/{model_name}/versions",
            code="version_not_found",
        )
    return model, row


# one statement for every read of a version by name (built once: building a select costs
# more than SQLite takes to run it)
_BY_NAME = (
    select(ModelVersion)
    .join(Model, col(Model.id) == col(ModelVersion.model_id))
    .where(
        Model.name == sa.bindparam("model_name"), ModelVersion.version == sa.bindparam("version")
    )
)


def find_version(session: Session, *, model_name: str, version: str) -> ModelVersion:
    """A version by its model's name and its own, in one query (the model is read only
    to tell which of the two is missing)."""
    row = session.exec(_BY_NAME, params={"model_name": model_name, "version": version}).first()
    if row is None:  # which 404 (or, registered in between, the version after all)
        _, row = get_version(session, model_name=model_name, version=version)
    return row


def parse_label_selector(selector: str) -> dict[str, str]:
    """``team=nlp,stage=prod`` -> {"team": "nlp", "stage": "prod"} (equality only).

    Keys and values follow the rules of the labels they select (a key is used in a JSON
    path on the database: nothing else may reach it)."""
    labels: dict[str, str] = {}
    for term in filter(None, (part.strip() for part in selector.split(","))):
        key, sep, value = term.partition("=")
        key, value = key.strip(), value.strip().removeprefix("=")  # accept k==v too
        if not sep or not key:
            raise _selector_error(f"label selector term {term!r} is not key=value")
        problem = label_key_problem(key) or label_value_problem(key, value)
        if problem:
            raise _selector_error(f"label selector term {term!r}: {problem}")
        labels[key] = value
        if len(labels) > MAX_LABELS:
            raise _selector_error(f"a label selector holds at most {MAX_LABELS} terms")
    return labels


def _selector_error(message: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{message} (e.g. 'team=nlp,stage=prod')", code="invalid_label_selector"
    )


def list_versions(
    session: Session,
    *,
    model_name: str,
    status: VersionStatus | None = None,
    labels: dict[str, str] | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[Model, list[ModelVersion], str | None]:
    model = get_model(session, model_name)
    statement = select(ModelVersion).where(ModelVersion.model_id == model.id)
    if status is not None:
        statement = statement.where(ModelVersion.status == status)
    for key, value in (labels or {}).items():
        statement = statement.where(col(ModelVersion.labels)[key].as_string() == value)
    statement = pagination.page_after(statement, col(ModelVersion.id), cursor, limit)
    rows = list(session.exec(statement).all())
    items, next_cursor = pagination.split_page(rows, limit, lambda version: version.id)
    return model, items, next_cursor
