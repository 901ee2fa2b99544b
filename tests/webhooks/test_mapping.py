"""The engine's events -> the public webhook kinds, and the payloads (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.models import Phase
from controlplane.webhooks import payloads, signing
from controlplane.webhooks.schemas import WebhookEvent
from controlplane.webhooks.service import event_for

P = Phase
E = WebhookEvent


@pytest.mark.parametrize(
    ("before", "after", "kind", "steps", "expected"),
    [
        (P.PENDING, P.PROGRESSING, "transition", (0, 0), E.STARTED),
        (P.PROGRESSING, P.PROGRESSING, "step", (0, 1), E.STEP_PASSED),
        (P.PROGRESSING, P.PROGRESSING, "drift", (1, 1), E.DRIFT),
        (P.ROLLING_BACK, P.ROLLING_BACK, "step", (1, 1), None),
        (P.PROGRESSING, P.PROGRESSING, "step", (1, 1), None),  # part of the way to a weight
        (P.PROGRESSING, P.PROGRESSING, "step", (None, None), E.STEP_PASSED),
        (P.PROGRESSING, P.PAUSED, "transition", (1, 1), E.PAUSED),
        (P.PAUSED, P.PROGRESSING, "transition", (1, 1), None),  # resumed: not announced
        (P.PROGRESSING, P.PROMOTING, "transition", (3, 4), None),
        (P.PROMOTING, P.SUCCEEDED, "transition", (4, 4), E.PROMOTED),
        (P.PROGRESSING, P.ROLLING_BACK, "transition", (1, 1), None),
        (P.ROLLING_BACK, P.ROLLED_BACK, "transition", (1, 1), E.ROLLED_BACK),
        (P.ROLLING_BACK, P.ABORTED, "transition", (1, 1), E.ROLLED_BACK),
        (P.PROGRESSING, P.PROGRESSING, "measure", (1, 1), None),
        (P.PROGRESSING, P.PROGRESSING, "hold", (1, 1), None),
    ],
)
def test_event_mapping(
    before: Phase,
    after: Phase,
    kind: str,
    steps: tuple[int | None, int | None],
    expected: WebhookEvent | None,
) -> None:
    assert event_for(before, after, kind, step_before=steps[0], step_after=steps[1]) is expected


def test_signature_is_hmac_sha256_of_the_delivery_the_timestamp_and_the_raw_body() -> None:
    import hashlib
    import hmac

    body = signing.body_of({"b": 1, "a": "é"})
    assert body == '{"a":"é","b":1}'.encode()
    sent = 1_800_000_000
    expected = hmac.new(b"s3cret", b"42.1800000000." + body, hashlib.sha256).hexdigest()
    assert signing.sign("s3cret", body, sent, "42") == f"sha256={expected}"
    signature, stamp = f"sha256={expected}", str(sent)

    def verify(*, key: str = "s3cret", **changes: Any) -> bool:
        given: dict[str, Any] = {"body": body, "signature": signature, "timestamp": stamp}
        given |= {"delivery_id": "42", "now": sent + 10} | changes
        return signing.verify(key, **given)

    assert verify()
    assert not verify(key="other")
    assert not verify(body=body + b" ")
    assert not verify(timestamp=str(sent + 1))  # the timestamp was changed
    assert not verify(delivery_id="43")  # passed off as another delivery
    for missing in ("signature", "timestamp", "delivery_id"):
        assert not verify(**{missing: None})
    # what a sender puts in headers never raises
    for odd in ("-1", "²", "1e9", ""):
        assert not verify(timestamp=odd)
    assert not verify(signature="sha256=é")
    assert not verify(delivery_id="\uff14\uff12")  # full-width digits
    # a replay: the same bytes, later than the tolerance
    assert verify(now=sent + 300)
    assert not verify(now=sent + 301)
    assert not verify(now=sent - 301)


def test_slack_text_is_one_readable_line() -> None:
    document = {
        "event": "rolled_back",
        "message": "rolled_back: analysis failed at 25%\n(1 failed measurements)",
        "rollout": {"id": 12, "model": "chat", "version": "v3", "weight": 0},
    }
    text = payloads.slack_text(document)
    assert text == (
        "chat v3: rolled back (rollout #12, weight 0%) - rolled_back: analysis failed at 25% "
        "(1 failed measurements)"
    )
    long = payloads.slack_text({**document, "message": "x" * 5000})
    assert len(long) == payloads.SLACK_TEXT_MAX
    assert "\n" not in long
