"""Real servers that notifications reach in tests: an HTTP receiver (webhooks, an SMS
gateway) and an SMTP server (aiosmtpd), each recording exactly what it received."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True, slots=True)
class Received:
    """One HTTP request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    status: int  # what the receiver answered


@dataclass
class HttpReceiver:
    """An HTTP server on loopback answering from a script: ``answers`` are (status,
    headers) taken in order, the last one repeating; ``delay_s`` holds each answer back."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=lambda: [(200, {})])
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    def _answer(self) -> tuple[int, dict[str, str]]:
        with self._lock:
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def record(self, request: Received) -> None:
        with self._arrived:
            self.received.append(request)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Received]:
        """The first ``count`` requests; AssertionError naming what came when they do not."""
        with self._arrived:
            done = self._arrived.wait_for(lambda: len(self.received) >= count, timeout_s)
            assert done, f"{self.url} received {len(self.received)} of {count} requests"
            return list(self.received[:count])


def _handler(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            status, headers = receiver._answer()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            receiver.record(
                Received(
                    self.command, self.path, dict(self.headers.items()), body,
                    time.monotonic(), status,
                )
            )  # fmt: skip

        do_POST = do_GET = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: ANN401
            """Quiet."""

    return Handler


@contextmanager
def http_receiver(
    answers: list[tuple[int, dict[str, str]]] | None = None, delay_s: float = 0.0
) -> Iterator[HttpReceiver]:
    """A running HttpReceiver; its ``url`` is where to send."""
    receiver = HttpReceiver(answers or [(200, {})], delay_s)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    """What the SMTP server accepted."""

    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        with self._arrived:
            self.messages.append(
                (str(envelope.mail_from), list(envelope.rcpt_tos), message_from_bytes(content))
            )
            self._arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[tuple[str, list[str], Message]]:
        with self._arrived:
            done = self._arrived.wait_for(lambda: len(self.messages) >= count, timeout_s)
            assert done, f"the SMTP server received {len(self.messages)} of {count} messages"
            return list(self.messages[:count])


@contextmanager
def smtp_server(port: int | None = None) -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on loopback; yields its mailbox and port."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()


def wait_until(check: Callable[[], bool], timeout_s: float = 20.0, what: str = "") -> None:
    """Poll ``check`` until it holds; AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)
