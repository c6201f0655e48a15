"""A request's time limits, and noticing a client that left before its (non-streamed) answer.

The whole-request deadline is `[limits] request_timeout_s`, or the client's `x-gearshift-timeout` header
(seconds), which may shorten it and lengthen it up to `[limits] max_request_timeout_s`. Every phase of the
request (policy, retries, failover, cascade rungs) runs inside it, so the retry budget never outlives it.

`answer_within` runs the work of a request (policy, upstream, cascade) while listening for `http.disconnect`:
a client that gave up cancels the work (and with it the upstream call, so no more tokens are paid for), and
the handler records `client_disconnected`. A stream's response listens for itself once it has started.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

from gearshift.errors import InvalidRequestError, RequestTimeoutError
from gearshift.gateway.settings import LimitSettings

TIMEOUT_HEADER = "x-gearshift-timeout"
#: the backstop fires this much after the deadline, so the executor's own, more specific error (which attempt
#: timed out, 504 `upstream_timeout`) wins when the upstream is what took the time
BACKSTOP_SLACK_S = 0.2
T = TypeVar("T")


def request_timeout_s(header: str | None, limits: LimitSettings) -> float:
    """Seconds this request may take in all: the header's value within the configured bound, else the default."""
    if header is None:
        return limits.request_timeout_s
    try:
        value = float(header)
    except ValueError:
        value = math.nan
    ceiling = limits.max_request_timeout_s or limits.request_timeout_s
    if not math.isfinite(value) or value <= 0:
        raise InvalidRequestError(f"{TIMEOUT_HEADER} must be a number of seconds above 0, got {header[:40]!r}",
                                  param=TIMEOUT_HEADER)
    if value > ceiling:
        raise InvalidRequestError(f"{TIMEOUT_HEADER} may be at most {ceiling:g} seconds on this gateway "
                                  "([limits] max_request_timeout_s)", param=TIMEOUT_HEADER)
    return value


class ClientGone(Exception):
    """The client disconnected before its answer started; the work for it was cancelled."""


async def answer_within(receive: Receive, timeout_s: float, work: Coroutine[Any, Any, T]) -> T:
    """`work`'s result, unless the client disconnects first (`ClientGone`) or `timeout_s` passes first
    (`RequestTimeoutError`, 504). Either way, and when this task is itself cancelled (shutdown), `work` is
    cancelled and has ended, its upstream connection closed, before this returns or raises.

    Start it once the request body has been read: it listens on the ASGI `receive` channel meanwhile.
    """
    # asyncio.wait's own machinery, inlined (one waiter future, two done callbacks, one timer): it ran on every
    # request and cost ~2x this
    loop = asyncio.get_running_loop()
    task = loop.create_task(work)
    watcher = loop.create_task(_until_disconnect(receive))
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    watcher.add_done_callback(wake)
    timer = loop.call_later(max(timeout_s, 0.0) + BACKSTOP_SLACK_S, wake)
    done: set[asyncio.Future[Any]] = set()
    try:
        await waiter
        done = {f for f in (task, watcher) if f.done()}
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
        watcher.remove_done_callback(wake)
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task, watcher})  # the work has ended (its upstream connection closed) on return
    if task in done or (task.done() and not task.cancelled()):
        return task.result()
    if watcher in done:
        raise ClientGone
    raise RequestTimeoutError(f"the request did not finish within its deadline of {timeout_s:g}s "
                              f"([limits] request_timeout_s or the {TIMEOUT_HEADER} header)")


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
