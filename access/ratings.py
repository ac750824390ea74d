"""Requesters' ratings of deliveries: was the data useful? (issue 6)

One rating per delivery and requesting user; rating again replaces the verdict. A rating is
an event of the signed access log (``delivery.rated``), committed with it. The log keeps the
verdict and a SHA-256 of the comment, not the comment: the log is append-only and public to
auditors, and free text may hold what should not be kept forever.
"""

from __future__ import annotations

import hashlib

from sqlmodel import Session, col, select

from access import service as svc
from access.models import Delivery, DeliveryRating
from kernel import policy
from kernel.auth import Principal
from kernel.db import utcnow
from kernel.events import Event, publish
from kernel.identity import Role
from kernel.problems import Forbidden, NotFound


def _delivery(session: Session, delivery_id: int) -> Delivery:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"No delivery {delivery_id}.",
                       key="problem.access.no_delivery", params={"delivery_id": delivery_id})
    return delivery


def rate(session: Session, who: Principal, delivery_id: int, useful: bool,
         comment: str) -> DeliveryRating:
    """Record (or replace) the caller's verdict on a delivery to their department."""
    delivery = _delivery(session, delivery_id)
    app = svc.load(session, delivery.application_id)
    if who.department_id != app.requester_department_id or not who.has(Role.requester):
        raise Forbidden(f"Delivery {delivery_id} went to another department; only requesters "
                        "of the requesting department rate it.",
                        key="problem.access.rate_not_yours",
                        params={"delivery_id": delivery_id})
    rating = session.exec(select(DeliveryRating).where(
        DeliveryRating.delivery_id == delivery_id,
        DeliveryRating.rated_by == who.user_id)).first()
    if rating is None:
        rating = DeliveryRating(delivery_id=delivery_id, application_id=app.id or 0,
                                provider_department_id=app.provider_department_id,
                                requester_department_id=app.requester_department_id,
                                rated_by=who.user_id, useful=useful)
    rating.useful, rating.comment, rating.rated_at = useful, comment, utcnow()
    session.add(rating)
    session.flush()
    subjects = svc._subjects(session, app) | {"delivery": str(delivery_id)}
    publish(session, Event("delivery.rated", who.actor, subjects, {
        "useful": useful, "comment_sha256": hashlib.sha256(comment.encode()).hexdigest()}))
    return rating


def ratings(session: Session, who: Principal, delivery_id: int) -> list[DeliveryRating]:
    """A delivery's ratings, for its requesting and providing departments and the bureau."""
    delivery = _delivery(session, delivery_id)
    app = svc.load(session, delivery.application_id)
    party = who.department_id in (app.requester_department_id, app.provider_department_id) \
        and who.has(Role.requester, Role.approver, Role.publisher)
    bureau = policy.is_data_bureau(session, who)
    if not (party or bureau):
        raise Forbidden(f"Delivery {delivery_id} is between other departments; only they and "
                        "the data bureau see its ratings.",
                        key="problem.access.ratings_not_yours",
                        params={"delivery_id": delivery_id})
    return list(session.exec(select(DeliveryRating)
                             .where(DeliveryRating.delivery_id == delivery_id)
                             .order_by(col(DeliveryRating.rated_at).desc())))
