"""Email: the outbox writes RFC 5322 files; templates render text and escaped HTML."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

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
