"""Notification rules: analytics events (and ``device.unknown``) → webhooks, Apprise, MQTT.

A rule::

    {"id", "name", "events": ["alarm", "geofence.*", ...], "devices": "<device selector>" (all),
     "filter"?: "<expression over the event>", "enabled": true,
     "targets": [{"type": "webhook", "url", "headers"?, "secret"?, "timeout"?},
                 {"type": "apprise", "url", "template"?, "title"?},
                 {"type": "mqtt", "topic"}]}

Rules live in the store's key-value role (namespace ``notifications``, key = rule id), so every
store keeps them; dead letters too (``notifications.dead``). ``events`` names event types of the
analytics vocabulary (``alarm``, ``ignition.on``, ``geofence.enter``, ``overspeed``,
``trip.start``, ``device.offline`` …), ``prefix.*`` patterns or ``*``, plus ``device.unknown``:
a message from an ident no device has (at most once an hour per ident).

As an after-commit publisher ``committed`` only matches rules and hands each delivery to its
target's bounded set of pending deliveries; nothing waits there. Each target has its own limit
(``notify_queue`` pending, 4 requests at a time), so a slow or dead target fills only its own
slots and never delays ingest or another target. A failed attempt is retried ``notify_retries``
times with exponential backoff (``notify_backoff`` s, doubled each time, at most 10 min); then
the delivery is dead-lettered (``GET /gw/notifications/{sel}/dead-letters``). After 3 failures
in a row a target is left alone for a pause (the backoff, doubling with each further failure):
attempts falling in the pause are not made (``skipped`` in the delivery log), so a dead target
costs a few probes, not a request per event and retry. A refusal that cannot change (HTTP 4xx
other than 408/409/425/429, an invalid Apprise URL) is dead-lettered at once. The same event
(same content, whatever its id) is delivered once per rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sinogate.api.filter import Filter, FilterSyntaxError, wildcard_match
from sinogate.api.selectors import Selector, SelectorError
from sinogate.ingest import Committed
from sinogate.integrations.targets import DeliveryError, Senders, valid_apprise_url
from sinogate.interfaces import TaskRunner
from sinogate.jsonenc import dumps_bytes
from sinogate.store.base import KeyValueStore, StoreError

log = logging.getLogger("sinogate.notifications")

NAMESPACE = "notifications"
DEAD_NAMESPACE = "notifications.dead"
STATE_NAMESPACE = "notifications.state"
UNKNOWN = "device.unknown"
UNKNOWN_INTERVAL = 3600.0  # one device.unknown per ident and hour
MAX_DEAD = 1000
LOG_PER_RULE = 200
SEEN_PER_RULE = 10000
CONCURRENCY = 4  # requests in flight per target
WARN_EVERY = 60.0  # seconds between dead-letter warnings of one target
CIRCUIT = 3  # failures in a row after which a target is left alone for a while (backoff, doubling)
BACKOFF_MAX = 600.0
MASK = "********"
_EVENT_TYPE = re.compile(r"^(\*|[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*(\.\*)?)$")


class RuleError(ValueError):
    """A rule the API refuses; the message says why."""


# --- the rule's shape (validated on every write) -----------------------------------------------------

class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["webhook"]
    url: str = Field(max_length=2048, description="http:// or https:// URL the event JSON is POSTed to")
    headers: dict[str, str] | None = Field(None, description="Extra request headers")
    secret: str | None = Field(None, max_length=512, description="HMAC-SHA256 key of the X-Sinogate-Signature header")
    timeout: float | None = Field(None, gt=0, le=120, description="Request timeout (s), default notify_timeout")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class AppriseTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["apprise"]
    url: str = Field(max_length=2048, description="Any Apprise URL: tgram://, mailto://, ntfy://, json:// …")
    template: str | None = Field(None, max_length=4096, description="Message text with {flat.key} placeholders")
    title: str | None = Field(None, max_length=512, description="Title with placeholders (default 'sinogate: {type}')")
    timeout: float | None = Field(None, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not valid_apprise_url(value):
            raise ValueError("Apprise does not accept this URL")
        return value


class MqttTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["mqtt"]
    topic: str = Field(min_length=1, max_length=1024, description="Topic the event JSON is published to")

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError("a topic to publish to cannot contain wildcards")
        return value


Target = Annotated[WebhookTarget | AppriseTarget | MqttTarget, Field(discriminator="type")]


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256)
    events: list[str] = Field(min_length=1, max_length=64, description="Event types, 'prefix.*' or '*'")
    devices: str = Field("all", max_length=4096, description="Device selector")
    filter: str | None = Field(None, max_length=4096, description="Expression over the event")
    enabled: bool = True
    targets: list[Target] = Field(min_length=1, max_length=16)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        for kind in value:
            if not _EVENT_TYPE.match(kind):
                raise ValueError(f"bad event type {kind!r}")
        return list(dict.fromkeys(value))

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: str) -> str:
        try:
            Selector.parse(value)
        except SelectorError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            try:
                Filter(value)
            except FilterSyntaxError as exc:
                raise ValueError(str(exc)) from exc
        return value or None


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts)


def validate_rule(body: Any) -> dict[str, Any]:
    """The rule as stored (without id), or ``RuleError``."""
    if not isinstance(body, dict):
        raise RuleError("a rule must be a JSON object")
    try:
        return RuleBody.model_validate(body).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise RuleError(_reason(exc)) from exc


def public_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """The API shape: webhook secrets masked."""
    out = dict(rule)
    out["targets"] = [{**t, "secret": MASK} if t.get("secret") else dict(t) for t in rule.get("targets", [])]
    return out


def _public_target(target: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (MASK if k == "secret" else v) for k, v in target.items() if k != "headers"}


# --- compiled rules ----------------------------------------------------------------------------------

@dataclass(eq=False)
class TargetState:
    """Pending deliveries of one target: bounded, and a few requests at a time."""

    rule_id: int
    index: int
    target: dict[str, Any]
    limit: int
    pending: int = 0
    semaphore: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENCY))
    warned: float = float("-inf")  # monotonic time of the last dead-letter warning
    unwarned: int = 0  # dead letters since
    failures: int = 0  # retryable failures in a row
    down_until: float = 0.0  # monotonic time before which no request is made (the target looks dead)
    last_error: str = ""


@dataclass(eq=False)
class Rule:
    data: dict[str, Any]
    selector: Selector
    filter: Filter | None
    targets: list[TargetState]
    seen: OrderedDict[int, float] = field(default_factory=OrderedDict)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_PER_RULE))
    delivered: int = 0
    failed: int = 0
    suppressed: int = 0

    @property
    def id(self) -> int:
        return int(self.data["id"])

    def wants(self, kind: str) -> bool:
        for pattern in self.data["events"]:
            if pattern == "*" or pattern == kind or (pattern.endswith(".*") and kind.startswith(pattern[:-1])):
                return True
        return False


class DeviceDirectory(Protocol):
    def get(self, device_id: int) -> dict[str, Any]: ...


def event_key(event: Mapping[str, Any]) -> int:
    """Duplicate suppression: the event's content without its id (a re-sent message that fires
    the same event again gets a new id, not a new key)."""
    if event.get("type") == UNKNOWN:
        hour = int(float(event.get("timestamp") or 0) // UNKNOWN_INTERVAL)
        return zlib.crc32(f"{UNKNOWN}\0{event.get('protocol.name')}\0{event.get('ident')}\0{hour}".encode())
    return zlib.crc32(dumps_bytes({k: v for k, v in event.items() if k != "id"}))


class NotificationService:
    """After-commit publisher; the rules API's operations; see the module docstring."""

    name = "notifications"

    def __init__(self, store: KeyValueStore, devices: DeviceDirectory, senders: Senders, *, retries: int = 5,
                 backoff: float = 2.0, queue: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.devices = devices
        self.senders = senders
        self.retries = retries
        self.backoff = backoff
        self.queue = queue
        self.clock = clock
        self._rules: dict[int, Rule] = {}
        self._types_wanted = False  # any enabled rule at all
        self._dead: deque[dict[str, Any]] = deque()
        self._next_rule = 1
        self._next_dead = 1
        self._unknown_seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: TaskRunner | None = None
        self._closed = False
        self._lock = asyncio.Lock()  # rule writes
        # counters (metrics), by target type
        self.delivered: dict[str, int] = {}
        self.failed: dict[str, int] = {}  # failed attempts
        self.dead: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.skipped: dict[str, int] = {}  # attempts not made while a target was down
        self.suppressed = 0

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self, runner: TaskRunner) -> None:
        self._runner = runner
        try:
            rules = await self.store.kv_list(NAMESPACE)
            dead = await self.store.kv_list(DEAD_NAMESPACE)
            state = await self.store.kv_get(STATE_NAMESPACE, "next") or {}
        except StoreError as exc:
            log.warning("could not load notification rules: %s", exc)
            return
        for key, value in sorted(rules.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
            if isinstance(value, dict) and key.isdigit():
                self._install({**value, "id": int(key)})
        self._dead.extend(v for _, v in sorted(dead.items()) if isinstance(v, dict))
        self._next_rule = max([int(state.get("rule", 1)), *(r + 1 for r in self._rules)])
        self._next_dead = max([int(state.get("dead", 1)), *(int(d.get("id", 0)) + 1 for d in self._dead)])

    async def reload(self) -> None:
        """Reads the rules again (another node of a cluster changed them): new and changed rules
        are installed (keeping their history), removed ones dropped."""
        try:
            rules = await self.store.kv_list(NAMESPACE)
        except StoreError as exc:
            log.warning("could not reload notification rules: %s", exc)
            return
        async with self._lock:
            stored = {int(key): value for key, value in rules.items() if key.isdigit() and isinstance(value, dict)}
            for rule_id in set(self._rules) - set(stored):
                self._rules.pop(rule_id, None)
            for rule_id, value in sorted(stored.items()):
                old = self._rules.get(rule_id)
                if old is None or old.data != {**value, "id": rule_id}:
                    self._install({**value, "id": rule_id})
            self._types_wanted = any(r.data.get("enabled", True) for r in self._rules.values())
            self._next_rule = max([self._next_rule, *(r + 1 for r in self._rules)])

    async def stop(self) -> None:
        """Cancels pending deliveries (dead-lettered as not delivered) and closes the HTTP client."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if tasks:
            log.warning("%d notification deliveries were still pending at shutdown: dead-lettered", len(tasks))
        await self.senders.close()

    @property
    def depth(self) -> int:
        return sum(t.pending for r in self._rules.values() for t in r.targets)

    # -- rules ----------------------------------------------------------------------------------
    def _install(self, data: dict[str, Any]) -> Rule:
        selector = Selector.parse(data.get("devices") or "all")
        expression = Filter(data["filter"]) if data.get("filter") else None
        old = self._rules.get(int(data["id"]))
        targets = [TargetState(int(data["id"]), i, dict(t), self.queue) for i, t in enumerate(data["targets"])]
        rule = Rule(data, selector, expression, targets)
        if old is not None:  # keep the history and what was already delivered
            rule.seen, rule.log = old.seen, old.log
            rule.delivered, rule.failed, rule.suppressed = old.delivered, old.failed, old.suppressed
            for new, prev in zip(rule.targets, old.targets, strict=False):
                if new.target == prev.target:
                    new.pending, new.semaphore = prev.pending, prev.semaphore
                    new.failures, new.down_until, new.last_error = prev.failures, prev.down_until, prev.last_error
        self._rules[rule.id] = rule
        self._types_wanted = any(r.data.get("enabled", True) for r in self._rules.values())
        return rule

    def rules(self) -> list[dict[str, Any]]:
        return [public_rule(r.data) for _, r in sorted(self._rules.items())]

    def find(self, selector: str) -> list[dict[str, Any]]:
        return [public_rule(r.data) for r in self.select(selector)]

    def select(self, selector: str) -> list[Rule]:
        """``all``, ids ``1,2``, or ``name=<pattern>`` (``*``/``?`` wildcards)."""
        text = (selector or "").strip()
        rules = [r for _, r in sorted(self._rules.items())]
        if text == "all":
            return rules
        parts = [p.strip() for p in text.split(",")]
        if parts and all(p.isdigit() for p in parts):
            wanted = [int(p) for p in parts]
            missing = [i for i in wanted if i not in self._rules]
            if missing:
                raise LookupError(f"notification rule {missing[0]} not found")
            return [self._rules[i] for i in dict.fromkeys(wanted)]
        name, eq, pattern = text.partition("=")
        if eq and name.strip() == "name":
            return [r for r in rules if wildcard_match(pattern.strip(), str(r.data.get("name", "")))]
        raise RuleError(f"bad selector {selector!r}: expected 'all', ids or name=<pattern>")

    async def _save_next(self) -> None:
        await self.store.kv_set(STATE_NAMESPACE, "next", {"rule": self._next_rule, "dead": self._next_dead})

    async def create(self, bodies: list[Any]) -> list[dict[str, Any]]:
        validated = [validate_rule(b) for b in bodies]
        out = []
        async with self._lock:
            for data in validated:
                rule_id = self._next_rule
                self._next_rule += 1
                await self._save_next()
                data = {"id": rule_id, **data}
                await self.store.kv_set(NAMESPACE, str(rule_id), data)
                out.append(public_rule(self._install(data).data))
        return out

    async def update(self, selector: str, changes: Any) -> list[dict[str, Any]]:
        if not isinstance(changes, dict):
            raise RuleError("the body must be a JSON object of the fields to change")
        if "id" in changes:
            raise RuleError("a rule's id cannot change")
        out = []
        async with self._lock:
            for rule in self.select(selector):
                merged = {k: v for k, v in rule.data.items() if k != "id"}
                merged.update(changes)
                if "targets" in changes and isinstance(changes["targets"], list):
                    # A masked secret sent back unchanged keeps the stored one.
                    old_targets = rule.data.get("targets", [])
                    merged["targets"] = [
                        {**t, "secret": old_targets[i].get("secret")}
                        if isinstance(t, dict) and t.get("secret") == MASK and i < len(old_targets) else t
                        for i, t in enumerate(changes["targets"])
                    ]
                data = {"id": rule.id, **validate_rule(merged)}
                await self.store.kv_set(NAMESPACE, str(rule.id), data)
                out.append(public_rule(self._install(data).data))
        return out

    async def delete(self, selector: str) -> list[dict[str, Any]]:
        out = []
        async with self._lock:
            for rule in self.select(selector):
                await self.store.kv_delete(NAMESPACE, str(rule.id))
                self._rules.pop(rule.id, None)
                out.append(public_rule(rule.data))
            self._types_wanted = any(r.data.get("enabled", True) for r in self._rules.values())
        return out

    def deliveries(self, selector: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rule in self.select(selector):
            out.extend(dict(entry) for entry in rule.log)
        out.sort(key=lambda e: (e["timestamp"], e["rule.id"]))
        return out

    def dead_letters(self, selector: str) -> list[dict[str, Any]]:
        if selector.strip() == "all":
            return [dict(d) for d in self._dead]
        ids = {r.id for r in self.select(selector)}
        return [dict(d) for d in self._dead if d.get("rule.id") in ids]

    async def clear_dead_letters(self, selector: str) -> list[dict[str, Any]]:
        doomed = self.dead_letters(selector)
        ids = {d["id"] for d in doomed}
        self._dead = deque(d for d in self._dead if d["id"] not in ids)
        for entry in doomed:
            await self.store.kv_delete(DEAD_NAMESPACE, _dead_key(entry["id"]))
        if doomed:
            await self._save_next()  # the ids of what was cleared are never given again
        return doomed

    async def retry_dead_letters(self, selector: str) -> list[dict[str, Any]]:
        """Delivers dead letters again (to their rule's current target); they leave the list."""
        retried = []
        for entry in await self.clear_dead_letters(selector):
            rule = self._rules.get(int(entry.get("rule.id") or 0))
            index = int(entry.get("target.index") or 0)
            if rule is None or index >= len(rule.targets):
                continue
            target = rule.targets[index]
            target.failures, target.down_until = 0, 0.0  # asked for: try the target now
            self._enqueue(rule, target, entry["event"])
            retried.append(entry)
        return retried

    # -- phase 2 --------------------------------------------------------------------------------
    def committed(self, batch: Committed) -> None:
        if not self._types_wanted or self._closed:
            return
        events = batch.events
        if batch.device is None and batch.ident and batch.messages:
            unknown = self._unknown(batch)
            if unknown is not None:
                events = [*events, unknown]
        for event in events:
            kind = str(event.get("type") or "")
            device = batch.device
            device_id = event.get("device.id")
            if device_id is not None and (device is None or device.get("id") != device_id):
                try:
                    device = self.devices.get(int(device_id))
                except (StoreError, ValueError):
                    device = None
            for rule in self._rules.values():
                if rule.data.get("enabled", True) and rule.wants(kind):
                    self._match(rule, event, device)

    def _unknown(self, batch: Committed) -> dict[str, Any] | None:
        key = (batch.source.protocol, str(batch.ident))
        last = self._unknown_seen.get(key)
        if last is not None and batch.now - last < UNKNOWN_INTERVAL:
            return None
        self._unknown_seen[key] = batch.now
        self._unknown_seen.move_to_end(key)
        while len(self._unknown_seen) > SEEN_PER_RULE:
            self._unknown_seen.popitem(last=False)
        first = batch.messages[0]
        event: dict[str, Any] = {
            "device.id": None, "ident": batch.ident, "timestamp": batch.now, "type": UNKNOWN,
            "protocol.name": batch.source.protocol, "channel.id": batch.source.channel_id, "peer": batch.source.peer,
        }
        if first.get("position.latitude") is not None and first.get("position.longitude") is not None:
            event["position.latitude"] = first["position.latitude"]
            event["position.longitude"] = first["position.longitude"]
        return event

    def _match(self, rule: Rule, event: Mapping[str, Any], device: Mapping[str, Any] | None) -> None:
        if device is None:
            if not rule.selector.matches_all:
                return
        elif not rule.selector.matches(dict(device)):
            return
        payload = {**event, "rule.id": rule.id, "rule.name": rule.data.get("name")}
        if device is not None:
            payload.setdefault("device.name", device.get("name"))
            payload.setdefault("device.id", device.get("id"))
            payload.setdefault("ident", device.get("ident"))
        else:
            payload.setdefault("device.name", f"unknown {event.get('ident')}")
        if rule.filter is not None and not rule.filter.matches(payload):
            return
        key = event_key(event)
        if key in rule.seen:
            rule.suppressed += 1
            self.suppressed += 1
            return
        rule.seen[key] = self.clock()
        while len(rule.seen) > SEEN_PER_RULE:
            rule.seen.popitem(last=False)
        for target in rule.targets:
            self._enqueue(rule, target, payload)

    def _enqueue(self, rule: Rule, target: TargetState, payload: dict[str, Any]) -> None:
        kind = target.target["type"]
        entry: dict[str, Any] = {
            "id": uuid.uuid4().hex, "rule.id": rule.id, "target.index": target.index, "target.type": kind,
            "event.type": payload.get("type"), "event.id": payload.get("id"), "device.id": payload.get("device.id"),
            "status": "queued", "attempts": 0, "timestamp": self.clock(), "error": None, "response": None,
        }
        rule.log.append(entry)
        if target.pending >= target.limit or self._runner is None or self._closed:
            entry["status"] = "dropped"
            entry["error"] = f"{target.pending} deliveries already pending for this target"
            self.dropped[kind] = self.dropped.get(kind, 0) + 1
            return
        target.pending += 1
        task = self._runner.spawn(self._deliver(rule, target, payload, entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, rule: Rule, target: TargetState, payload: dict[str, Any], entry: dict[str, Any]) -> None:
        kind = target.target["type"]
        body = dumps_bytes(payload)
        error = "not delivered"
        try:
            for attempt in range(self.retries + 1):
                if attempt:
                    entry["status"] = "retrying"
                    await asyncio.sleep(min(BACKOFF_MAX, self.backoff * 2 ** (attempt - 1)))
                started = time.monotonic()
                try:
                    async with target.semaphore:
                        if target.down_until > time.monotonic():
                            # The target failed its last requests: this attempt is not made (a dead
                            # webhook costs a few probes, not every event's every retry).
                            entry["skipped"] = entry.get("skipped", 0) + 1
                            self.skipped[kind] = self.skipped.get(kind, 0) + 1
                            error = f"not tried: the target failed {target.failures} times in a row " \
                                    f"(last: {target.last_error})"
                            entry["error"] = error
                            continue
                        entry["attempts"] += 1
                        response = await self.senders.send(target.target, body, payload, entry["id"])
                except DeliveryError as exc:
                    error = exc.reason
                    retry = exc.retry
                except Exception as exc:  # a bug in a notifier must not end the retries silently
                    error, retry = f"{type(exc).__name__}: {exc}", True
                else:
                    target.failures, target.down_until = 0, 0.0
                    entry.update(status="delivered", response=response, error=None,
                                 duration=round(time.monotonic() - started, 4))
                    rule.delivered += 1
                    self.delivered[kind] = self.delivered.get(kind, 0) + 1
                    return
                if retry:
                    target.failures += 1
                    target.last_error = error
                    if target.failures >= CIRCUIT:
                        pause = min(BACKOFF_MAX, self.backoff * 2 ** (target.failures - CIRCUIT))
                        target.down_until = time.monotonic() + pause
                entry["error"] = error
                rule.failed += 1
                self.failed[kind] = self.failed.get(kind, 0) + 1
                log.info("notification rule %s target %s (%s): attempt %d failed: %s", rule.id, target.index, kind,
                         attempt + 1, error)
                if not retry:
                    break
        except asyncio.CancelledError:
            error = "server stopped before the delivery succeeded"
            entry["status"] = "failed"
            await asyncio.shield(self._dead_letter(rule, target, payload, entry, error, quiet=True))
            raise
        finally:
            target.pending -= 1
        entry["status"] = "failed"
        await self._dead_letter(rule, target, payload, entry, error)

    async def _dead_letter(self, rule: Rule, target: TargetState, payload: dict[str, Any], entry: dict[str, Any],
                           error: str, quiet: bool = False) -> None:
        kind = target.target["type"]
        self.dead[kind] = self.dead.get(kind, 0) + 1
        record = {
            "id": self._next_dead, "rule.id": rule.id, "rule.name": rule.data.get("name"),
            "target.index": target.index, "target": _public_target(target.target), "event": payload,
            "attempts": entry["attempts"], "error": error, "timestamp": self.clock(), "delivery": entry["id"],
        }
        self._next_dead += 1
        self._dead.append(record)
        now = time.monotonic()
        target.unwarned += 1
        if not quiet and now - target.warned >= WARN_EVERY:  # a dead target under a flood of events: a line a minute
            log.warning("notification rule %s target %s (%s): %d delivery(ies) dead-lettered, the last after %d "
                        "attempt(s): %s", rule.id, target.index, kind, target.unwarned, entry["attempts"], error)
            target.warned, target.unwarned = now, 0
        with contextlib.suppress(StoreError, RuntimeError):
            await self.store.kv_set(DEAD_NAMESPACE, _dead_key(record["id"]), record)
            while len(self._dead) > MAX_DEAD:
                old = self._dead.popleft()
                await self.store.kv_delete(DEAD_NAMESPACE, _dead_key(old["id"]))


def _dead_key(dead_id: int) -> str:
    return f"{int(dead_id):012d}"
