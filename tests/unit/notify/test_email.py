"""Email: the outbox writes RFC 5322 files; templates render text and escaped HTML."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from pinelab.config import Settings
from pinelab.notify.email import (
    Email,
    EmailSender,
    OutboxTransport,
    render_email,
)

NOTICE = Email(
    to="trader@example.com",
    subject="PineLab gave up on work for strategy Momentum",
    text="Hello,\n\nsignal 42 failed.\n",
    html="<p>signal 42 failed.</p>",
)


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, env="test", data_dir=tmp_path, **values)  # type: ignore[call-arg]


def _read(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_without_smtp_host_the_email_is_written_to_the_outbox(tmp_path: Path) -> None:
    sender = EmailSender.from_settings(_settings(tmp_path, smtp_from="PineLab <ops@pinelab.test>"))
    assert isinstance(sender.transport, OutboxTransport)
    await sender.send(NOTICE)
    files = list((tmp_path / "outbox").iterdir())
    assert [f.suffix for f in files] == [".eml"]
    message = _read(files[0])
    assert message["To"] == "trader@example.com"
    assert message["From"] == "PineLab <ops@pinelab.test>"
    assert message["Subject"] == NOTICE.subject
    assert message["Message-ID"].endswith("@pinelab.test>")
    assert message["Date"]
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert text.get_content() == NOTICE.text
    assert "<p>signal 42 failed.</p>" in html.get_content()


def test_dead_letter_template_renders_text_and_escaped_html() -> None:
    rendered = render_email(
        "dead_letter",
        to="trader@example.com",
        subject="s",
        strategy_name="<Momentum>",
        strategy_id=7,
        kind="execute_signal",
        signal_id=42,
        attempts=5,
        error="BrokerUnavailable: 503",
        created_at="2026-01-02 15:30:00 UTC",
        dead_letter_id=3,
        base_url="https://pinelab.example",
    )
    assert 'strategy "<Momentum>" (id 7)' in rendered.text
    assert "execute_signal for signal 42" in rendered.text
    assert "BrokerUnavailable: 503" in rendered.text
    assert rendered.html is not None
    assert "&lt;Momentum&gt;" in rendered.html
    assert "<Momentum>" not in rendered.html


def test_smtp_settings_take_the_seed_names_and_the_earlier_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PINELAB_SMTP_HOST", "mail.example.net")
    monkeypatch.setenv("PINELAB_SMTP_PORT", "2525")
    monkeypatch.setenv("PINELAB_SMTP_USERNAME", "old-user")
    monkeypatch.setenv("PINELAB_SMTP_FROM", "Old <old@example.net>")
    earlier = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert (earlier.smtp_username, earlier.smtp_from) == ("old-user", "Old <old@example.net>")
    monkeypatch.setenv("PINELAB_SMTP_USER", "new-user")
    monkeypatch.setenv("PINELAB_FROM_EMAIL", "PineLab <alerts@example.net>")
    seed = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert (seed.smtp_host, seed.smtp_port) == ("mail.example.net", 2525)
    assert (seed.smtp_username, seed.smtp_from) == ("new-user", "PineLab <alerts@example.net>")


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        ({}, "starttls"),
        ({"smtp_port": 465}, "implicit"),
        ({"smtp_starttls": False}, "none"),
        ({"smtp_tls": "implicit", "smtp_port": 2465}, "implicit"),
        ({"smtp_tls": "starttls", "smtp_port": 465}, "starttls"),
        ({"smtp_tls": "none"}, "none"),
    ],
)
def test_smtp_security_is_starttls_unless_port_465_or_said_otherwise(
    tmp_path: Path, values: dict[str, Any], mode: str
) -> None:
    assert _settings(tmp_path, **values).smtp_tls_mode == mode


@pytest.mark.parametrize("template", ["verify_email", "reset_password"])
def test_account_templates_render_the_link_in_text_and_html(template: str) -> None:
    link = "https://pinelab.example.net/page?token=abc-DEF_123"
    rendered = render_email(
        template,
        to="ana@example.com",
        subject="s",
        link=link,
        token="abc-DEF_123",
        hours=24,
        expires_at="2026-12-08 20:00 UTC",
        ip="203.0.113.7",
        base_url="https://pinelab.example.net",
    )
    assert link in rendered.text
    assert rendered.html is not None
    assert f'href="{link}"' in rendered.html
    assert "24 hours" in rendered.text
