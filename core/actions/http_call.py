"""HTTP plumbing shared by the runners and service clients that speak HTTP (``http``, ``automation``, the
asset service): one request a step can abort (its sockets are shut down, so the peer sees the close at
once), a body held in memory only up to a cap, and retries with backoff for calls that are safe to repeat.

The circuit breaker stays in core/actions/circuit.py; callers decide what counts as a failure of the target.
Must not import the engine or any runner.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from core.actions.context import StepContext

if TYPE_CHECKING:  # imported where a request is made: a worker or a CLI that sends none does not pay for them
    import httpcore
    import httpx

RETRIES = 2
RETRY_BACKOFF_S = 0.2
POLL_S = 0.02  # how often the runner looks at ctx.should_stop() while a request is in flight
MAX_BODY_BYTES = 2 * 1024 * 1024  # of a response body held in memory; the rest is counted, not kept
MAX_DRAIN_BYTES = 64 * 1024 * 1024  # past the cap, read at most this much more before dropping the connection
DROPPED = "opsc_dropped_bytes"  # the response extension send() puts the count of unkept body bytes in

R = TypeVar("R")


class Stopped(Exception):
    """The request was aborted because the step must stop; ``why`` is "cancelled" or "timed out"."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _Sockets:
    """An httpcore network backend (httpcore calls its three methods and checks no type): the blocking one,
    remembering every socket it opens so that a stop can shut them down.

    Closing an httpx client from another thread does not wake a thread blocked in ``recv`` (the connection
    stayed open until the step limit); ``shutdown(SHUT_RDWR)`` does, and the peer sees the close at once.
    """

    def __init__(self) -> None:
        import httpcore

        self._inner = httpcore.SyncBackend()
        self._sockets: list[socket.socket] = []
        self._aborted = False
        self._lock = threading.Lock()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        self._remember(stream)
        return stream

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, timeout, socket_options)
        self._remember(stream)
        return stream

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def _remember(self, stream: httpcore.NetworkStream) -> None:
        sock = stream.get_extra_info("socket")
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            aborted = self._aborted
        if aborted:  # the stop came while this socket was connecting
            self.abort()

    def abort(self) -> None:
        """Shut down every socket opened so far, and any opened later (the blocked reader gets EOF; the peer
        sees the close)."""
        with self._lock:
            self._aborted = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _client(timeout_s: float) -> tuple[httpx.Client, _Sockets]:
    """A one-request client whose connections ``_Sockets.abort`` can cut.

    httpx 0.28 has no public way to choose httpcore's network backend (encode/httpx#3749 adds one), so the
    transport's pool gets it by attribute; without that attribute a stop falls back to closing the client.
    """
    import httpx

    transport = httpx.HTTPTransport()
    sockets = _Sockets()
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = sockets
    return httpx.Client(transport=transport, timeout=max(0.1, timeout_s), follow_redirects=False), sockets


def send(ctx: StepContext, method: str, url: str, *, timeout_s: float, **request: Any) -> httpx.Response:
    """Send one request (``request``: httpx keywords such as ``json``, ``headers``, ``auth``) and return the
    response with at most ``MAX_BODY_BYTES`` of its body read (``dropped_bytes`` says how much more came).

    It runs in a thread so the runner can watch ``ctx``; on a stop the sockets are shut down, which ends the
    request at once on both sides.

    Raises:
        Stopped: cancel, shutdown or the step's deadline came first.
        httpx.HTTPError: the request failed (connection, timeout, protocol).
    """
    client, sockets = _client(timeout_s)
    box: dict[str, Any] = {}

    auth = request.pop("auth", None)  # a send() argument, not part of the request

    def go() -> None:
        try:
            box["response"] = _capped(client, client.build_request(method, url, **request), auth)
        except Exception as exc:  # noqa: BLE001  re-raised in the caller's thread, whatever it is
            box["error"] = exc

    worker = threading.Thread(target=go, daemon=True, name="opsc-http")
    worker.start()
    try:
        while worker.is_alive():
            if ctx.should_stop():
                sockets.abort()
                worker.join(timeout=5)  # returns as soon as the shut-down socket wakes it (at once, normally)
                raise Stopped("cancelled" if ctx.stop.is_set() else "timed out")
            worker.join(timeout=POLL_S)
    finally:
        client.close()
    if "error" in box:
        raise box["error"]
    response: httpx.Response = box["response"]
    return response


def _capped(client: httpx.Client, request: httpx.Request, auth: httpx.Auth | None) -> httpx.Response:
    """Send ``request`` streaming, keep the first ``MAX_BODY_BYTES`` of the body, and count (not hold) the rest."""
    import httpx

    streamed = client.send(request, auth=auth, stream=True)
    kept = bytearray()
    dropped = 0
    try:
        for chunk in streamed.iter_bytes():
            room = max(0, MAX_BODY_BYTES - len(kept))
            kept += chunk[:room]
            dropped += len(chunk) - min(room, len(chunk))
            if dropped > MAX_DRAIN_BYTES:
                break  # stop reading a body that will not end; closing the stream drops the connection
    finally:
        streamed.close()
    return httpx.Response(
        streamed.status_code,
        headers=streamed.headers,
        content=bytes(kept),
        request=request,
        extensions={**streamed.extensions, DROPPED: dropped},
    )


def dropped_bytes(response: httpx.Response) -> int:
    """How many body bytes ``send`` did not keep (0 for a body within ``MAX_BODY_BYTES``)."""
    return int(response.extensions.get(DROPPED, 0))


def with_retries(once: Callable[[], tuple[R, bool]], *, attempts: int, wait: Callable[[float], bool]) -> R | None:
    """Call ``once`` (it returns its result and whether a failure may be retried) up to ``attempts`` times,
    pausing ``RETRY_BACKOFF_S * 2**n`` between tries. Only for calls that are safe to repeat.

    Returns:
        The last result, or None when ``wait`` (given the pause; True = stop) asks to stop.
    """
    result, retryable = once()
    for attempt in range(1, attempts):
        if not retryable:
            break
        if wait(RETRY_BACKOFF_S * 2 ** (attempt - 1)):
            return None
        result, retryable = once()
    return result


def step_wait(ctx: StepContext) -> Callable[[float], bool]:
    """A ``with_retries`` pause for a step: never past its deadline, cut short by a stop request.

    A deadline reached during the pause is left to the next ``send``, which reports it as "timed out".
    """
    return lambda pause_s: ctx.stop.wait(min(pause_s, ctx.remaining_s()))
