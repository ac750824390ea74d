"""In-transaction domain events.

The catalog must not import ``access`` (dependency runs one way), yet every registration has
to reach the signed access log in the same transaction. The catalog publishes an ``Event``;
the app factory subscribes the log. Subscribers run synchronously inside the publisher's
session, so the event and the change it records commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    department_id: int | None
    # "system" for scheduler and automatic steps, "user" otherwise.
    kind: str = "user"


@dataclass(frozen=True)
class Event:
    type: str  # dotted, e.g. "resource.registered"
    actor: Actor
    subjects: dict[str, str]  # ids the event is about, e.g. {"resource": "GS-..."}
    payload: dict[str, Any] = field(default_factory=dict)  # digested, never stored raw


Subscriber = Callable[[Session, Event], None]
_subscribers: list[Subscriber] = []


def subscribe(fn: Subscriber) -> None:
    if fn not in _subscribers:
        _subscribers.append(fn)


def unsubscribe_all() -> None:
    _subscribers.clear()


def publish(session: Session, event: Event) -> None:
    for fn in list(_subscribers):
        fn(session, event)
