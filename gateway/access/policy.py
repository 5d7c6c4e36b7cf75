"""``TokenLimits``: the limit policy class views list, DRF-style (see gateway/access/limits.py for the model)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.access import limits, stores
from gateway.access.addresses import address_of, client_key
from gateway.access.limits import BUDGET, PARALLEL, RPM, TPM, Counter, Limits, Need, Outcome
from gateway.conf import gateway_settings
from gateway.errors import GatewayError
from gateway.routing.registry import Entry

if TYPE_CHECKING:
    from gateway.usage.call import Call
    from providers.base import Usage

logger = logging.getLogger(__name__)

# A request's id in the stores (its slots): unique across processes and instances, cheaper than
# os.urandom per request.
_PROCESS = secrets.token_hex(6) + "-"
_numbers = itertools.count()


@dataclass
class Grant:
    """What a request took: settled once, when it is over."""

    store: limits.Store
    counters: list[Counter]
    holder: str
    need: Need
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


def held_by(request: Any) -> tuple[Limits, ...]:
    """The limits a request falls under: its token's (or the anonymous identity's) and its team's, then
    the token's limits per client address, for this request's address."""
    user = getattr(request, "user", None)
    held = getattr(user, "limits", ())
    per_address = getattr(user, "per_address", None)
    if per_address is None:
        return held
    return (*held, per_address.at(client_key(address_of(request))))


def _unavailable() -> GatewayError:
    return GatewayError(503, "The gateway cannot check this token's limits right now (its limit store is "
                        "unavailable); try again shortly.", "server_error", "limits_unavailable")


class TokenLimits:
    """The limits of the request's token (``request.user``, a ``TokenInfo``; or the anonymous identity),
    of its token's team, and the token's limits per client address (``held_by``).

    Inference views list it in ``limit_classes``. Their pipeline calls ``check`` right after
    routing and before anything is sent upstream — tpm and budgets need the parsed body
    (``max_tokens``) and the routed registry entry (prices, max output tokens), which DRF's
    ``initial()`` does not have yet — and ``settle`` when the request is over, whatever happened.
    DRF and hot views can also list it in ``throttle_classes`` (``allow_request`` /
    ``aallow_request``, ``wait``): there it counts each request against the rpm limits only.

    A token without limits costs nothing here: no store call. One with limits costs one store
    step before the upstream call (``check``) and one after the answer, off the client's path
    (``settle``); the Redis store sends a settlement with a later take, so one call at most.
    """

    clock: ClassVar[Callable[[], float]] = staticmethod(time.time)  # the time source (tests move it)

    def __init__(self) -> None:
        self._wait: float | None = None

    # -- the inference pipeline ------------------------------------------------------------------------
    async def check(self, request: Any, body: dict[str, Any], entry: Entry, generates: bool = True,
                    upstream_models: Sequence[str] = ()) -> Grant | None:
        """Check and take every limit the request falls under, in one atomic store call; raises the 429
        (``LimitExceeded``, with the rate-limit headers) or a 403 for an unpriced model under a budget."""
        held = held_by(request)
        if not held:
            return None
        now = self.clock()
        need = limits.need(held, body, entry, generates, upstream_models)
        found = limits.counters(held, need, now, gateway_settings.LIMITS_PARALLEL_LEASE_SECONDS)
        store = stores.current()
        holder = f"{_PROCESS}{next(_numbers):x}"
        try:
            outcome = await store.take(found, holder, now)
        except Exception as exc:
            if stores.unreachable(exc):  # (GATEWAY_REDIS_FAILURE=closed, or the database store's database away)
                logger.warning("limit store unavailable (%s: %s): 503", type(exc).__name__, exc)
            else:
                logger.exception("limit store failed")
            raise _unavailable() from exc
        headers = limits.rate_headers(found, outcome, now)
        if not outcome.ok:
            assert outcome.refused is not None
            raise limits.refusal(found[outcome.refused], outcome.values[outcome.refused], need, now, headers)
        slots = [counter.key for counter in found if counter.slot]
        if slots:
            stores.leases.hold(store, holder, slots, self.clock)
        return Grant(store, found, holder, need, headers)

    def settle(self, grant: Grant, call: Call, estimate: Callable[[], Usage] | None = None) -> None:
        """Correct the reservation to the call's usage and free its slots, after the answer and batched
        with other requests' settlements (gateway/access/stores.py). The usage is the call's; else
        ``estimate()`` (run in a thread: a stream that failed or lost its client midway, counted by what
        it relayed); else none (a call that failed upstream releases its tokens and cost)."""
        if grant.settled:
            return
        grant.settled = True
        stores.leases.release(grant.holder)
        if not any(counter.kind in (TPM, BUDGET, PARALLEL) for counter in grant.counters):
            return
        if call.usage is None and estimate is not None:
            stores.schedule(self._estimated(grant, call, estimate))
        else:
            stores.settlements.add(grant.store, self.adjustments(grant, call, call.usage), grant.holder)

    async def _estimated(self, grant: Grant, call: Call, estimate: Callable[[], Usage]) -> None:
        try:
            adjustments = self.adjustments(grant, call, await asyncio.to_thread(estimate))
        except Exception:  # keep what was reserved (the worst case), free the slots
            logger.warning("could not estimate a call's usage; its reservation stays", exc_info=True)
            adjustments = [(counter, 0) for counter in grant.counters if counter.kind in (TPM, BUDGET, PARALLEL)]
        stores.settlements.add(grant.store, adjustments, grant.holder)

    @staticmethod
    def adjustments(grant: Grant, call: Call, usage: Usage | None) -> list[tuple[Counter, int]]:
        """Each counter's correction from what was reserved to what the usage took (none: nothing)."""
        tokens = usage.prompt_tokens + usage.completion_tokens if usage is not None else 0
        cost = limits.units(call.entry.cost(usage)) if usage is not None and call.entry is not None else 0
        adjustments = []
        for counter in grant.counters:
            if counter.kind == TPM:
                adjustments.append((counter, tokens - counter.amount))
            elif counter.kind == BUDGET:
                adjustments.append((counter, cost - counter.amount))
            elif counter.kind == PARALLEL:
                adjustments.append((counter, 0))
        return adjustments

    async def headers(self, request: Any) -> dict[str, str]:
        """The rate-limit headers for a response that never reached ``check`` (a 400, 403, 404...): the
        counts as they are, nothing taken. Empty without rpm/tpm limits."""
        held = held_by(request)
        if not any(limits_.rpm is not None or limits_.tpm is not None for limits_ in held):
            return {}
        now = self.clock()
        found = limits.counters(held, Need(0, slot=False), now, 0.0, kinds=(RPM, TPM))
        try:
            values = await stores.current().peek(found, now)
        except Exception as exc:
            logger.warning("limit store failed", exc_info=not stores.unreachable(exc))
            return {}
        return limits.rate_headers(found, Outcome(True, values), now)

    # -- as a throttle class ---------------------------------------------------------------------------
    def _rpm(self, request: Any) -> tuple[list[Counter], float]:
        now = self.clock()
        held = held_by(request)
        return limits.counters(held, Need(slot=False), now, 0.0, kinds=(RPM,)), now

    def _allowed(self, found: list[Counter], outcome: Outcome, now: float) -> bool:
        self._wait = None
        if not outcome.ok:
            assert outcome.refused is not None
            self._wait = (found[outcome.refused].resets_at or now) - now
        return outcome.ok

    def allow_request(self, request: Any, view: Any) -> bool:
        """DRF's throttle entry (sync views run in a thread): one request of each rpm limit."""
        found, now = self._rpm(request)
        if not found:
            return True
        return self._allowed(found, stores.current().take_sync(found, "", now), now)

    async def aallow_request(self, request: Any, view: Any) -> bool:
        """The hot views' throttle entry: the same, on the event loop."""
        found, now = self._rpm(request)
        if not found:
            return True
        return self._allowed(found, await stores.current().take(found, "", now), now)

    def wait(self) -> float | None:
        return self._wait
