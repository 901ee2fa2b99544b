"""Kubernetes naming rules for the names users give us, checked before anything is stored.

A model's name becomes a Service name (RFC 1035 label), a version's name becomes part of
``<model>-<version>`` Deployment and Service names and a label value. Checking here means a
bad name is a 400 at registration, not a failure minutes later inside a rollout.
"""

from __future__ import annotations

import re

# Every pattern here is matched against the whole string (``fullmatch``): with ``match``
# and a ``$`` anchor, a name with a trailing newline ("chat\n") would pass, since ``$``
# also matches just before a final newline.
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_MAX = 63
# label keys: optional DNS-subdomain prefix, then a name of at most 63 characters
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_RESOURCE_NAME = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
SUBDOMAIN_MAX = 253

# The label rules above with their length limit, as JSON Schema patterns for the OpenAPI
# document (the validators below stay, for their messages): what a client may send.
# (A label key's DNS prefix may be 253 characters: a regex cannot count that, so the
# pattern lets a longer prefix through, and the validator refuses it with a 422.)
_1123 = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_PREFIX = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
_KEY = _PREFIX + r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
DNS1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS1123_LABEL_PATTERN = f"^{_1123}$"
GATEWAY_PATTERN = f"^{_1123}(/{_1123})?$"
LABEL_KEY_PATTERN = f"^{_KEY}$"
OPTIONAL_LABEL_KEY_PATTERN = f"^({_KEY})?$"
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
RESOURCE_NAME_PATTERN = f"^{_PREFIX}" + r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]{0,255}$"


def dns1035_label_problem(value: str, what: str) -> str | None:
    """Why ``value`` is not a valid RFC 1035 label (Service names), or None when it is."""
    if len(value) > LABEL_MAX:
        return f"{what} {value!r} is {len(value)} characters long; the limit is {LABEL_MAX}"
    if not DNS1035_LABEL.fullmatch(value):
        return (
            f"{what} {value!r} is not a valid Kubernetes name: use lowercase letters, digits "
            "and '-', starting with a letter and ending with a letter or digit (e.g. 'chat-7b')"
        )
    return None


def dns1123_label_problem(value: str, what: str) -> str | None:
    """Why ``value`` is not a valid RFC 1123 label (namespaces, name parts), or None."""
    if len(value) > LABEL_MAX:
        return f"{what} {value!r} is {len(value)} characters long; the limit is {LABEL_MAX}"
    if not DNS1123_LABEL.fullmatch(value):
        return (
            f"{what} {value!r} is not a valid Kubernetes name: use lowercase letters, digits "
            "and '-', starting and ending with a letter or digit (e.g. 'v2' or '2024-11-rc1')"
        )
    return None


def dns1123_subdomain_problem(value: str, what: str) -> str | None:
    """Why ``value`` is not a valid RFC 1123 subdomain (Secret and ConfigMap names), or None."""
    if len(value) > SUBDOMAIN_MAX:
        return f"{what} {value[:40]!r}... is {len(value)} characters long; the limit is 253"
    if not _SUBDOMAIN.fullmatch(value):
        return (
            f"{what} {value!r} is not a valid Kubernetes name: use lowercase letters, digits, "
            "'-' and '.', starting and ending with a letter or digit (e.g. 'hf-token')"
        )
    return None


def config_key_problem(key: str, what: str) -> str | None:
    """Why ``key`` is not a valid key of a Secret's or ConfigMap's data, or None."""
    if len(key) > SUBDOMAIN_MAX:
        return f"{what} {key[:40]!r}... is {len(key)} characters long; the limit is 253"
    if not _CONFIG_KEY.fullmatch(key) or key in (".", "..") or key.startswith(".."):
        return (
            f"{what} {key!r} is not a valid Secret key: use letters, digits, '-', '_' or '.', "
            "not '.' or '..' or starting with '..' (e.g. 'token')"
        )
    return None


def label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if not name or len(name) > LABEL_MAX or not _LABEL_NAME.fullmatch(name):
        return (
            f"label key {key!r} is invalid: its name part must be 1-63 characters of "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        return f"label key {key!r} has an invalid prefix: it must be a DNS subdomain"
    return None


def label_value_problem(key: str, value: str) -> str | None:
    if len(value) > LABEL_MAX or not _LABEL_NAME.fullmatch(value):
        return (
            f"label {key}={value!r} has an invalid value: at most 63 characters of letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    return None


def resource_name_problem(value: str) -> str | None:
    """Why ``value`` is not a valid extended resource name (e.g. ``nvidia.com/gpu``)."""
    if not _RESOURCE_NAME.fullmatch(value) or len(value) > 253:
        return (
            f"resource name {value!r} is invalid: use a qualified name such as "
            "'nvidia.com/gpu' or 'amd.com/gpu'"
        )
    return None


def env_name_problem(value: str) -> str | None:
    if not _ENV_NAME.fullmatch(value):
        return (
            f"environment variable name {value!r} is invalid: use letters, digits, '_', '-' "
            "or '.', not starting with a digit"
        )
    return None


def workload_name(model: str, version: str) -> str:
    """The name of a version's Deployment and Service: ``<model>-<version>``."""
    return f"{model}-{version}"
