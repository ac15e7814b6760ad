"""Thresholds on the batches the monitor scored, and telling someone when they are crossed.

Two rules (settings): the batch accuracy fell at least
FORESTOPS_ALERT_ACCURACY_DROP below the champion's evaluation accuracy, and
at least FORESTOPS_ALERT_DRIFT_SHARE of the feature columns drifted.  An
alert always goes to the task log; by mail through Airflow's SMTP provider
when FORESTOPS_ALERT_EMAIL_TO is set, to Slack through Airflow's Slack
provider when FORESTOPS_ALERT_SLACK_CONN_ID names a connection.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from forestops.errors import ConfigurationError
from forestops.settings import Settings

log = logging.getLogger(__name__)

ACCURACY_DROP = "accuracy_drop"
DRIFT = "drift"


@dataclass(frozen=True)
class Alert:
    kind: str
    group_number: int
    batch_number: int
    model_version: str
    value: float
    threshold: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(
    batches: list[dict[str, Any]], baseline_accuracy: float | None, accuracy_drop: float, drift_share: float
) -> list[Alert]:
    found = []
    for batch in batches:
        where = f"group {batch['group_number']} batch {batch['batch_number']} (version {batch['model_version']})"
        if baseline_accuracy is not None and baseline_accuracy - batch["accuracy"] >= accuracy_drop:
            found.append(
                Alert(
                    ACCURACY_DROP,
                    batch["group_number"],
                    batch["batch_number"],
                    batch["model_version"],
                    batch["accuracy"],
                    baseline_accuracy - accuracy_drop,
                    f"{where}: accuracy {batch['accuracy']:.4f} is {baseline_accuracy - batch['accuracy']:.4f} below "
                    f"the champion's evaluation accuracy {baseline_accuracy:.4f} (alert at {accuracy_drop:g})",
                )
            )
        share = batch.get("drift_share")
        columns = ", ".join(batch.get("drifted_columns") or [])
        if share is not None and share >= drift_share:
            found.append(
                Alert(
                    DRIFT,
                    batch["group_number"],
                    batch["batch_number"],
                    batch["model_version"],
                    share,
                    drift_share,
                    f"{where}: {share:.0%} of the feature columns drifted ({columns}; alert at {drift_share:.0%})",
                )
            )
    return found


def summary(alerts: list[dict[str, Any]]) -> str:
    return "; ".join(a["message"] for a in alerts)


def notify(alerts: list[dict[str, Any]], settings: Settings) -> list[str]:
    """Report the alerts: the log always, mail and Slack when configured; returns the channels used."""
    if not alerts:
        log.info("no monitoring threshold crossed")
        return []
    for alert in alerts:
        log.warning("MONITORING ALERT %s: %s", alert["kind"], alert["message"])
    channels = ["log"]
    subject = f"forestops: {len(alerts)} monitoring alert(s)"
    body = "\n".join(a["message"] for a in alerts)
    if settings.alert_email_to:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook() as hook:
            hook.send_email_smtp(to=settings.alert_email_to, subject=subject, html_content=body.replace("\n", "<br>"))
        channels.append("email")
    if settings.alert_slack_conn_id:
        try:
            from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
        except ImportError:
            raise ConfigurationError(
                "FORESTOPS_ALERT_SLACK_CONN_ID is set but apache-airflow-providers-slack is not installed"
            ) from None
        SlackWebhookHook(slack_webhook_conn_id=settings.alert_slack_conn_id).send(text=f"{subject}\n{body}")
        channels.append("slack")
    return channels
