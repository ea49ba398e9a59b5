"""Real local receivers for alerts: an SMTP server (aiosmtpd) that requires a login, and an HTTP
server that takes incoming-webhook posts. Each keeps what it received."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from patient_flow_dagster_tests.services import free_port

SMTP_USER, SMTP_PASSWORD = "alerts@hospital.example", "smtp-test-password"


@dataclass
class Received:
    mails: list = field(default_factory=list)  # email.message.EmailMessage
    posts: list = field(default_factory=list)  # parsed JSON bodies
    logins: list = field(default_factory=list)  # user names that logged in


class _Mailbox:
    def __init__(self, received: Received):
        self.received = received

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.received.mails.append(message)
        return "250 Message accepted for delivery"


@contextmanager
def alert_receivers() -> Iterator[tuple[Received, int, str]]:
    """(what arrived, the SMTP port, the webhook URL) while both servers run."""
    received = Received()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == SMTP_USER
            and auth_data.password.decode() == SMTP_PASSWORD
        )
        if ok:
            received.logins.append(SMTP_USER)
        return AuthResult(success=ok, handled=False)

    smtp_port = free_port()
    smtp = Controller(
        _Mailbox(received),
        hostname="127.0.0.1",
        port=smtp_port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.posts.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "1")
            self.end_headers()
            self.wfile.write(b"1")  # what a Teams incoming webhook answers

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    smtp.start()
    thread.start()
    try:
        yield received, smtp_port, f"http://127.0.0.1:{hook.server_address[1]}/webhookb2/alerts"
    finally:
        hook.shutdown()
        hook.server_close()
        smtp.stop()
