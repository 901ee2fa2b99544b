"""Versions: register (immutable), list (newest first, filtered), read.

A version's status is not writable here: the rollout engine owns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from controlplane import audit, pagination, redaction
from controlplane.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from controlplane.models import (
    MAX_LABELS,
    ArtifactKind,
    AuditEvent,
    Model,
    ModelVersion,
    VersionBase,
    VersionCreate,
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

_TABLE: sa.Table = ModelVersion.__table__  # type: ignore[attr-defined]


def shown(row: Mapping[Any, Any], model_name: str) -> dict[str, Any]:
    """A stored version (a row of ``model_version``, by column) as the API shows it: the
    fields of :class:`VersionPublic` in its order, credentials redacted by the same rules,
    ready for JSON. Built by hand: a page of 100 versions through pydantic's validation
    cost more than the page's query (tests hold the two equal, field for field)."""
    env = row["env"]
    args = row["args"]
    return {
        "version": row["version"],
        "artifact_uri": redaction.redact_text(row["artifact_uri"]),
        "artifact_kind": ArtifactKind(row["artifact_kind"]).value,
        "base_model": row["base_model"],
        "lora_rank": row["lora_rank"],
        "image": row["image"],
        "args": None if args is None else redaction.redact_args(args),
        "env": None if env is None else _shown_env(env),
        "description": row["description"],
        "labels": row["labels"],
        "model": model_name,
        "metadata": redaction.redact_json(row["metadata"]),
        "status": VersionStatus(row["status"]).value,
        "status_changed_at": row["status_changed_at"],
        "created_at": row["created_at"],
        "created_by": row["created_by"],
    }


def _shown_env(env: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: (
            {
                "secret": value["secret"],
                "key": value["key"],
                "optional": value.get("optional", False),
            }
            if isinstance(value, Mapping)
            else value
        )
        for name, value in redaction.redact_env(env).items()
    }


def _duplicate(model: str, version: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"version {version!r} of model {model!r} is already registered, and versions are "
        "immutable: register the change under a new version name",
        code="version_exists",
        context={"model": model, "version": version},
    )


_ID_BY_NAME = sa.select(_TABLE.c.id).where(
    _TABLE.c.model_id == sa.bindparam("model_id"), _TABLE.c.version == sa.bindparam("version")
)
_MODEL_BY_NAME = sa.select(col(Model.id), col(Model.name), col(Model.base_pool)).where(
    col(Model.name) == sa.bindparam("name")
)
_INSERT_VERSION = _TABLE.insert()
_INSERT_AUDIT = AuditEvent.__table__.insert()  # type: ignore[attr-defined]
_REGISTERED = frozenset(VersionBase.model_fields) - {"meta", "env"}


def _model_key(session: Session, name: str) -> sa.Row[int | None, str, str | None]:
    """A model's id, name and base pool (not its whole row: its JSON columns cost more to
    read than a registration's other queries), or the model's 404."""
    model = session.connection().execute(_MODEL_BY_NAME, {"name": name}).first()
    if model is None:
        get_model(session, name)  # raises the 404
        raise AssertionError(f"model {name!r} vanished")  # pragma: no cover
    return model


def register_version(
    session: Session,
    *,
    model_name: str,
    data: VersionCreate,
    actor: str,
    now: datetime | None = None,
) -> tuple[str, dict[str, Any]]:
    """Store a new version and its audit record in one transaction; the model's name and
    the stored row (by column, its id included: see :func:`shown`).

    Two INSERTs of their own rather than the ORM's unit of work, which cost more than the
    rest of a registration together (and a version is never changed here afterwards)."""
    now = now or utcnow()
    connection = session.connection()
    model = _model_key(session, model_name)
    name = workload_name(model.name, data.version)
    if len(name) > LABEL_MAX:
        raise InvalidRequestError(
            f"'{name}' (model-version) would be {len(name)} characters, over the Kubernetes "
            f"limit of {LABEL_MAX} for Service names: shorten the version name to at most "
            f"{LABEL_MAX - len(model.name) - 1} characters",
            code="name_too_long",
        )
    exists = connection.execute(
        _ID_BY_NAME, {"model_id": model.id, "version": data.version}
    ).first()
    if exists is not None:
        raise _duplicate(model.name, data.version)
    if model.base_pool is not None:
        pools.check_adapter_version(session, get_model(session, model.name), data)
    row: dict[str, Any] = {
        **{field: getattr(data, field) for field in _REGISTERED},
        "model_id": model.id,
        "env": env_json(data.env),
        "metadata": data.meta,
        "status": VersionStatus.REGISTERED,
        "status_changed_at": now,
        "created_at": now,
        "created_by": actor,
    }
    audited = audit.row(
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
        inserted = connection.execute(_INSERT_VERSION, row).inserted_primary_key
        assert inserted is not None
        row["id"] = inserted[0]
        connection.execute(_INSERT_AUDIT, audited)
        session.commit()
    except IntegrityError as error:  # a concurrent registration of the same name won
        session.rollback()
        raise _duplicate(model.name, data.version) from error
    return model.name, row


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
    sa.select(_TABLE)
    .join(Model, col(Model.id) == _TABLE.c.model_id)
    .where(
        col(Model.name) == sa.bindparam("model_name"), _TABLE.c.version == sa.bindparam("version")
    )
)


def find_version(session: Session, *, model_name: str, version: str) -> sa.RowMapping:
    """A stored version (by column, see :func:`shown`) by its model's name and its own, in
    one query (the model is read only to tell which of the two is missing)."""
    connection = session.connection()
    params = {"model_name": model_name, "version": version}
    row = connection.execute(_BY_NAME, params).mappings().first()
    if row is None:  # which 404 (or, registered in between, the version after all)
        get_version(session, model_name=model_name, version=version)
        row = connection.execute(_BY_NAME, params).mappings().one()
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
) -> tuple[str, list[sa.RowMapping], str | None]:
    """A page of a model's versions, newest first, as stored rows (see :func:`shown`): read
    with a plain SELECT, not as ORM objects (three times the cost for a page of 100)."""
    connection = session.connection()
    model = _model_key(session, model_name)
    statement = sa.select(_TABLE).where(_TABLE.c.model_id == model.id)
    if status is not None:
        statement = statement.where(_TABLE.c.status == status)
    for key, value in (labels or {}).items():
        statement = statement.where(_TABLE.c.labels[key].as_string() == value)
    statement = pagination.page_after(statement, _TABLE.c.id, cursor, limit)
    rows = list(connection.execute(statement).mappings().all())
    items, next_cursor = pagination.split_page(rows, limit, lambda row: row["id"])
    return model.name, items, next_cursor
