"""The dead-letter admin API: admins list, inspect, replay and discard; users get 403."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from pinelab.clock import now
from pinelab.db import Database
from pinelab.jobs import queue
from pinelab.jobs.models import Job
from pinelab.notify.email import SEND_EMAIL, Email
from tests.waiting import eventually

BASE = "/api/v1/admin/dead-letters"


def _db(app: FastAPI) -> Database:
    database: Database = app.state.db
    return database


async def _dead_email(app: FastAPI, to: str) -> int:
    """Bury a send_email job that failed twice, as a worker of another process would have."""
    moment = now()
    email = Email(to=to, subject="Reset your password", text="https://x/reset?token=secret-1")
    async with _db(app).transaction() as session:
        job = Job(
            **queue.job_values(SEND_EMAIL, email.as_payload(), max_attempts=2)
            | {
                "status": queue.RUNNING,
                "attempts": 2,
                "lease_owner": "other-host",
                "lease_expires_at": moment + timedelta(hours=1),
            }
        )
        session.add(job)
    attempt = queue.Attempt(moment, "SMTPConnectError", "connection refused")
    assert await queue.bury(
        _db(app), job, owner="other-host", error="SMTPConnectError: refused", attempt=attempt
    )
    return job.id


async def _outbox_files(data_dir: Path, to: str) -> list[Path]:
    """Wait for an email to `to` in the outbox (the admin's verification email is there too)."""

    def written() -> list[Path]:
        outbox = data_dir / "outbox"
        files = outbox.glob("*.eml") if outbox.exists() else []
        return [path for path in files if f"\nTo: {to}\n" in path.read_text()]

    return await eventually(written, what=f"an email to {to} in the outbox")


async def test_admin_lists_inspects_and_replays_a_dead_letter_which_then_runs(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    job_id = await _dead_email(app, "someone@example.com")
    listed = await client.get(BASE, headers=admin_headers)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert listed.json()["next_cursor"] is None
    assert (item["job_id"], item["kind"], item["attempts"]) == (job_id, SEND_EMAIL, 2)
    assert item["error_class"] == "SMTPConnectError"
    assert item["payload"]["to"] == "someone@example.com"
    assert "secret-1" not in listed.text  # email bodies may carry links with tokens

    shown = await client.get(f"{BASE}/{item['id']}", headers=admin_headers)
    assert shown.status_code == 200
    [attempt] = shown.json()["job_attempts"]
    assert (attempt["attempt"], attempt["outcome"]) == (2, "dead")
    assert attempt["message"] == "connection refused"

    replayed = await client.post(f"{BASE}/{item['id']}/replay", headers=admin_headers)
    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert body["job_id"] == job_id
    assert body["dead_letter"]["resolution"] == "replayed"
    assert body["dead_letter"]["resolved_by"] is not None
    assert body["dead_letter"]["resolved_at"] is not None

    files = await _outbox_files(app.state.settings.data_dir, "someone@example.com")
    assert len(files) == 1
    assert "secret-1" in files[0].read_text()
    again = await client.post(f"{BASE}/{item['id']}/replay", headers=admin_headers)
    assert again.status_code == 409
    assert again.json()["error"] == "DeadLetterResolved"
    assert (await client.get(BASE, headers=admin_headers)).json()["items"] == []


async def test_admin_discards_and_filters_dead_letters(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    ids = [await _dead_email(app, f"user{n}@example.com") for n in range(3)]
    page = await client.get(BASE, params={"limit": 2}, headers=admin_headers)
    assert len(page.json()["items"]) == 2
    rest = await client.get(
        BASE, params={"limit": 2, "cursor": page.json()["next_cursor"]}, headers=admin_headers
    )
    assert [i["job_id"] for i in page.json()["items"] + rest.json()["items"]] == ids[::-1]

    letter_id = page.json()["items"][0]["id"]
    discarded = await client.post(f"{BASE}/{letter_id}/discard", headers=admin_headers)
    assert discarded.status_code == 200
    assert discarded.json()["resolution"] == "discarded"
    unresolved = await client.get(BASE, headers=admin_headers)
    assert letter_id not in [i["id"] for i in unresolved.json()["items"]]
    everything = await client.get(BASE, params={"unresolved_only": "false"}, headers=admin_headers)
    assert len(everything.json()["items"]) == 3
    other_kind = await client.get(BASE, params={"kind": "execute_signal"}, headers=admin_headers)
    assert other_kind.json()["items"] == []
    missing = await client.post(f"{BASE}/999999/discard", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.json()["error"] == "DeadLetterNotFound"


async def test_dead_letters_are_for_admins_only(
    app: FastAPI, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    await _dead_email(app, "someone@example.com")
    for method, path in [
        ("GET", BASE),
        ("GET", f"{BASE}/1"),
        ("POST", f"{BASE}/1/replay"),
        ("POST", f"{BASE}/1/discard"),
    ]:
        forbidden = await client.request(method, path, headers=auth_headers)
        assert forbidden.status_code == 403, (method, path)
        assert forbidden.json()["error"] == "AuthorizationError"
        anonymous = await client.request(method, path)
        assert anonymous.status_code == 401
