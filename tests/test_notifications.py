"""Notifications: the in-app inbox with its unread count, and e-mail through a real SMTP
server the test starts (aiosmtpd), sent only after the change commits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlmodel import select

from access.models import Application
from govshare import notifications
from kernel import db, identity
from kernel.identity import Role
from kernel.settings import get_settings
from tests.conftest import World
from tests.server_support import free_port
from tests.test_quality_support import people, register
from tests.test_web import _filed
from tests.web_support import csrf_of, sign_in


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("GOVSHARE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("GOVSHARE_SMTP_PORT", str(port))
    monkeypatch.setenv("GOVSHARE_PUBLIC_URL", "https://share.example.gov.cn")
    get_settings.cache_clear()
    try:
        yield inbox
    finally:
        controller.stop()


def _wait_for(inbox: Inbox, n: int) -> list[Message]:
    deadline = time.monotonic() + 20
    while len(inbox.messages) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return inbox.messages


def _subject(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def test_approvers_and_requesters_are_told_in_app_and_by_mail(smtp: Inbox, client: TestClient,
                                                              world: World) -> None:
    with db.session_scope() as session:
        identity.get_user(session, "ga-approver").email = "approver@ga.example"
        identity.get_user(session, "scjg-requester").email = "requester@scjg.example"
    _, app_id = _filed(client, world)
    mails = _wait_for(smtp, 1)
    assert [m["To"] for m in mails] == ["approver@ga.example"]
    assert f"新申请 #{app_id}" in _subject(mails[0])
    assert f"https://share.example.gov.cn/applications/{app_id}" in mails[0].get_payload(
        decode=True).decode()
    # In the app: the approver's header counts it, the inbox lists it in Chinese.
    sign_in(client, world.tokens[("GA", Role.approver)])
    page = client.get("/inbox")
    assert 'id="unread-count"' in page.text
    listed = client.get("/notifications")
    assert f"新申请 #{app_id}" in listed.text and f'href="/applications/{app_id}"' in listed.text
    client.post("/notifications/read", data={"csrf_token": csrf_of(listed.text)})
    assert 'id="unread-count"' not in client.get("/inbox").text
    # The approver returns it: the requester is told.
    page = client.get(f"/applications/{app_id}")
    client.post(f"/applications/{app_id}/return", data={
        "csrf_token": csrf_of(page.text), "deficiency": ["purpose_unclear"], "note": "写清楚"})
    mails = _wait_for(smtp, 2)
    assert mails[1]["To"] == "requester@scjg.example" and "退回补正" in _subject(mails[1])
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    assert "被退回补正" in client.get("/notifications").text


def test_a_refused_change_tells_nobody(smtp: Inbox, client: TestClient, world: World) -> None:
    with db.session_scope() as session:
        identity.get_user(session, "ga-approver").email = "approver@ga.example"
    with pytest.raises(RuntimeError), db.session_scope() as session:
        notifications.notify(session, [identity.get_user(session, "ga-approver").id or 0],
                             "filed", {"id": 1, "resource": "x"}, "/applications/1")
        raise RuntimeError("rolled back")
    time.sleep(0.5)
    assert smtp.messages == []
    with db.session_scope(write=False) as session:
        assert notifications.inbox(session, identity.get_user(session, "ga-approver").id or 0) \
            == []


def test_replies_due_soon_and_overdue_are_swept_once_a_day(client: TestClient,
                                                            world: World) -> None:
    _, app_id = _filed(client, world)
    with db.session_scope() as session:
        app = session.get(Application, app_id)
        assert app is not None
        due = app.due_date
        assert due is not None
    with db.session_scope() as session:
        assert notifications.sweep_deadlines(session, today=due - timedelta(days=1)) >= 1
    with db.session_scope() as session:
        assert notifications.sweep_deadlines(session, today=due - timedelta(days=1)) == 0
        late = notifications.sweep_deadlines(session, today=due + timedelta(days=1))
    with db.session_scope(write=False) as session:
        kinds = {(n.kind, n.user_id) for n in session.exec(select(notifications.Notification))}
        auditor = identity.get_user(session, "sjj-auditor").id
    assert late >= 2 and ("overdue", auditor) in kinds  # the data bureau hears of it too
    assert isinstance(date.today(), date)


def test_a_notice_is_told_to_its_publishers_and_swept_once_a_day_when_overdue(
        client: TestClient, world: World) -> None:
    code = register(client, world, people(4))
    deadline = date.today() + timedelta(days=20)
    issued = client.post("/api/v1/quality/notices", headers=world.headers("SJJ", Role.auditor),
                         json={"resource": code, "problem": "身份证号校验位错误",
                               "deadline": deadline.isoformat()})
    assert issued.status_code == 201, issued.text
    with db.session_scope() as session:
        publisher = identity.get_user(session, "ga-publisher").id
        auditor = identity.get_user(session, "sjj-auditor").id
        told = [n for n in notifications.inbox(session, publisher or 0)
                if n.kind == "notice_issued"]
        assert len(told) == 1 and told[0].params["resource"] == "人口基础信息"  # by name
        assert notifications.sweep_deadlines(session, today=deadline) == 0  # not yet late
        late = notifications.sweep_deadlines(session, today=deadline + timedelta(days=1))
    with db.session_scope() as session:
        again = notifications.sweep_deadlines(session, today=deadline + timedelta(days=1))
        kinds = {(n.kind, n.user_id) for n in session.exec(select(notifications.Notification))}
    assert late >= 2 and again == 0
    assert {("notice_overdue", publisher), ("notice_overdue", auditor)} <= kinds
