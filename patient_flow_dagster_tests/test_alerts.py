"""Alerts delivered to real local servers: a failed run gives exactly one e-mail and one webhook
post naming the job, the run, the failed step and a link, with no secret and no patient data."""

import logging

from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context

from patient_flow_dagster.alerting import alert_on_failed_run
from patient_flow_dagster.definitions import build_definitions
from patient_flow_dagster.resources.alerts import Alert, AlertChannels
from patient_flow_dagster_tests.alert_receivers import (
    SMTP_PASSWORD,
    SMTP_USER,
    alert_receivers,
)
from patient_flow_dagster_tests.conftest import project_instance
from patient_flow_dagster_tests.test_databricks import unreachable_workspace

UI = "http://dagster.hospital.example:3000"
RECIPIENTS = "bed-managers@hospital.example, data-team@hospital.example"


def channels(smtp_port: int, webhook: str, **overrides) -> AlertChannels:
    return AlertChannels(
        **{
            "ui_url": UI,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_security": "none",
            "smtp_sender": "patient-flow@hospital.example",
            "smtp_recipients": RECIPIENTS,
            "smtp_user": SMTP_USER,
            "smtp_password": SMTP_PASSWORD,
            "webhook_url": webhook,
            **overrides,
        }
    )


def run_failure(instance: DagsterInstance, run_id: str):
    """The RUN_FAILURE event of a run, as the run-status sensor daemon hands it over."""
    [record] = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records
    return record.event_log_entry.dagster_event


def failed_run(tmp_path, monkeypatch):
    """A real failed run of `patient_flow`: its first step cannot reach the workspace."""
    _, settings = unreachable_workspace(tmp_path, monkeypatch, "dapi-not-a-real-token")
    instance = project_instance(tmp_path / "dagster")
    result = (
        build_definitions(settings)
        .resolve_job_def("patient_flow")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    assert not result.success
    return instance, result


def test_a_failed_run_sends_one_mail_and_one_webhook_post(tmp_path, monkeypatch, caplog):
    instance, result = failed_run(tmp_path, monkeypatch)
    failure = run_failure(instance, result.run_id)
    with alert_receivers() as (received, smtp_port, webhook), caplog.at_level(logging.INFO):
        context = build_run_status_sensor_context(
            sensor_name="alert_on_failed_run",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=failure,
            resources={"alerts": channels(smtp_port, webhook)},
        ).for_run_failure()
        alert_on_failed_run(context)

    [mail] = received.mails
    [post] = received.posts
    assert received.logins == [SMTP_USER]
    assert mail["Subject"] == "[patient-flow ERROR] run of patient_flow failed"
    assert mail["To"] == RECIPIENTS
    body = mail.get_content()
    assert f"run {result.run_id} of patient_flow" in body
    assert "failed steps: bronze_patient_events; errors: WorkspaceUnreachable" in body
    assert f"{UI}/runs/{result.run_id}" in body
    assert post["title"] == "[ERROR] run of patient_flow failed"
    facts = {fact["name"]: fact["value"] for fact in post["sections"][0]["facts"]}
    assert facts == {
        "job": "patient_flow",
        "run": result.run_id,
        "subject": "bronze_patient_events",
        "severity": "ERROR",
    }
    assert post["potentialAction"][0]["targets"][0]["uri"] == f"{UI}/runs/{result.run_id}"
    everything = body + str(post) + caplog.text
    assert SMTP_PASSWORD not in everything and "dapi-not-a-real-token" not in everything


def test_slack_format_and_a_channel_down_does_not_silence_the_other(caplog):
    alert = Alert(
        severity="ERROR",
        title="check valid_age on silver/patient_events failed",
        job="patient_flow",
        run_id="r1",
        subject="silver/patient_events:valid_age",
        details="evaluated 400, failed 120, failed_ratio 0.3",
        link=f"{UI}/runs/r1",
    )
    with alert_receivers() as (received, smtp_port, webhook), caplog.at_level(logging.INFO):
        down = channels(
            smtp_port, webhook, webhook_format="slack", smtp_password="wrong-password"
        )  # the server refuses the login
        assert down.send(alert) == ["webhook"]
    assert received.mails == [] and received.logins == []
    [post] = received.posts
    assert post == {"text": alert.text}
    assert "alert not delivered by email: SMTPAuthenticationError" in caplog.text
    assert "wrong-password" not in caplog.text
