"""Who wrote a field of an object: read from its managedFields (server-side apply's record
of which field manager owns which field)."""

from __future__ import annotations

from typing import Any


def owned_by_other_manager(
    obj: dict[str, Any] | None, path: tuple[str, ...], manager: str
) -> str | None:
    """Which other field manager owns ``path`` (e.g. ('spec', 'replicas')), if any."""
    if obj is None:
        return None
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager:
            continue
        if has_path(entry, path):
            return str(entry.get("manager"))
    return None


def has_path(entry: dict[str, Any], path: tuple[str, ...]) -> bool:
    fields = entry.get("fieldsV1") or {}
    for part in path:
        fields = fields.get(f"f:{part}")
        if fields is None:
            return False
    return True


UNRECORDED = "someone else (no field manager recorded: `kubectl scale` leaves none)"


def last_writer(obj: dict[str, Any] | None, path: tuple[str, ...], manager: str) -> str | None:
    """Who other than ``manager`` last set ``path``: the field manager that owns it, or,
    when ``manager`` no longer owns it and nobody is recorded (an update through the scale
    subresource leaves no entry), :data:`UNRECORDED`. None while ``manager`` owns it."""
    if obj is None:
        return None
    other = owned_by_other_manager(obj, path, manager)
    if other is not None:
        return other
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    if not entries:
        return None  # nothing is tracked at all (an old or odd server): say nothing
    ours = [e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"]
    if ours and not any(has_path(e, path) for e in ours):
        return UNRECORDED
    return None
