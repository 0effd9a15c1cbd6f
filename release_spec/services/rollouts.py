"""The rollouts the service judges: configuration, looks, verdicts; no web stack here.

`RolloutService` applies each request to the durable `Store` in one transaction and
raises `NotFoundError` (HTTP 404), `ConflictError` (409) or `InvalidError` (422) for requests it
refuses; a refused request changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, TypeVar

from release_spec.services.store import RetryError, RolloutRow, Store, Tx
from release_spec.strategy.judge import ArmCounts, CanaryJudge, JudgeConfig, Verdict

__all__ = [
    "Answer",
    "ConflictError",
    "InvalidError",
    "NoSampleError",
    "NotFoundError",
    "PrometheusArm",
    "PrometheusConfig",
    "RolloutConfig",
    "RolloutService",
    "verdict_body",
    "verdict_json",
]

T = TypeVar("T")


class Answer(NamedTuple):
    """What `RolloutService.look` and `RolloutService.measure` answer."""

    counted: bool  # False: a retried look_id, or a window another replica measured
    body: str  # the response's JSON text
    decision: str | None  # the new decision when counted, else None
    no_sample: bool = False  # not counted: Prometheus had no sample for the window


# Compact JSON for stored state and response bodies (fewer bytes written per look).
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class NotFoundError(Exception):
    """No rollout with that id."""


class ConflictError(Exception):
    """The request contradicts the rollout's history (a reused look_id, a closed rollout...)."""


class NoSampleError(Exception):
    """Prometheus had no sample for a counter over the window: no look can be counted yet."""


class InvalidError(ValueError):
    """A request body that is well-formed JSON but not a valid rollout or look."""


@dataclass(frozen=True)
class PrometheusArm:
    """PromQL for one arm's counters (see `RolloutConfig`)."""

    requests: str
    errors: str
    slow: str | None = None


@dataclass(frozen=True)
class PrometheusConfig:
    """Where and how `POST /measure` reads counts."""

    url: str
    canary: PrometheusArm
    baseline: PrometheusArm
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class RolloutConfig:
    """A rollout's settings: what the judge guarantees, and where counts come from.

    Args:
        judge: the judge's settings (alpha, margins, minimum canary requests).
        slo_seconds: the latency SLO that defines a slow request (recorded; the slow
            counters' PromQL or the caller applies it).
        prometheus: where `POST /measure` reads counts, if anywhere.
    """

    judge: JudgeConfig
    slo_seconds: float | None = None
    prometheus: PrometheusConfig | None = None

    def judge_json(self) -> str:
        """Canonical JSON of everything that changes what a look means."""
        j = self.judge
        return json.dumps(
            {
                "alpha": j.alpha,
                "margin": j.margin,
                "slow_margin": j.slow_margin,
                "min_canary_requests": j.min_canary_requests,
                "slo_seconds": self.slo_seconds,
            },
            sort_keys=True,
        )

    def source_json(self) -> str | None:
        """Canonical JSON of the Prometheus source, or None."""
        return (
            None if self.prometheus is None else json.dumps(asdict(self.prometheus), sort_keys=True)
        )

    @staticmethod
    def from_json(judge_json: str, source_json: str | None) -> RolloutConfig:
        """Inverse of `judge_json` and `source_json`."""
        j = json.loads(judge_json)
        slo = j.pop("slo_seconds")
        prometheus = None
        if source_json is not None:
            s = json.loads(source_json)
            prometheus = PrometheusConfig(
                url=s["url"],
                canary=PrometheusArm(**s["canary"]),
                baseline=PrometheusArm(**s["baseline"]),
                timeout_seconds=s["timeout_seconds"],
            )
        return RolloutConfig(JudgeConfig(**j), slo, prometheus)


def verdict_body(rollout_id: str, verdict: Verdict, *, closed: bool) -> dict[str, Any]:
    """The JSON body of ``GET /v1/rollouts/{id}``, parsed (`verdict_json` writes it).

    Examples:
        >>> body = verdict_body("r1", CanaryJudge(JudgeConfig()).verdict, closed=False)
        >>> body["decision"], body["bounds"], body["looks"]
        ('continue', [-1.0, 1.0], 0)
    """
    body: dict[str, Any] = json.loads(verdict_json(rollout_id, verdict, closed=closed))
    return body


def verdict_json(rollout_id: str, verdict: Verdict, *, closed: bool) -> str:
    """The JSON text of ``GET /v1/rollouts/{id}``: the verdict, compact.

    Every look writes one, so it is formatted directly rather than through a dict and
    the JSON encoder; the text is what ``_dumps`` writes for the same values (strings
    ASCII-escaped, floats as ``repr``, keys in this order).

    Examples:
        >>> print(verdict_json("r1", CanaryJudge(JudgeConfig()).verdict, closed=False)[:60])
        {"rollout":"r1","decision":"continue","p_value":1.0,"bounds"
    """
    metrics = ",".join(
        f'{{"name":{_string(m.name)},"p_value":{_float(m.p_value)},'
        f'"bounds":[{_float(m.bounds.low)},{_float(m.bounds.high)}],'
        f'"decision":{_string(m.decision)}}}'
        for m in verdict.metrics
    )
    v = verdict
    return (
        f'{{"rollout":{_string(rollout_id)},"decision":{_string(v.decision)},'
        f'"p_value":{_float(v.p_value)},"bounds":[{_float(v.bounds.low)},{_float(v.bounds.high)}],'
        f'"looks":{int.__repr__(v.looks)},"canary_requests":{int.__repr__(v.canary_requests)},'
        f'"baseline_requests":{int.__repr__(v.baseline_requests)},"reason":{_string(v.reason)},'
        f'"closed":{"true" if closed else "false"},"metrics":[{metrics}]}}'
    )


#: A string as ``_dumps`` writes it (JSON, non-ASCII escaped).
_string = json.encoder.encode_basestring_ascii


def _float(x: float) -> str:
    """A float as ``_dumps`` writes it: ``repr``, or NaN/Infinity/-Infinity."""
    return float.__repr__(x) if math.isfinite(x) else _dumps(float(x))


def _counts_json(canary: ArmCounts, baseline: ArmCounts) -> str:
    c, b = canary, baseline
    return (
        f'[{{"requests":{c.requests},"errors":{c.errors},"slow":{c.slow}}},'
        f'{{"requests":{b.requests},"errors":{b.errors},"slow":{b.slow}}}]'
    )


class RolloutService:
    """Every operation of the HTTP API on a `Store`, one transaction each.

    The judge of a rollout is rebuilt from its stored state only when that state is
    not the one this process wrote last (another replica counted a look meanwhile):
    the cache is keyed by the state text itself, so it can never be stale.

    Args:
        store: where rollouts live.
        clock: seconds since the epoch (tests pass a fake one).
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._judges: dict[str, tuple[str, CanaryJudge]] = {}
        self._configs: dict[tuple[str, str | None], RolloutConfig] = {}

    # ------------------------------------------------------------------ helpers

    def _retrying(self, op: Callable[[Tx], T]) -> T:
        for _ in range(3):
            try:
                with self.store.transaction() as tx:
                    return op(tx)
            except RetryError:
                continue
        raise ConflictError("the rollout was being created concurrently; retry")

    def _read(self, rollout_id: str) -> RolloutRow:
        """The rollout as last committed; `NotFoundError` if there is none."""
        row = self.store.read(rollout_id)
        if row is None:
            raise NotFoundError(rollout_id)
        return row

    def _config(self, row: RolloutRow) -> RolloutConfig:
        key = (row.config, row.source)
        cfg = self._configs.get(key)
        if cfg is None:
            cfg = RolloutConfig.from_json(row.config, row.source)
            if len(self._configs) > 10_000:
                self._configs.clear()
            self._configs[key] = cfg
        return cfg

    def _judge(self, row: RolloutRow, cfg: RolloutConfig) -> CanaryJudge:
        # Popped, not read: the judge is about to change, and must not stay filed under
        # the old state's text; `_look` files it under the new one once it is written.
        cached = self._judges.pop(row.id, None)
        if cached is not None and cached[0] == row.state:
            config = cached[1].config
            if config is cfg.judge or config == cfg.judge:
                return cached[1]
        return CanaryJudge.from_state(cfg.judge, json.loads(row.state))

    # ------------------------------------------------------------------ operations

    def put(self, rollout_id: str, cfg: RolloutConfig) -> tuple[bool, str]:
        """Create or reconfigure a rollout; ``(created, body)``.

        Raises:
            ConflictError: the rollout is closed, or it has counted looks and the new judge
                settings differ (the Prometheus source may always change).
        """

        def op(tx: Tx) -> tuple[bool, str]:
            row = tx.get(rollout_id)
            judge_json, source_json = cfg.judge_json(), cfg.source_json()
            if row is None:
                judge = CanaryJudge(cfg.judge)
                body = verdict_json(rollout_id, judge.verdict, closed=False)
                new = RolloutRow(
                    rollout_id,
                    judge_json,
                    source_json,
                    _dumps(judge.state()),
                    body,
                    0,
                    False,
                    self.clock(),
                )
                tx.insert(new)
                return True, body
            if row.closed:
                raise ConflictError(f"rollout {rollout_id!r} is closed")
            if row.config == judge_json:
                if row.source != source_json:
                    tx.update(_replace(row, source=source_json))
                return False, row.verdict
            if row.looks:
                raise ConflictError(
                    f"rollout {rollout_id!r} has counted {row.looks} looks: its alpha, margins, "
                    "metrics and SLO can no longer change (close it and start a new rollout)"
                )
            judge = CanaryJudge(cfg.judge)
            body = verdict_json(rollout_id, judge.verdict, closed=False)
            tx.update(
                _replace(
                    row,
                    config=judge_json,
                    source=source_json,
                    state=_dumps(judge.state()),
                    verdict=body,
                )
            )
            return False, body

        return self._retrying(op)

    def get(self, rollout_id: str) -> str:
        """The latest verdict's body (JSON text).

        Raises:
            NotFoundError: no such rollout.
        """
        return self._read(rollout_id).verdict

    def config(self, rollout_id: str) -> RolloutConfig:
        """A rollout's configuration.

        Raises:
            NotFoundError: no such rollout.
        """
        return self._config(self._read(rollout_id))

    def delete(self, rollout_id: str) -> str:
        """Close a rollout (idempotent); its verdict stays readable, looks are refused.

        Raises:
            NotFoundError: no such rollout.
        """

        def op(tx: Tx) -> str:
            row = tx.get(rollout_id)
            if row is None:
                raise NotFoundError(rollout_id)
            if row.closed:
                return row.verdict
            body = json.loads(row.verdict)
            body["closed"] = True
            text = _dumps(body)
            tx.update(_replace(row, closed=True, verdict=text))
            return text

        return self._retrying(op)

    def look(
        self,
        rollout_id: str,
        look_id: str,
        canary: ArmCounts,
        baseline: ArmCounts,
        *,
        window: tuple[float, float] | None = None,
    ) -> Answer:
        """Count one look, once per ``look_id``; ``(counted, body, decision)``.

        A retry with the same ``look_id`` and counts returns the first answer and
        counts nothing. With ``window = (start, end)`` (a Prometheus measurement) the
        look counts only if the rollout's window still starts at ``start``; otherwise
        another replica measured it first and the current verdict is returned.

        Raises:
            NotFoundError: no such rollout.
            ConflictError: the rollout is closed, or ``look_id`` was counted with other counts.
        """
        return self._retrying(
            lambda tx: self._look(tx, rollout_id, look_id, canary, baseline, window)
        )

    def look_many(
        self, looks: Sequence[tuple[str, str, ArmCounts, ArmCounts]]
    ) -> list[Answer | Exception]:
        """Count several looks ``(rollout_id, look_id, canary, baseline)`` in one transaction.

        A group commit: each look is applied in order exactly as `look` applies it
        (a later look of the same rollout sees the earlier one), and one commit makes
        them all durable before any is answered. A refused look comes back as its
        `NotFoundError` or `ConflictError` in its place and changes nothing; the others
        still count. Should the transaction itself fail, each look runs again in a
        transaction of its own, so one failure stays one look's (returned, like the
        refusals, in its place).
        """
        results: list[Answer | Exception] = []
        try:
            with self.store.transaction() as tx:
                for rollout_id, look_id, canary, baseline in looks:
                    try:
                        results.append(self._look(tx, rollout_id, look_id, canary, baseline))
                    except (NotFoundError, ConflictError) as e:
                        results.append(e)  # raised before the look wrote anything
        except Exception:
            results = []
            for rollout_id, look_id, canary, baseline in looks:
                try:
                    results.append(self.look(rollout_id, look_id, canary, baseline))
                except Exception as e:  # the caller answers each look on its own
                    results.append(e)
        return results

    def _look(
        self,
        tx: Tx,
        rollout_id: str,
        look_id: str,
        canary: ArmCounts,
        baseline: ArmCounts,
        window: tuple[float, float] | None = None,
    ) -> Answer:
        counts = _counts_json(canary, baseline)
        row, seen = tx.get_with_look(rollout_id, look_id)
        if row is None:
            raise NotFoundError(rollout_id)
        if seen is not None:
            if seen[0] != counts:
                raise ConflictError(
                    f"look_id {look_id!r} was already counted with other counts: {seen[0]}"
                )
            return Answer(False, seen[1], None)
        if row.closed:
            raise ConflictError(f"rollout {rollout_id!r} is closed")
        if window is not None and row.measured_at != window[0]:
            return Answer(False, row.verdict, None)
        cfg = self._config(row)
        judge = self._judge(row, cfg)
        verdict = judge.update(canary, baseline)
        text = verdict_json(rollout_id, verdict, closed=False)
        state = _dumps(judge.state())
        # {"look_id": ..., **body} without encoding the body twice.
        response = f'{{"look_id":{_string(look_id)},{text[1:]}'
        measured_at = row.measured_at if window is None else window[1]
        tx.record_look(
            rollout_id, look_id, counts, response, (state, text, verdict.looks, measured_at)
        )
        # Cached under the new state's text before the commit: the entry matches a row
        # only once that text is committed. Should the transaction roll back, the row
        # keeps the old text and the next look rebuilds the judge from it.
        if len(self._judges) > 10_000:
            self._judges.clear()
        self._judges[rollout_id] = (state, judge)
        return Answer(True, response, verdict.decision)

    def measure(
        self,
        rollout_id: str,
        fetch: Callable[[PrometheusConfig, float, float], tuple[ArmCounts, ArmCounts]],
        *,
        create: RolloutConfig | None = None,
    ) -> Answer:
        """Take a look from Prometheus over the window since the previous one.

        Args:
            rollout_id: the rollout.
            fetch: reads ``(canary, baseline)`` counts for ``(source, start, end)``.
            create: settings to create the rollout with if it does not exist (and to
                check against, as `put` does, if it does).

        When Prometheus has no sample for a counter over the window (`NoSampleError`),
        no look is counted and the window stays where it is; the answer is the current
        verdict, its reason saying why.

        Raises:
            NotFoundError: no such rollout and nothing to create it from.
            ConflictError: closed, no Prometheus source, or ``create`` contradicts it.
        """
        if create is not None:
            self.put(rollout_id, create)
        row = self._read(rollout_id)
        if row.closed:
            raise ConflictError(f"rollout {rollout_id!r} is closed")
        cfg = self._config(row)
        if cfg.prometheus is None:
            raise ConflictError(f"rollout {rollout_id!r} has no Prometheus source to measure from")
        start, end = row.measured_at, self.clock()
        if not end > start:
            return Answer(False, row.verdict, None)
        try:
            canary, baseline = fetch(cfg.prometheus, start, end)
        except NoSampleError as e:
            # Counting this window as empty would lose its requests for good: the
            # window stays open and the next look covers it.
            body = json.loads(row.verdict)
            body["reason"] = (
                f"{body['reason']} (no look counted now: {e}; the next look covers this window too)"
            )
            return Answer(False, _dumps(body), None, no_sample=True)
        return self.look(rollout_id, f"measure@{start!r}", canary, baseline, window=(start, end))


def _replace(row: RolloutRow, **changes: Any) -> RolloutRow:
    return dataclasses.replace(row, **changes)


def parse_counts(name: str, raw: Mapping[str, Any]) -> ArmCounts:
    """`ArmCounts` from a JSON object; `InvalidError` naming ``name.field``.

    Examples:
        >>> parse_counts("canary", {"requests": 10, "errors": 1})
        ArmCounts(requests=10, errors=1, slow=0)
    """
    try:
        return ArmCounts(raw["requests"], raw["errors"], raw.get("slow", 0))
    except KeyError as e:
        raise InvalidError(f"{name}.{e.args[0]} is required") from None
    except ValueError as e:
        raise InvalidError(f"{name}.{e}") from None


def finite(name: str, value: float) -> float:
    """``value`` if finite, else `InvalidError` naming it."""
    if not math.isfinite(value):
        raise InvalidError(f"{name} must be finite, got {value!r}")
    return value
