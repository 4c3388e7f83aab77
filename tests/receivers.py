"""A real HTTP receiver for webhook tests: a threaded http.server on 127.0.0.1 that records
every request (method, path, headers, body, arrival time) and answers as the test scripts it.

    receiver.script(Answer(500), Answer(200))     # the next requests' answers, in order
    receiver.default = Answer(410)                 # once the script runs out
    receiver.wait_for(2)                           # block until two requests arrived

An Answer can wait before answering (`delay`, cut short by `release()` and at stop), add
headers (Retry-After, Location), or close the connection without answering. It speaks
HTTP/1.1 with keep-alive, as a production receiver behind a proxy would.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait first; release() ends the wait early
    close: bool = False  # drop the connection without an answer
    hang_up: bool = False  # answer, then close the connection without saying so first


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() on arrival
    answered_at: float | None = None

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def signatures(self) -> list[str]:
        return self.headers.get("webhook-signature", "").split()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    receiver: Receiver

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up (a timed-out sender, a killed worker) is expected


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.server.receiver._handle(self)

    do_GET = do_PUT = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver:
    def __init__(self, port: int = 0, host: str = "127.0.0.1"):
        self.host = host
        self._wanted_port = port
        self.requests: list[Received] = []
        self.default = Answer()
        self._script: list[Answer] = []
        self._changed = threading.Condition()
        self._released = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- life ---------------------------------------------------------------------------

    def start(self) -> Receiver:
        self._server = _Server((self.host, self._wanted_port), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    def url(self, path: str = "/hooks") -> str:
        return f"http://{self.host}:{self.port}{path}"

    # --- behaviour ----------------------------------------------------------------------

    def script(self, *answers: Answer) -> None:
        """The answers to the next requests, in order; then `default`."""
        with self._changed:
            self._script.extend(answers)

    def release(self) -> None:
        """End every wait (`delay`) now and later."""
        self._released.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(
                    f"the receiver got {len(self.requests)} requests, not {count}, in {timeout} s"
                )
            return list(self.requests)

    def ids(self) -> list[str | None]:
        return [r.webhook_id for r in self.requests]

    # --- serving ------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        received = Received(
            handler.command,
            handler.path,
            {name.lower(): value for name, value in handler.headers.items()},
            body,
            time.monotonic(),
        )
        with self._changed:
            self.requests.append(received)
            answer = self._script.pop(0) if self._script else self.default
            self._changed.notify_all()
        if answer.delay:
            self._released.wait(answer.delay)
        if answer.close:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        data = answer.body.encode()
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        received.answered_at = time.monotonic()
        if answer.hang_up:
            handler.wfile.flush()
            handler.close_connection = True
