"""Alerts where people look: e-mail over SMTP and an incoming webhook (Teams or Slack).

An alert names the job, the run, the asset or check, the severity and a link to the run (or the
asset) in the UI, and figures only (rows evaluated and failed): never a patient identifier.
A channel that fails to deliver is logged in one line and does not stop the other channel.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage

from dagster import ConfigurableResource, get_dagster_logger

from patient_flow_dagster.variables import resource_field

TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Alert:
    severity: str  # ERROR or WARN
    title: str  # one line: what happened, to what
    job: str | None
    run_id: str | None
    subject: str  # the asset, or the check on its asset
    details: str
    link: str

    @property
    def text(self) -> str:
        run = f"run {self.run_id} of {self.job}" if self.run_id else "no run"
        return (
            f"[{self.severity}] {self.title}\n{self.details}\n"
            f"subject: {self.subject}; {run}\n{self.link}"
        )


class AlertChannels(ConfigurableResource):
    """Where alerts go. Both channels are optional; with neither, alerts are only logged."""

    ui_url: str = resource_field("PATIENT_FLOW_UI_URL")
    smtp_host: str | None = resource_field("PATIENT_FLOW_SMTP_HOST")
    smtp_port: int = resource_field("PATIENT_FLOW_SMTP_PORT", int)
    smtp_security: str = resource_field("PATIENT_FLOW_SMTP_SECURITY")
    smtp_sender: str | None = resource_field("PATIENT_FLOW_SMTP_SENDER")
    smtp_recipients: str | None = resource_field("PATIENT_FLOW_SMTP_RECIPIENTS")
    smtp_user: str | None = resource_field("PATIENT_FLOW_SMTP_USER")
    smtp_password: str | None = resource_field("PATIENT_FLOW_SMTP_PASSWORD")
    webhook_url: str | None = resource_field("PATIENT_FLOW_ALERT_WEBHOOK_URL")
    webhook_format: str = resource_field("PATIENT_FLOW_ALERT_WEBHOOK_FORMAT")

    def run_link(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def asset_link(self, asset_path: str) -> str:
        return f"{self.ui_url.rstrip('/')}/assets/{asset_path}"

    def send(self, alert: Alert) -> list[str]:
        """Deliver to every configured channel; the channels that delivered."""
        log = get_dagster_logger()
        delivered = []
        for name, configured, deliver in (
            ("email", self.smtp_host, self._email),
            ("webhook", self.webhook_url, self._webhook),
        ):
            if not configured:
                continue
            try:
                deliver(alert)
                delivered.append(name)
            except Exception as error:  # one channel down must not silence the other
                log.error(
                    f"alert not delivered by {name}: {type(error).__name__}: "
                    f"{str(error).splitlines()[0][:200] if str(error) else ''}"
                )
        log.info(f"alert [{alert.severity}] {alert.title} -> {', '.join(delivered) or 'log only'}")
        return delivered

    def _email(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = f"[patient-flow {alert.severity}] {alert.title}"
        message["From"] = self.smtp_sender or f"patient-flow@{self.smtp_host}"
        message["To"] = self.smtp_recipients or ""
        message.set_content(alert.text)
        host = self.smtp_host or ""  # set: the channel is on only with a host
        server: smtplib.SMTP
        if self.smtp_security == "ssl":
            server = smtplib.SMTP_SSL(
                host,
                self.smtp_port,
                timeout=TIMEOUT_SECONDS,
                context=ssl.create_default_context(),
            )
        else:
            server = smtplib.SMTP(host, self.smtp_port, timeout=TIMEOUT_SECONDS)
        with server:
            if self.smtp_security == "starttls":
                server.starttls(context=ssl.create_default_context())
            if self.smtp_user:
                server.login(self.smtp_user, self.smtp_password or "")
            server.send_message(message)

    def _webhook(self, alert: Alert) -> None:
        payload: dict[str, object]
        if self.webhook_format == "slack":
            payload = {"text": alert.text}
        else:  # a Teams incoming webhook's message card
            payload = {
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": alert.title,
                "themeColor": "C50F1F" if alert.severity == "ERROR" else "FFB900",
                "title": f"[{alert.severity}] {alert.title}",
                "sections": [
                    {
                        "text": alert.details,
                        "facts": [
                            {"name": "job", "value": alert.job or "-"},
                            {"name": "run", "value": alert.run_id or "-"},
                            {"name": "subject", "value": alert.subject},
                            {"name": "severity", "value": alert.severity},
                        ],
                    }
                ],
                "potentialAction": [
                    {
                        "@type": "OpenUri",
                        "name": "Open in Dagster",
                        "targets": [{"os": "default", "uri": alert.link}],
                    }
                ],
            }
        request = urllib.request.Request(
            self.webhook_url or "",  # set: the channel is on only with a URL
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
