"""A small local HTTP service for tests: a JSON-answering handler base and a context manager serving it on
loopback. Each test module keeps its own routes and recorded requests in its handler subclass."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON, stays quiet, and tolerates a client that went away (a cancel)."""

    def answer(self, status: int, body: object) -> None:
        """Answer `status` with `body` as JSON."""
        self.answer_raw(status, json.dumps(body).encode())

    def answer_raw(self, status: int, payload: bytes) -> None:
        """Answer `status` with `payload` as it is, labelled JSON (it may deliberately not be)."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client aborted
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def hold(self, release: threading.Event, client_closed: threading.Event, timeout_s: float = 30) -> None:
        """Hold the answer until ``release``, setting ``client_closed`` if the client closes its side first.

        The connection stays open from this side, so only the client's own abort can end its request early."""
        deadline = time.monotonic() + timeout_s
        while not release.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                client_closed.set()
                release.wait(timeout=max(0.0, deadline - time.monotonic()))

    def answer_big(self, size: int) -> None:
        """Answer 200 with ``size`` bytes of body in 64 KiB chunks; stops quietly when the client hangs up."""
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"x" * 65536
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(size // len(chunk)):
                self.wfile.write(chunk)

    def log_message(self, *_args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler_class: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler_class` on a free loopback port in a daemon thread; yield the base URL
    ("http://127.0.0.1:PORT") and shut the server down afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
