"""Flagger webhooks: which rollout a payload names and what each hook answers.

Flagger POSTs ``{"name", "namespace", "phase", "checksum", "metadata"}`` and reads any
status above 202 as "no". The rollout is ``metadata["rollout"]`` if given, else
``"{name}.{namespace}"`` (how Flagger itself names a canary in its logs);
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

from collections.abc import Mapping
from typing import Any

__all__ = ["HOOKS", "answer", "rollout_id"]

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


def rollout_id(name: str, namespace: str, metadata: Mapping[str, str]) -> str:
    """The rollout a payload names.

    Example:
        >>> rollout_id("podinfo", "test", {}), rollout_id("podinfo", "test", {"rollout": "r7"})
        ('podinfo.test', 'r7')
    """
    return metadata.get("rollout") or f"{name}.{namespace}"


def answer(hook: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` for a hook given the rollout's verdict body.

    Example:
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
