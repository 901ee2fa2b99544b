"""The persistent domain: SQLModel tables and, beside each, the schemas the API speaks.

One family per entity (``XBase`` -> ``XCreate`` / ``X(table=True)`` / ``XPublic``). Inputs
forbid unknown fields and validate everything that can be checked without the database;
timestamps are UTC and timezone-aware on every backend; structured data lives in JSON
columns. This module does no I/O.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

import sqlalchemy as sa
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Tag,
    field_validator,
    model_validator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from controlplane import naming, redaction
from controlplane.jsonlimits import KIB, MAX_DEPTH, JsonTypes, json_problem
from controlplane.strategy import Strategy

# ---------------------------------------------------------------------------------------
# column types


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Stores UTC, returns timezone-aware UTC datetimes on SQLite as well as PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONColumn = sa.JSON().with_variant(JSONB(), "postgresql")

# Every id column is an INTEGER, 32 bits on PostgreSQL: no row has a larger id, and a larger
# one in a path or a cursor is refused before it reaches a query (SQLite overflows past
# 2**63 - 1, PostgreSQL past this).
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json_field(
    *,
    nullable: bool = False,
    name: str | None = None,
    default: Any = None,
    schema: dict[str, Any] | None = None,
) -> Any:
    column = sa.Column(name, JSONColumn, nullable=nullable) if name else None
    kwargs: dict[str, Any] = {}
    if schema is not None:  # more of the JSON Schema (the validators check it)
        kwargs["schema_extra"] = {"json_schema_extra": schema}
    if column is not None:
        kwargs["sa_column"] = column
    else:
        kwargs["sa_type"] = JSONColumn
        kwargs["nullable"] = nullable
    if default is not None:
        kwargs["default_factory"] = default
    else:
        kwargs["default"] = None
    return Field(**kwargs)


def _enum_field(enum: type[StrEnum], *, default: Any = ..., index: bool = False) -> Any:
    """Stored as its value in a VARCHAR (no database enum type: adding a member later needs
    no migration), read back as the enum member."""
    column_type = sa.Enum(
        enum,
        native_enum=False,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )
    return Field(default=default, sa_type=column_type, index=index)


def _time_field(*, nullable: bool = False, index: bool = False) -> Any:
    # Required timestamps are set by the services (from an injected clock), never defaulted.
    return Field(
        default=None,
        sa_type=UTCDateTime,
        nullable=nullable,
        index=index,
    )


# ---------------------------------------------------------------------------------------
# enums


class Role(StrEnum):
    """Who may do what. Each role can do everything the roles before it can."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


class VersionStatus(StrEnum):
    """Where a version stands. Set only by the rollout engine; read-only over the API."""

    REGISTERED = "registered"
    CANARY = "canary"
    STABLE = "stable"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"

    @property
    def is_live(self) -> bool:
        """A live version has pods serving (or about to serve) traffic."""
        return self in (VersionStatus.CANARY, VersionStatus.STABLE)


class RoutingMode(StrEnum):
    """How traffic is split between versions: replica share, Gateway API weights to a
    Service per version, Gateway API weights to an InferencePool per version (each with its
    endpoint picker), or (adapter models on a base pool) a weighted model-name rewrite
    between adapters."""

    REPLICAS = "replicas"
    GATEWAY_API = "gateway-api"
    INFERENCE_POOL = "inference-pool"
    MODEL_REWRITE = "model-rewrite"


class ArtifactKind(StrEnum):
    WEIGHTS = "weights"
    LORA_ADAPTER = "lora_adapter"


# ---------------------------------------------------------------------------------------
# shared validators


def _documented(pattern: str) -> dict[str, Any]:
    """A name rule in the JSON Schema of a field whose validator checks it (and says why)."""
    return {"json_schema_extra": {"pattern": pattern}}


DNS1035 = _documented(naming.DNS1035_LABEL_PATTERN)
DNS1123 = _documented(naming.DNS1123_LABEL_PATTERN)
GATEWAY = _documented(naming.GATEWAY_PATTERN)
RESOURCE_NAME = _documented(naming.RESOURCE_NAME_PATTERN)
# How much of each collection a model or version may hold: far more than any real use, and
# small enough that every row, pod spec and audit record stays small.
MAX_LABELS = 64  # labels, node_selector
MAX_ENV = 256
MAX_ENV_NAME = 256
MAX_ENV_VALUE = 32 * 1024
MAX_ARGS = 256
MAX_ARG = 4096
MAX_TOLERATIONS = 64
MAX_GPU_BUDGET = 1_000_000
MAX_JSON_BYTES = 64 * KIB  # env, args, version metadata: each, as stored

# the JSON Schema of labels (and node selectors) and of env, as the validators check them
LABELS: dict[str, Any] = {
    "maxProperties": MAX_LABELS,
    "propertyNames": {"pattern": naming.LABEL_KEY_PATTERN},
    "additionalProperties": {"type": "string", "pattern": naming.LABEL_VALUE_PATTERN},
}
# the values' schema is the field's own: a string, or a reference to a Secret's key
ENV: dict[str, Any] = {
    "maxProperties": MAX_ENV,
    "propertyNames": {"pattern": naming.ENV_NAME_PATTERN},
}


def _check_json(value: Any, what: str, **limits: Any) -> None:
    """``value`` can be stored as JSON: depth, size, finite numbers, Unicode text."""
    problem = json_problem(value, what, **limits)
    if problem is not None:
        raise ValueError(problem.message)


def _check_labels(labels: dict[str, str] | None) -> dict[str, str] | None:
    if labels is None:
        return None
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels given; the limit is {MAX_LABELS}")
    for key, value in labels.items():
        problem = naming.label_key_problem(key) or naming.label_value_problem(key, value)
        if problem:
            raise ValueError(problem)
    return labels


class SecretKeyRef(BaseModel):
    """An env value read from one key of a Kubernetes Secret in the model's namespace,
    rendered as ``valueFrom.secretKeyRef``: the value itself never passes through the
    control plane (which needs no access to Secrets), and the reference is no secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str = Field(description="The Secret's name, in the model's namespace.")
    key: str = Field(description="The key in the Secret's data.")
    optional: bool = Field(
        default=False,
        description="Start the pod even when the Secret or the key is missing (the variable "
        "is then unset); false: the pod waits for it (CreateContainerConfigError).",
    )

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        problem = naming.dns1123_subdomain_problem(value, "secret name")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        problem = naming.config_key_problem(value, "secret key")
        if problem:
            raise ValueError(problem)
        return value


def _env_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "value"
    if isinstance(value, dict | SecretKeyRef):
        return "secretKeyRef"
    return None


# An env value: the text itself, or where to read it from (a key of a Secret).
EnvValue = Annotated[
    Annotated[str, Tag("value")] | Annotated[SecretKeyRef, Tag("secretKeyRef")],
    Discriminator(
        _env_kind,
        custom_error_type="env_value",
        custom_error_message='an env value is a string, or {"secret": NAME, "key": KEY} to '
        "read it from a key of a Kubernetes Secret",
    ),
]


def env_json(env: dict[str, Any] | None) -> dict[str, Any] | None:
    """An env as stored: Secret references as plain objects."""
    if env is None:
        return None
    return {
        name: value.model_dump() if isinstance(value, SecretKeyRef) else value
        for name, value in env.items()
    }


def _check_env(
    env: dict[str, str | SecretKeyRef] | None, *, keeps_redacted: bool = False
) -> dict[str, str | SecretKeyRef] | None:
    if env is None:
        return None
    if len(env) > MAX_ENV:
        raise ValueError(f"{len(env)} environment variables given; the limit is {MAX_ENV}")
    for key, value in env.items():
        problem = naming.env_name_problem(key)
        if problem:
            raise ValueError(problem)
        if len(key) > MAX_ENV_NAME:
            raise ValueError(
                f"environment variable name {key[:40]!r}... is {len(key)} characters long; "
                f"the limit is {MAX_ENV_NAME}"
            )
        if not isinstance(value, str):
            continue
        if len(value) > MAX_ENV_VALUE:
            raise ValueError(
                f"environment variable {key} is {len(value)} characters long; the limit is "
                f"{MAX_ENV_VALUE} (mount larger values from a ConfigMap or Secret)"
            )
        problem = None if keeps_redacted else redaction.placeholder_problem(value, f"env {key}")
        if problem:
            raise ValueError(problem)
    _check_json(env_json(env), "env", max_bytes=MAX_JSON_BYTES)
    return env


def _check_args(args: list[str] | None, *, keeps_redacted: bool = False) -> list[str] | None:
    if args is None:
        return None
    if len(args) > MAX_ARGS:
        raise ValueError(f"{len(args)} args given; the limit is {MAX_ARGS}")
    for index, arg in enumerate(args):
        if len(arg) > MAX_ARG:
            raise ValueError(f"args[{index}] is {len(arg)} characters long; the limit is {MAX_ARG}")
        problem = None if keeps_redacted else redaction.placeholder_problem(arg, f"args[{index}]")
        if problem:
            raise ValueError(problem)
    _check_json(args, "args", max_bytes=MAX_JSON_BYTES)
    return args


def _one_token(value: str) -> bool:
    """One token on one line: no whitespace (a trailing newline included) and no control
    characters, as a value that becomes an image, a URI or a path in a pod spec must be."""
    return bool(value) and value.isprintable() and not any(ch.isspace() for ch in value)


def _check_image(image: str | None) -> str | None:
    if image is None:
        return None
    if not _one_token(image) or len(image) > 512:
        raise ValueError(
            f"image {image!r} is not a valid container image reference "
            "(e.g. 'vllm/vllm-openai:v0.11.0' or 'registry.example.com/llm/server@sha256:...')"
        )
    return image


def _check_path(path: str | None) -> str | None:
    if path is not None and not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/' (e.g. '/health')")
    if path is not None and not _one_token(path):
        raise ValueError(
            f"path {path!r} must be one URL path, without spaces or control characters "
            "(e.g. '/health')"
        )
    return path


ARTIFACT_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "hf", "oci", "pvc", "file", "http", "https")


def _check_artifact_uri(uri: str) -> str:
    problem = redaction.placeholder_problem(uri, "artifact_uri")
    if problem:
        raise ValueError(problem)
    scheme, sep, rest = uri.partition("://")
    if not sep or not rest or scheme.lower() not in ARTIFACT_SCHEMES or not _one_token(uri):
        raise ValueError(
            f"artifact_uri {redaction.redact_text(uri)!r} must be a URI, without spaces or "
            f"control characters, with one of the schemes {', '.join(ARTIFACT_SCHEMES)} "
            "(e.g. 's3://models/chat/v2')"
        )
    return uri


def _check_base_model(value: str | None) -> str | None:
    if value is not None and (not value.strip() or not value.isprintable()):
        raise ValueError(
            f"base_model {value!r} must be a model name on one line, without control "
            "characters (e.g. 'meta-llama/Llama-3.1-8B-Instruct')"
        )
    return value


# ---------------------------------------------------------------------------------------
# models (a named deployable with its serving defaults)


class Toleration(JsonTypes, BaseModel):
    """A Kubernetes toleration, e.g. for tainted GPU node pools."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(
        default=None,
        max_length=253,
        schema_extra={"json_schema_extra": {"pattern": naming.OPTIONAL_LABEL_KEY_PATTERN}},
    )
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = Field(
        default=None,
        max_length=63,
        schema_extra={"json_schema_extra": {"pattern": naming.LABEL_VALUE_PATTERN}},
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        problem = naming.label_key_problem(value) if value else None
        if problem:
            raise ValueError(f"toleration {problem}")
        return value

    @field_validator("value")
    @classmethod
    def _value(cls, value: str | None) -> str | None:
        if value and naming.label_value_problem("", value):
            raise ValueError(
                f"toleration value {value!r} is invalid: at most 63 characters of letters, "
                "digits, '-', '_' or '.', starting and ending with a letter or digit"
            )
        return value


EPP_IMAGE = "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"


class EndpointPicker(JsonTypes, BaseModel):
    """``inference-pool`` routing: the endpoint picker the control plane runs beside each
    version's InferencePool (one picker serves one pool), as the inference extension's
    inferencepool chart would."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(default=EPP_IMAGE, max_length=512)
    service_account: str = Field(
        max_length=253,
        schema_extra=DNS1123,
        description="The pickers' ServiceAccount, allowed to get, list and watch pods and "
        "InferencePools in the model's namespace (the control plane grants no RBAC).",
    )
    config_map: str | None = Field(
        default=None,
        max_length=253,
        schema_extra=DNS1123,
        description="A ConfigMap with the picker's plugins configuration, mounted at "
        "/config; None: the picker's built-in defaults.",
    )
    config_file: str = Field(default="default-plugins.yaml", max_length=253)
    port: int = Field(default=9002, ge=1, le=65535, description="Its ext-proc gRPC port.")
    metrics_port: int = Field(default=9090, ge=1, le=65535)
    args: list[str] = Field(default_factory=list, description="More flags for the picker.")
    failure_mode: Literal["FailOpen", "FailClose"] = "FailClose"

    @field_validator("service_account", "config_map")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        if value is not None:
            problem = naming.dns1123_label_problem(value, "name")
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        checked = _check_image(value)
        assert checked is not None
        return checked

    @field_validator("config_file")
    @classmethod
    def _config_file(cls, value: str) -> str:
        if not _one_token(value) or "/" in value or value in (".", ".."):
            raise ValueError(
                f"config_file {value!r} must be a file name in the ConfigMap, without '/', "
                "spaces or control characters (e.g. 'default-plugins.yaml')"
            )
        return value

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        checked = _check_args(value)
        assert checked is not None
        return checked


class ServingDefaults(SQLModel):
    """How a model's pods are run, unless a version overrides it."""

    image: str = Field(max_length=512, description="Container image of the inference server.")
    gpus_per_replica: int = Field(default=1, ge=0, le=64, description="GPUs each pod requests.")
    gpu_resource: str = Field(
        default="nvidia.com/gpu",
        max_length=253,
        description="Extended resource name of the GPU.",
        schema_extra=RESOURCE_NAME,
    )
    replicas: int = Field(default=1, ge=1, le=1000, description="Replicas of the stable version.")
    port: int = Field(default=8000, ge=1, le=65535, description="Container port of the server.")
    args: list[str] = _json_field(default=list)
    env: dict[str, EnvValue] = _json_field(default=dict, schema=ENV)
    gpu_budget: int | None = Field(
        default=None,
        ge=0,
        le=MAX_GPU_BUDGET,
        description="The most GPUs a rollout of this model may hold at once (stable + canary). "
        "None: no limit, the canary surges beside a full stable.",
    )
    routing_mode: RoutingMode = _enum_field(RoutingMode, default=RoutingMode.REPLICAS)
    health_path: str = Field(default="/health", max_length=256)
    gateway: str | None = Field(
        default=None,
        max_length=127,
        schema_extra=GATEWAY,
        description="'namespace/name' (or 'name', in the model's namespace) of the Gateway "
        "the model's HTTPRoute attaches to; required when routing_mode is gateway-api.",
    )
    node_selector: dict[str, str] = _json_field(default=dict, schema=LABELS)
    tolerations: list[Toleration] = _json_field(default=list)
    endpoint_picker: EndpointPicker | None = _json_field(nullable=True)


class ModelBase(ServingDefaults):
    name: str = Field(max_length=63, description="Unique name; a valid Kubernetes Service name.")
    base_pool: str | None = Field(
        default=None,
        max_length=63,
        description="A base pool (POST /v1/pools) whose pods serve this model's versions as "
        "LoRA adapters: rollouts load and unload adapters there and start no pod. Its "
        "routing_mode is model-rewrite; image and GPU settings do not apply.",
    )
    default_strategy: Strategy | None = _json_field(nullable=True)
    namespace: str = Field(default="default", max_length=63)
    description: str = Field(default="", max_length=2000)
    labels: dict[str, str] = _json_field(default=dict, schema=LABELS)


class _ServingValidators:
    """Field checks shared by the create and update schemas."""

    # a PATCH may send back what a GET showed in place of a credential (the registry then
    # keeps the stored value); a create or a registration may not
    keeps_redacted: ClassVar[bool] = False

    @field_validator("image", check_fields=False)
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return _check_image(value)

    @field_validator("gpu_resource", check_fields=False)
    @classmethod
    def _gpu_resource(cls, value: str | None) -> str | None:
        if value is not None:
            problem = naming.resource_name_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("env", check_fields=False)
    @classmethod
    def _env(
        cls, value: dict[str, str | SecretKeyRef] | None
    ) -> dict[str, str | SecretKeyRef] | None:
        return _check_env(value, keeps_redacted=cls.keeps_redacted)

    @field_validator("args", check_fields=False)
    @classmethod
    def _args(cls, value: list[str] | None) -> list[str] | None:
        return _check_args(value, keeps_redacted=cls.keeps_redacted)

    @field_validator("tolerations", check_fields=False)
    @classmethod
    def _tolerations(cls, value: list[Toleration] | None) -> list[Toleration] | None:
        if value is not None and len(value) > MAX_TOLERATIONS:
            raise ValueError(f"{len(value)} tolerations given; the limit is {MAX_TOLERATIONS}")
        return value

    @field_validator("labels", check_fields=False)
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_labels(value)

    @field_validator("node_selector", check_fields=False)
    @classmethod
    def _node_selector(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_labels(value)

    @field_validator("gateway", check_fields=False)
    @classmethod
    def _gateway(cls, value: str | None) -> str | None:
        if value is not None:
            for part in value.split("/", 1):
                problem = naming.dns1123_label_problem(part, "gateway reference part")
                if problem:
                    raise ValueError(f"gateway must be 'namespace/name' or 'name': {problem}")
        return value

    @field_validator("health_path", check_fields=False)
    @classmethod
    def _health_path(cls, value: str | None) -> str | None:
        return _check_path(value)


class ModelCreate(JsonTypes, _ServingValidators, ModelBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [{"name": "chat", "namespace": "llm", "image": "vllm/vllm-openai:v0.11.0"}],
            # an image, unless the model is served as adapters on a base pool
            "anyOf": [
                {"required": ["image"], "properties": {"image": {"minLength": 1}}},
                {"required": ["base_pool"], "properties": {"base_pool": {"type": "string"}}},
            ],
        },
    )

    name: str = Field(
        max_length=63,
        description="Unique name; a valid Kubernetes Service name (RFC 1035 label).",
        schema_extra=DNS1035,
    )
    namespace: str = Field(default="default", max_length=63, schema_extra=DNS1123)
    base_pool: str | None = Field(
        default=None,
        max_length=63,
        description=ModelBase.model_fields["base_pool"].description,
        schema_extra=DNS1123,
    )

    image: str = Field(
        default="",
        max_length=512,
        description="Container image of the inference server (not for a base_pool model).",
        schema_extra={"examples": ["vllm/vllm-openai:v0.11.0"]},
    )

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:  # empty: a base_pool model has none
        return value if value == "" else _check_image(value)

    @model_validator(mode="after")
    def _adapters_or_pods(self) -> Self:
        if self.base_pool is None:
            if not self.image:
                raise ValueError(
                    "image is required: the container image of the inference server (or "
                    "base_pool, for a model served as LoRA adapters on a base pool's pods)"
                )
            if self.routing_mode is RoutingMode.MODEL_REWRITE:
                raise ValueError(
                    "routing_mode 'model-rewrite' is for models served as adapters: give "
                    "base_pool, or route with replicas, gateway-api or inference-pool"
                )
            return self
        naming_problem = naming.dns1123_label_problem(self.base_pool, "base_pool")
        if naming_problem:
            raise ValueError(naming_problem)
        if "routing_mode" in self.model_fields_set and (
            self.routing_mode is not RoutingMode.MODEL_REWRITE
        ):
            raise ValueError(
                "a base_pool model routes with 'model-rewrite' (a weighted rewrite of its "
                f"model name to its adapters), not {self.routing_mode.value!r}: leave "
                "routing_mode out"
            )
        self.routing_mode = RoutingMode.MODEL_REWRITE
        self.gpus_per_replica, self.replicas, self.gpu_budget = 0, 1, None
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = naming.dns1035_label_problem(value, "model name")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        problem = naming.dns1123_label_problem(value, "namespace")
        if problem:
            raise ValueError(problem)
        return value


class ModelUpdate(JsonTypes, _ServingValidators, SQLModel):
    """A PATCH of a model's serving defaults: only the fields given are changed."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # type: ignore[assignment]
    keeps_redacted: ClassVar[bool] = True

    image: str | None = Field(default=None, max_length=512)
    gpus_per_replica: int | None = Field(default=None, ge=0, le=64)
    gpu_resource: str | None = Field(default=None, max_length=253, schema_extra=RESOURCE_NAME)
    replicas: int | None = Field(default=None, ge=1, le=1000)
    port: int | None = Field(default=None, ge=1, le=65535)
    args: list[str] | None = None
    env: dict[str, EnvValue] | None = Field(default=None, schema_extra={"json_schema_extra": ENV})
    gpu_budget: int | None = Field(default=None, ge=0, le=MAX_GPU_BUDGET)
    routing_mode: RoutingMode | None = None
    health_path: str | None = Field(default=None, max_length=256)
    gateway: str | None = Field(default=None, max_length=127, schema_extra=GATEWAY)
    default_strategy: Strategy | None = None
    node_selector: dict[str, str] | None = Field(
        default=None, schema_extra={"json_schema_extra": LABELS}
    )
    tolerations: list[Toleration] | None = None
    endpoint_picker: EndpointPicker | None = None
    description: str | None = Field(default=None, max_length=2000)
    labels: dict[str, str] | None = Field(default=None, schema_extra={"json_schema_extra": LABELS})


class Model(ModelBase, table=True):
    __tablename__: ClassVar[str] = "model"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True, index=True)
    # stored as plain dicts; validated (Toleration, Strategy, SecretKeyRef) on the way in
    # and out
    env: dict[str, Any] = _json_field(default=dict)
    tolerations: list[dict[str, Any]] = _json_field(default=list)  # type: ignore[assignment]
    endpoint_picker: dict[str, Any] | None = _json_field(nullable=True)  # type: ignore[assignment]
    default_strategy: dict[str, Any] | None = _json_field(nullable=True)  # type: ignore[assignment]
    created_at: datetime = _time_field()
    created_by: str = Field(max_length=128)
    updated_at: datetime = _time_field()
    updated_by: str = Field(max_length=128)


class ModelPublic(ModelBase):
    """A model as the API shows it, to every role: credentials redacted (see
    controlplane.redaction); Secret references shown as they are."""

    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str | SecretKeyRef]) -> dict[str, str | SecretKeyRef]:
        return redaction.redact_env(value)

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        return redaction.redact_args(value)

    @field_validator("endpoint_picker")
    @classmethod
    def _endpoint_picker(cls, value: EndpointPicker | None) -> EndpointPicker | None:
        if value is None:
            return None
        return value.model_copy(update={"args": redaction.redact_args(value.args)})


class ModelPage(SQLModel):
    items: list[ModelPublic]
    next_cursor: str | None = None


# ---------------------------------------------------------------------------------------
# versions (immutable records of what was trained and how to serve it)


class VersionBase(SQLModel):
    version: str = Field(max_length=63, description="Unique per model; part of resource names.")
    artifact_uri: str = Field(
        max_length=2048,
        description="Weights or LoRA adapter location.",
        schema_extra={"examples": ["s3://models/chat/v2", "hf://acme/chat-7b"]},
    )
    artifact_kind: ArtifactKind = _enum_field(ArtifactKind, default=ArtifactKind.WEIGHTS)
    base_model: str | None = Field(
        default=None, max_length=512, description="The base model a LoRA adapter applies to."
    )
    lora_rank: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="A LoRA adapter's rank: it must fit the base pool's max_lora_rank.",
    )
    image: str | None = Field(default=None, max_length=512, description="Overrides the model's.")
    args: list[str] | None = _json_field(nullable=True)
    env: dict[str, EnvValue] | None = _json_field(nullable=True, schema=ENV)
    description: str = Field(default="", max_length=2000)
    labels: dict[str, str] = _json_field(default=dict, schema=LABELS)


class VersionCreate(JsonTypes, _ServingValidators, VersionBase):
    """Registration of a new version. ``args`` replaces the model's args when given; ``env``
    is merged over the model's env. Image, env and labels are checked as a model's are."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        hide_input_in_errors=True,
        json_schema_extra={"examples": [{"version": "v2", "artifact_uri": "s3://models/chat/v2"}]},
    )

    version: str = Field(
        max_length=63,
        description="Unique per model; part of resource names (RFC 1123 label).",
        schema_extra=DNS1123,
    )
    meta: dict[str, Any] = Field(
        default_factory=dict,
        alias="metadata",
        description="Free-form lineage: training run, dataset hash, eval scores. At most "
        f"{MAX_DEPTH} levels deep and {MAX_JSON_BYTES // KIB} KiB as JSON; numbers finite.",
    )

    @field_validator("meta")
    @classmethod
    def _meta(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value, "metadata", max_bytes=MAX_JSON_BYTES)
        if redaction.REDACTED in json.dumps(value):
            raise ValueError(redaction.placeholder_problem(redaction.REDACTED, "metadata"))
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        problem = naming.dns1123_label_problem(value, "version name")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("artifact_uri")
    @classmethod
    def _artifact_uri(cls, value: str) -> str:
        return _check_artifact_uri(value)

    @field_validator("base_model")
    @classmethod
    def _base_model(cls, value: str | None) -> str | None:
        return _check_base_model(value)

    @model_validator(mode="after")
    def _adapter_needs_base(self) -> Self:
        if self.artifact_kind is ArtifactKind.LORA_ADAPTER and not self.base_model:
            raise ValueError(
                "a lora_adapter artifact needs base_model: name the base model the adapter "
                "applies to (e.g. 'meta-llama/Llama-3.1-8B-Instruct')"
            )
        if self.artifact_kind is ArtifactKind.WEIGHTS and self.base_model:
            raise ValueError(
                "base_model is only for artifact_kind 'lora_adapter'; record a full model's "
                "origin in metadata instead"
            )
        if self.artifact_kind is ArtifactKind.WEIGHTS and self.lora_rank is not None:
            raise ValueError("lora_rank is only for artifact_kind 'lora_adapter'")
        return self


class ModelVersion(VersionBase, table=True):
    __tablename__: ClassVar[str] = "model_version"
    __table_args__ = (sa.UniqueConstraint("model_id", "version", name="uq_model_version_name"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True, ondelete="CASCADE")
    env: dict[str, Any] | None = _json_field(nullable=True)
    meta: dict[str, Any] = _json_field(name="metadata", default=dict)
    status: VersionStatus = _enum_field(VersionStatus, default=VersionStatus.REGISTERED, index=True)
    status_changed_at: datetime = _time_field()
    created_at: datetime = _time_field()
    created_by: str = Field(max_length=128)


class VersionPublic(VersionBase):
    """A version as the API shows it, to every role: credentials redacted in its env, args,
    metadata and artifact URI (see controlplane.redaction)."""

    model: str
    meta: dict[str, Any] = Field(default_factory=dict, alias="metadata")
    status: VersionStatus
    status_changed_at: datetime
    created_at: datetime
    created_by: str

    @field_validator("env")
    @classmethod
    def _env(
        cls, value: dict[str, str | SecretKeyRef] | None
    ) -> dict[str, str | SecretKeyRef] | None:
        return None if value is None else redaction.redact_env(value)

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else redaction.redact_args(value)

    @field_validator("meta")
    @classmethod
    def _meta(cls, value: dict[str, Any]) -> dict[str, Any]:
        shown: dict[str, Any] = redaction.redact_json(value)
        return shown

    @field_validator("artifact_uri")
    @classmethod
    def _artifact_uri(cls, value: str) -> str:
        return redaction.redact_text(value)


class VersionPage(SQLModel):
    items: list[VersionPublic]
    next_cursor: str | None = None


# ---------------------------------------------------------------------------------------
# base pools (pods of a base model with LoRA enabled, shared by adapter models)


class PoolBase(SQLModel):
    name: str = Field(max_length=63, description="Unique name of the pool.")
    namespace: str = Field(default="default", max_length=63)
    base_model: str = Field(
        max_length=512,
        description="The base model its pods serve; an adapter version's base_model must match.",
    )
    deployment: str | None = Field(
        default=None,
        max_length=253,
        description="The Deployment of the base model's pods (never changed by a rollout).",
    )
    inference_pool: str | None = Field(
        default=None,
        max_length=253,
        description="The InferencePool over the pods (inference.networking.k8s.io/v1): what "
        "the InferenceModelRewrite of an adapter model refers to.",
    )
    port: int = Field(default=8000, ge=1, le=65535, description="The pods' serving port.")
    max_loras: int = Field(
        ge=1,
        le=1024,
        description="Adapters each pod can hold at once (vLLM's --max-loras, or --max-cpu-loras "
        "when set higher): a rollout needs room for one more.",
    )
    max_lora_rank: int = Field(
        default=16, ge=1, le=1024, description="vLLM's --max-lora-rank on the pool's pods."
    )
    description: str = Field(default="", max_length=2000)
    labels: dict[str, str] = _json_field(default=dict, schema=LABELS)


class _PoolValidators:
    @field_validator("deployment", "inference_pool", check_fields=False)
    @classmethod
    def _object_name(cls, value: str | None) -> str | None:
        if value is not None:
            problem = naming.dns1123_label_problem(value, "name")
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("labels", check_fields=False)
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_labels(value)

    @field_validator("base_model", check_fields=False)
    @classmethod
    def _base_model(cls, value: str | None) -> str | None:
        return _check_base_model(value)


class PoolCreate(JsonTypes, _PoolValidators, PoolBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "llama",
                    "namespace": "llm",
                    "base_model": "meta-llama/Llama-3.1-8B-Instruct",
                    "deployment": "llama-base",
                    "max_loras": 4,
                }
            ]
        },
    )

    name: str = Field(max_length=63, description="Unique name of the pool.", schema_extra=DNS1123)
    namespace: str = Field(default="default", max_length=63, schema_extra=DNS1123)
    deployment: str | None = Field(
        default=None,
        max_length=253,
        description=PoolBase.model_fields["deployment"].description,
        schema_extra=DNS1123,
    )
    inference_pool: str | None = Field(
        default=None,
        max_length=253,
        description=PoolBase.model_fields["inference_pool"].description,
        schema_extra=DNS1123,
    )

    @field_validator("name", "namespace")
    @classmethod
    def _names(cls, value: str) -> str:
        problem = naming.dns1123_label_problem(value, "name")
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _pods_named(self) -> Self:
        if self.deployment is None and self.inference_pool is None:
            raise ValueError(
                "name the pool's pods: deployment (the base model's Deployment) and/or "
                "inference_pool (the InferencePool over them)"
            )
        return self


class PoolUpdate(JsonTypes, _PoolValidators, SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    deployment: str | None = Field(default=None, max_length=253, schema_extra=DNS1123)
    inference_pool: str | None = Field(default=None, max_length=253, schema_extra=DNS1123)
    port: int | None = Field(default=None, ge=1, le=65535)
    max_loras: int | None = Field(default=None, ge=1, le=1024)
    max_lora_rank: int | None = Field(default=None, ge=1, le=1024)
    description: str | None = Field(default=None, max_length=2000)
    labels: dict[str, str] | None = Field(default=None, schema_extra={"json_schema_extra": LABELS})


class BasePool(PoolBase, table=True):
    __tablename__: ClassVar[str] = "base_pool"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True, index=True)
    created_at: datetime = _time_field()
    created_by: str = Field(max_length=128)
    updated_at: datetime = _time_field()
    updated_by: str = Field(max_length=128)
    # which pod holds which adapters, as the keeper last read them ([PodAdapters] as JSON)
    pods: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=sa.Column("pods", JSONColumn, nullable=False, server_default=sa.text("'[]'")),
    )
    observed_at: datetime | None = _time_field(nullable=True)
    # who acts on the pool's pods now (the keeper, or a rollout of one of its models):
    # one replica at a time loads, unloads and gates, on what it read after claiming
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = _time_field(nullable=True)


class PodAdapters(BaseModel):
    """One pod of a base pool and the adapters its server lists, as last read."""

    pod: str
    serving: bool = Field(description="Its server is up: it can load adapters and answer.")
    ready: bool = Field(description="The pod is Ready (its adapters gate open, if declared).")
    gated: bool = Field(description="The pod declares the adapters readiness gate.")
    adapters: list[str] | None = Field(
        description="The adapters its server lists (/v1/models); null: it could not be read."
    )
    error: str | None = None


class PoolPublic(PoolBase):
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    pods: list[PodAdapters] = Field(
        default_factory=list,
        description="Which pod holds which adapters, as the keeper last read them (it reads "
        "a pool while an adapter on it needs loading or unloading).",
    )
    observed_at: datetime | None = None


class PoolPage(SQLModel):
    items: list[PoolPublic]
    next_cursor: str | None = None


# ---------------------------------------------------------------------------------------
# API tokens (only hashes are stored)


class TokenBase(SQLModel):
    name: str = Field(max_length=63)
    role: Role = _enum_field(Role)
    description: str = Field(default="", max_length=500)


class TokenCreate(JsonTypes, TokenBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid", json_schema_extra={"examples": [{"name": "ci", "role": "operator"}]}
    )

    name: str = Field(max_length=63, schema_extra=DNS1123)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = naming.dns1123_label_problem(value, "token name")
        if problem:
            raise ValueError(problem)
        return value


class ApiToken(TokenBase, table=True):
    __tablename__: ClassVar[str] = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True, index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = _time_field()
    created_by: str = Field(max_length=128)
    expires_at: datetime | None = _time_field(nullable=True)
    revoked_at: datetime | None = _time_field(nullable=True)
    revoked_by: str | None = Field(default=None, max_length=128)


class TokenPublic(TokenBase):
    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class TokenCreated(TokenPublic):
    token: str = Field(description="The secret. Shown once: store it now.")


# ---------------------------------------------------------------------------------------
# rollouts: durable state machines, their events and their measurements


class Phase(StrEnum):
    """Where a rollout stands. Stored; transitions are decided by the rollout planner."""

    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTING = "promoting"
    SUCCEEDED = "succeeded"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.ABORTED)

    @property
    def is_live(self) -> bool:
        return not self.is_terminal


class Command(StrEnum):
    """What a person asked of a live rollout; consumed by the next reconcile."""

    PROMOTE = "promote"  # to the next step
    PROMOTE_FULL = "promote_full"  # skip the remaining steps
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"


class Rollout(SQLModel, table=True):
    """The facts the planner needs between ticks; everything else is derived."""

    __tablename__: ClassVar[str] = "rollout"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True, ondelete="CASCADE")
    model: str = Field(max_length=63, index=True)
    # the model's id while the rollout is live, NULL once it ended: a unique column that
    # makes "one live rollout per model" hold even under concurrent requests
    live_model_id: int | None = Field(default=None, unique=True)
    canary_version: str = Field(max_length=63)
    stable_version: str | None = Field(default=None, max_length=63)
    phase: Phase = _enum_field(Phase, default=Phase.PENDING, index=True)
    strategy: dict[str, Any] = _json_field(default=dict)
    step_index: int = 0
    step_started_at: datetime = _time_field()
    routed_weight: int = 0
    stable_replicas: int = 0
    canary_replicas: int = 0  # what the canary Deployment was last asked to run
    # how often someone else's change to what we own (route weights, replicas) was undone
    # in this rollout: the second time, the rollout pauses for a person
    drift_count: int = 0
    stable_short_since: datetime | None = _time_field(nullable=True)
    # the passed analysis steps' windows ({"step", "start", "end", "weight"}): evidence the
    # sequential judge carries over the rest of the rollout
    analysis_windows: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=sa.Column(
            "analysis_windows", JSONColumn, nullable=False, server_default=sa.text("'[]'")
        ),
    )
    problem_since: datetime | None = _time_field(nullable=True)
    # an adapter rollout: its base pool's pods and the adapters each held, as last read
    # ({"pool", "observed_at", "pods": [PodAdapters]}); {} for a full-weights rollout
    placement: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(
            "placement", JSONColumn, nullable=False, server_default=sa.text("'{}'")
        ),
    )
    outcome_on_rollback: Phase = _enum_field(Phase, default=Phase.ROLLED_BACK)
    reason: str = Field(default="", max_length=4000)
    command: Command | None = _enum_field(Command, default=None)
    command_by: str | None = Field(default=None, max_length=128)
    command_reason: str = Field(default="", max_length=1000)
    next_check_at: datetime = _time_field(index=True)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = _time_field(nullable=True)
    # the fencing token: raised by one on every claim; a pass writes its decision only if
    # the rollout still carries the token it claimed with (controlplane.rollout.leases)
    lease_token: int = Field(
        default=0,
        sa_column=sa.Column("lease_token", sa.BigInteger(), nullable=False, server_default="0"),
    )
    created_at: datetime = _time_field()
    created_by: str = Field(max_length=128)
    updated_at: datetime = _time_field()
    finished_at: datetime | None = _time_field(nullable=True)


class RolloutEvent(SQLModel, table=True):
    """One thing that happened to a rollout, who or what did it, and the evidence."""

    __tablename__: ClassVar[str] = "rollout_event"

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id", index=True, ondelete="CASCADE")
    at: datetime = _time_field()
    actor: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    phase: Phase = _enum_field(Phase)
    step_index: int
    weight: int
    message: str = Field(max_length=4000)
    evidence: dict[str, Any] = _json_field(default=dict)


class Measurement(SQLModel, table=True):
    """One analysis measurement: each metric's canary and stable values, sample counts,
    test statistic and verdict, and the combined verdict."""

    __tablename__: ClassVar[str] = "measurement"

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id", index=True, ondelete="CASCADE")
    step_index: int
    at: datetime = _time_field()
    weight: int
    verdict: str = Field(max_length=16)
    summary: str = Field(max_length=4000)
    metrics: list[dict[str, Any]] = _json_field(default=list)
    # set when the look stopped counting as evidence, and why (taken while someone else's
    # change to the route was in force, or while stable was short of ready replicas)
    discarded: str | None = Field(default=None, max_length=1000)


# ---------------------------------------------------------------------------------------
# audit trail: every write, who made it, what it touched


class AuditEvent(SQLModel, table=True):
    __tablename__: ClassVar[str] = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _time_field(index=True)
    actor: str = Field(max_length=128, index=True)
    action: str = Field(max_length=64, index=True)
    model: str | None = Field(default=None, max_length=63, index=True)
    version: str | None = Field(default=None, max_length=63)
    details: dict[str, Any] = _json_field(default=dict)


class AuditEventPublic(SQLModel):
    id: int
    at: datetime
    actor: str
    action: str
    model: str | None
    version: str | None
    details: dict[str, Any]

    @field_validator("details")
    @classmethod
    def _details(cls, value: dict[str, Any]) -> dict[str, Any]:
        # written redacted (controlplane.audit); redacted again for rows written before
        shown: dict[str, Any] = redaction.redact_json(value)
        return shown


class AuditPage(SQLModel):
    items: list[AuditEventPublic]
    next_cursor: str | None = None


# ---------------------------------------------------------------------------------------
# webhooks: subscriptions to rollout events, and an outbox of deliveries (see
# controlplane/webhooks/; the kinds, formats and statuses are validated there)


class Webhook(SQLModel, table=True):
    """A receiver of rollout events. ``secret`` signs each body (HMAC-SHA256): it is shown
    once at creation and never returned, logged or put in the audit trail afterwards."""

    __tablename__: ClassVar[str] = "webhook"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, unique=True, index=True)
    url: str = Field(max_length=4096, repr=False)  # sealed: a Slack URL is a credential
    events: list[str] = _json_field(default=list)
    format: str = Field(default="json", max_length=16)
    secret: str = Field(max_length=512, repr=False)  # sealed (controlplane.sealing)
    description: str = Field(default="", max_length=500)
    active: bool = True
    created_at: datetime = _time_field()
    created_by: str = Field(max_length=128)


class WebhookDelivery(SQLModel, table=True):
    """One event for one webhook: written in the transaction that records the event (an
    outbox), then claimed with a lease and sent by the dispatcher, with retries."""

    __tablename__: ClassVar[str] = "webhook_delivery"
    __table_args__ = (sa.Index("ix_webhook_delivery_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(foreign_key="webhook.id", index=True, ondelete="CASCADE")
    rollout_id: int | None = Field(
        default=None, foreign_key="rollout.id", index=True, nullable=True, ondelete="SET NULL"
    )
    event: str = Field(max_length=32)
    payload: dict[str, Any] = _json_field(default=dict)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = _time_field()
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=1000)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = _time_field(nullable=True)
    created_at: datetime = _time_field()
    delivered_at: datetime | None = _time_field(nullable=True)


# ---------------------------------------------------------------------------------------
# eval suites (immutable sets of prompts), and the evaluation runs of rollouts: each item
# sent to the canary and to stable, both answers scored (see controlplane.evalsuite)


class EvalSuiteCreate(SQLModel):
    """A new suite, or a new version of one: ``items`` as decoded JSONL objects."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "starter",
                    "items": [
                        {"id": "add-1", "prompt": "2 + 2?", "scorer": "number", "expected": 4}
                    ],
                }
            ]
        },
    )

    name: str = Field(
        max_length=63,
        description="The suite's name; versions are numbered.",
        schema_extra=DNS1123,
    )
    description: str = Field(default="", max_length=2000)
    items: list[dict[str, Any]] = Field(
        min_length=1, description="The items (see controlplane.evalsuite.EvalItem)."
    )

    @field_validator("items")
    @classmethod
    def _items(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        _check_json(value, "items", max_depth=8)  # an item is a few levels deep at most
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = naming.dns1123_label_problem(value, "suite name")
        if problem:
            raise ValueError(problem)
        return value


class EvalSuite(SQLModel, table=True):
    """One version of a suite: never changed once written (a new set is a new version)."""

    __tablename__: ClassVar[str] = "eval_suite"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_eval_suite_version"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63, index=True)
    version: int = Field(ge=1)
    description: str = Field(default="", max_length=2000)
    items: list[dict[str, Any]] = _json_field(default=list)
    item_count: int = 0
    tags: dict[str, int] = _json_field(default=dict)  # items per tag
    sha256: str = Field(max_length=64)  # of the items, canonical JSON
    created_at: datetime = _time_field()
    created_by: str = Field(max_length=128)


class EvalSuiteSummary(SQLModel):
    name: str
    version: int
    description: str
    item_count: int
    tags: dict[str, int]
    sha256: str
    created_at: datetime
    created_by: str


class EvalSuitePublic(EvalSuiteSummary):
    items: list[dict[str, Any]]


class EvalSuitePage(SQLModel):
    items: list[EvalSuiteSummary]
    next_cursor: str | None = None


class EvalRun(SQLModel, table=True):
    """One evaluation step of a rollout: the suite sent to both versions. Its answers are
    written as they come (a restarted control plane goes on from the items left), under a
    lease held by the replica that sends them."""

    __tablename__: ClassVar[str] = "eval_run"

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: int = Field(foreign_key="rollout.id", index=True, ondelete="CASCADE")
    model_id: int = Field(foreign_key="model.id", index=True, ondelete="CASCADE")
    step_index: int
    suite_id: int = Field(foreign_key="eval_suite.id", index=True)
    suite: str = Field(max_length=80)  # name@version, as shown
    canary_version: str = Field(max_length=63)
    stable_version: str | None = Field(default=None, max_length=63)
    status: str = Field(default="running", max_length=16)  # running, done, failed
    settings: dict[str, Any] = _json_field(default=dict)  # what makes answers comparable
    cost: dict[str, Any] = _json_field(default=dict)  # prompts, tokens, seconds, ...
    result: dict[str, Any] = _json_field(default=dict)  # the judgement, per tag
    error: str | None = Field(default=None, max_length=2000)
    started_at: datetime = _time_field()
    finished_at: datetime | None = _time_field(nullable=True)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = _time_field(nullable=True)


class EvalAnswer(SQLModel, table=True):
    """One item's answer from one side (``canary`` or ``stable``) in a run, and its score
    (``passed`` is None when no answer came: timeouts, errors)."""

    __tablename__: ClassVar[str] = "eval_answer"
    __table_args__ = (sa.UniqueConstraint("run_id", "item_id", "side", name="uq_eval_answer_item"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="eval_run.id", index=True, ondelete="CASCADE")
    item_id: str = Field(max_length=100)
    side: str = Field(max_length=8)
    tag: str = Field(default="", max_length=50)
    answer: str = Field(default="", max_length=2000)  # truncated
    passed: bool | None = None
    detail: str = Field(default="", max_length=500)
    error: str | None = Field(default=None, max_length=500)
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    reused_from: int | None = None  # the run whose answer this is (stable, unchanged)


class EvalScore(SQLModel, table=True):
    """A score measured elsewhere (lm-evaluation-harness, OpenAI evals) and imported for a
    version, with its provenance: what the eval gate calls measured, not typed."""

    __tablename__: ClassVar[str] = "eval_score"
    __table_args__ = (sa.UniqueConstraint("version_id", "name", name="uq_eval_score_version_name"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    value: float
    source: str = Field(max_length=32)
    provenance: dict[str, Any] = _json_field(default=dict)
    recorded_at: datetime = _time_field()
    recorded_by: str = Field(max_length=128)


class EvalScoresImport(SQLModel):
    """Results measured elsewhere, to record as the version's scores."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    format: Literal["lm-eval-harness", "openai-evals"]
    document: dict[str, Any] | str = Field(
        description="lm-eval-harness: the results JSON (object, or its text: the hash is "
        "then of the file's bytes); openai-evals: the JSONL log as text."
    )
    tasks: list[str] | None = Field(
        default=None, max_length=200, description="Only these tasks (lm-eval-harness)."
    )
    metric: str | None = Field(
        default=None,
        max_length=100,
        description="The metric read as each task's score (default: acc_norm, acc, "
        "exact_match, ... whichever the task has first; accuracy for openai-evals).",
    )


class EvalScorePublic(SQLModel):
    name: str
    value: float
    source: str
    provenance: dict[str, Any]
    recorded_at: datetime
    recorded_by: str
