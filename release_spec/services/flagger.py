"""Flagger webhooks: which rollout a payload names and what each hook answers.

Flagger POSTs ``{"name", "namespace", "phase", "checksum", "metadata"}`` and reads any
status above 202 as "no". The rollout is ``metadata["rollout"]`` if given, else
``"{namespace}.{name}.{checksum}"``: Flagger's ``checksum`` names the revision under
analysis, so each revision of a Canary gets a judge of its own and a rejected revision
does not leave the next one rejected (without a checksum: ``"{namespace}.{name}"``).
``metadata["config"]``, a JSON string with the body of ``PUT /v1/rollouts/{id}``,
creates the rollout if it does not exist yet.

| hook | 200 ("go") when | otherwise |
|---|---|---|
| ``confirm-rollout``, ``pre-rollout`` | known, open, not rejected | 404 unknown, 409 |
| ``rollout`` | not rejected (takes a look from Prometheus first, if any) | 409 |
| ``confirm-traffic-increase`` | not rejected | 409 |
| ``confirm-promotion`` | the judge promotes | 409 (Flagger waits) |
| ``rollback`` | the judge rejects: roll back now | 409 (no rollback) |
| ``post-rollout``, ``event`` | always (accepted, nothing judged) | |

Every answer's body is the rollout's verdict plus ``hook`` and ``go`` (true/false).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["HOOKS", "ROLLOUT_ID", "answer", "rollout_id"]

#: What the service accepts as a rollout id (the path segment of ``/v1/rollouts/{id}``).
#: ``\Z``, not ``$``: ``$`` also matches before a final newline, and ``"r1\n"`` is no id.
ROLLOUT_ID = re.compile(r"^[A-Za-z0-9._:~-]{1,200}\Z")

HOOKS = (
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "rollback",
    "post-rollout",
    "event",
)


def rollout_id(
    name: str, namespace: str, metadata: Mapping[str, str], checksum: str | None = None
) -> str:
    """The rollout a payload names: ``metadata["rollout"]``, else one per revision.

    Raises:
        ValueError: an id the service cannot address (see `ROLLOUT_ID`), naming the
            payload field it came from.

    Examples:
        >>> rollout_id("podinfo", "test", {}, "6d4f8b9c7")
        'test.podinfo.6d4f8b9c7'
        >>> rollout_id("podinfo", "test", {"rollout": "r7"}, "6d4f8b9c7")
        'r7'
        >>> rollout_id("podinfo", "test", {})
        'test.podinfo'
    """
    given = metadata.get("rollout")
    if given:
        if not ROLLOUT_ID.match(given):
            raise ValueError(f"metadata.rollout must match {ROLLOUT_ID.pattern}, got {given!r}")
        return given
    rid = f"{namespace}.{name}.{checksum}" if checksum else f"{namespace}.{name}"
    if not ROLLOUT_ID.match(rid):
        raise ValueError(
            f"the rollout id {rid!r} (namespace.name.checksum) does not match "
            f"{ROLLOUT_ID.pattern}; name one in metadata.rollout"
        )
    return rid


def answer(hook: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` for a hook given the rollout's verdict body.

    Examples:
        >>> answer("confirm-promotion", {"decision": "continue", "closed": False})[0]
        409
        >>> answer("rollback", {"decision": "reject", "closed": False})[0]
        200
    """
    decision, closed = body["decision"], bool(body.get("closed"))
    if hook in ("post-rollout", "event"):
        go = True
    elif hook == "rollback":
        go = decision == "reject"
    elif hook == "confirm-promotion":
        go = decision == "promote" and not closed
    else:
        go = decision != "reject" and not closed
    return (200 if go else 409), {**body, "hook": hook, "go": go}
