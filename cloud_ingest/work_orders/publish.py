"""Tell the world about a work-order change, inside the transaction that makes it.

Every change is one live-stream event (`cloud_ingest.stream.outbox.record`, kind `work_order`);
the changes people act on also become notifications (`cloud_ingest.notify.outbox.enqueue`,
topic `work_order.<action>`: `work_order.open`, `work_order.dispatch`, `work_order.escalate`, ...).
Both only insert rows, so they commit or roll back with the change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.notify.outbox import enqueue
from cloud_ingest.stream.outbox import record
from cloud_ingest.work_orders.lifecycle import OPEN_ACTION, Action

NOTIFIED: Final = frozenset(
    {
        OPEN_ACTION,
        Action.DISPATCH.value,
        Action.REJECT.value,
        Action.SUBMIT.value,
        Action.VERIFY.value,
        Action.REWORK.value,
        Action.REOPEN.value,
        Action.CANCEL.value,
        Action.RATE.value,
        Action.ESCALATE.value,
        "auto_verify",
    }
)
"""Actions that notify subscribers (alarm evidence, comments and routine steps only stream)."""

_SEVERITY: Final = {"P1": "critical", "P2": "warning"}
"""A notification's severity by the order's priority (info below P2)."""
_ADDRESSED: Final = {
    OPEN_ACTION: ("operator", "supervisor"),
    Action.DISPATCH.value: ("technician",),
    Action.REJECT.value: ("operator", "supervisor"),
    Action.SUBMIT.value: ("operator", "supervisor"),
    Action.REWORK.value: ("operator", "supervisor", "technician"),
    Action.ESCALATE.value: ("supervisor",),
}
"""The roles a notification is addressed to (none named: everyone subscribed)."""


def summary(order: Mapping[str, Any]) -> dict[str, object]:
    """The fields of an order every stream event and notification carries."""
    return {
        "id": order["id"],
        "number": order["number"],
        "state": order["state"],
        "version": order["version"],
        "source": order["source"],
        "category": order["category"],
        "priority": order["priority"],
        "title": order["title"],
        "assignee": order["assignee"],
        "escalation_level": order["escalation_level"],
    }


async def publish(
    conn: AsyncConnection,
    order: Mapping[str, Any],
    *,
    action: str,
    from_state: str | None,
    actor: str,
    reason: str | None = None,
) -> None:
    """Record the change of `order` (its row after `action`) for the stream and notifications."""
    data: dict[str, object] = {
        **summary(order),
        "action": action,
        "from_state": from_state,
        "actor": actor,
    }
    if reason:
        data["reason"] = reason
    company, location = str(order["company"]), str(order["location"])
    await record(
        conn,
        kind="work_order",
        key=str(order["id"]),
        company=company,
        location=location,
        data=data,
    )
    if action not in NOTIFIED:
        return
    roles = _ADDRESSED.get(action)
    if roles is not None:
        data["roles"] = list(roles)
    title = f"{order['number']} {action}: {order['title']}"
    body = f"{order['number']} ({order['category']}, {order['priority']}) at {location}: "
    body += f"{from_state or 'new'} -> {order['state']} by {actor}"
    if reason:
        body += f"; reason: {reason}"
    await enqueue(
        conn,
        topic=f"work_order.{action}",
        severity=_SEVERITY.get(str(order["priority"]), "info"),
        company=company,
        location=location,
        title=title,
        body=body,
        data=data,
    )
