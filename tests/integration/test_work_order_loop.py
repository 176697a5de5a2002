"""The work-order loop end to end: simulated fires through the real agent into orders, walked by people.

`propsim run` plays the shipped scenario `smoke_codecs.yaml` (four fires, one each on a LoRaWAN
and two Zigbee smoke detectors and a SIA DC-09 fire panel) at 1350 times real speed; the real
`edge-agent run`, bound as an installer binds the devices, with the default rule pack and the
shipped codecs, raises the alarms and publishes them to Mosquitto, where `cloud-ingest serve`
(PostgreSQL) consumes them and opens the work orders. This happens once for the module; each test
then walks its own order through the loop over the REST API as the people of a property company
(an operator, a supervisor, a technician and a resident) and of another one would:

1. a fire becomes exactly one P1 order though its detector re-sends the alarm every minute, and is
   accepted, dispatched, confirmed, started, submitted with a photo, verified by someone other
   than the handler, rated and followed up;
2. a 1-star rating sends a closed order back to rework, and the rework is counted;
3. a false alarm is cancelled with a reason (none is a 422; an illegal action a 409 naming the
   state and the allowed actions);
4. a resident's repair request and a 12345 hotline complaint go from submission to follow-up;
5. the sensor's RESOLVED is evidence on the order and closes none;
6. an order nobody accepts breaches its SLA and escalates grid → community → street on a test
   clock, each level told through its own signed webhook on a local receiver, the street also
   by e-mail through a local SMTP server;
7. a technician borrowed from another company through the shared pool handles an order.

The company's technician is registered in a team with an on-duty shift through the API, so a
dispatch without an assignee picks them. The server's alarm sweep runs on the wall clock, on which
the sped-up scenario's alarms would all look stale, and its SLA breach scheduler would escalate
only after real minutes: both are off in the server. The test runs the breach scheduler itself, on
a clock it sets, against the same database; the server's notification worker delivers what that
raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
from images import png
from ingest_server import (
    IngestServer,
    Publisher,
    scalar,
    until,
    up_message,
    upgrade_database,
)
from receivers import Inbox, OnThread, Receiver, serve_inbox, serve_receiver
from scenario_play import ScenarioPlay
from uplink_capture import Capture, caught_up

from cloud_ingest.auth.service import add_user
from cloud_ingest.clock import ManualClock
from cloud_ingest.gateways.service import add_gateway
from cloud_ingest.infra.db import create_engine
from cloud_ingest.problems import PROBLEM_JSON
from cloud_ingest.work_orders.breaches import BreachScheduler, Escalation
from core.types import Envelope
from simulators.scenario import Scenario, load_scenario
from simulators.services import Mosquitto, Postgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT: Final = Path(__file__).resolve().parents[2]
SCENARIO: Final = ROOT / "simulators" / "scenarios" / "smoke_codecs.yaml"
SPEED: Final = 1350.0
"""270 simulated minutes in 12 real seconds (the scored scenario test's pace for this file)."""
COMPANY: Final = "acme"
RESIDENT_UNIT: Final = "c1/b1/u2"
"""Where the resident lives, below the scenario's site."""
STREET_MAIL: Final = "street-office@example.test"
LENDER: Final = "bolt"
"""The other property company, which lends a technician."""
SERVE_ENV: Final = {
    "STEWARD_ALARM_SWEEP_INTERVAL_S": "0",
    "STEWARD_SLA_BREACH_INTERVAL_S": "0",
    "STEWARD_NOTIFY_INTERVAL_S": "0.2",
}
SHANGHAI: Final = ZoneInfo("Asia/Shanghai")


@dataclass
class Loop:
    """The played scenario, the running ingest and the people's tokens."""

    server: IngestServer
    db_url: str
    scenario: Scenario
    tokens: Mapping[str, str]
    envelopes: list[Envelope]

    def location(self, below_site: str) -> str:
        """A full site path from one below the scenario's site."""
        return f"{self.scenario.site.path}/{below_site}"

    def device_location(self, device_id: str) -> str:
        """Where a device of the scenario is."""
        return str(self.scenario.location(self.scenario.device(device_id)))

    def call(
        self,
        method: str,
        path: str,
        user: str,
        *,
        body: Mapping[str, object] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        """One request to `/api/v1/<path>` as `user`."""
        return httpx.request(
            method,
            f"{self.server.url}/api/v1/{path}",
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            json=body,
            params=params,
            timeout=10,
        )

    def photo(self, user: str, name: str) -> str:
        """Upload a photo (a small PNG, its bytes made by `name`) as `user`; its hash."""
        image = png(salt=name.encode())
        answer = httpx.post(
            f"{self.server.url}/api/v1/photos",
            headers={"Authorization": f"Bearer {self.tokens[user]}", "Content-Type": "image/png"},
            content=image,
            timeout=10,
        )
        assert answer.status_code in {200, 201}, answer.text
        sha256: str = answer.json()["sha256"]
        assert sha256 == hashlib.sha256(image).hexdigest()
        return sha256

    def act(self, order_id: int, user: str, action: str, **fields: object) -> httpx.Response:
        """`POST /work-orders/{id}/actions` as `user`."""
        return self.call(
            "POST", f"work-orders/{order_id}/actions", user, body={"action": action, **fields}
        )

    def step(
        self, order_id: int, user: str, action: str, state: str, **fields: object
    ) -> dict[str, Any]:
        """Take an action that must succeed and leave the order in `state`; the order after it."""
        answer = self.act(order_id, user, action, **fields)
        assert answer.status_code == 200, (action, user, answer.text)
        order: dict[str, Any] = answer.json()
        assert order["state"] == state, (action, order)
        return order

    def order(self, order_id: int, user: str = "ops") -> dict[str, Any]:
        """`GET /work-orders/{id}`: the order with its events and alarms."""
        answer = self.call("GET", f"work-orders/{order_id}", user)
        assert answer.status_code == 200, answer.text
        detail: dict[str, Any] = answer.json()
        return detail

    def fire_orders(self) -> list[dict[str, Any]]:
        """Every fire order the alarms opened, as the operator lists them."""
        answer = self.call(
            "GET", "work-orders", "ops", params={"source": "alarm", "category": "fire", "limit": 50}
        )
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def fire_order(self, device_id: str) -> dict[str, Any]:
        """The one fire order at the place of `device_id`, with its events and alarms."""
        here = self.device_location(device_id)
        (order,) = [o for o in self.fire_orders() if o["location"] == here]
        return self.order(order["id"])


async def _people(db_url: str, gateway_id: str, site: str) -> dict[str, str]:
    """Register the scenario's gateway to the company and add its people; their tokens."""
    engine = create_engine(db_url)
    try:
        await add_gateway(engine, gateway_id, company=COMPANY, site=site)
        people = {
            "ops": ("operator", COMPANY, ""),
            "boss": ("supervisor", COMPANY, ""),
            "tech": ("technician", COMPANY, ""),
            "li": ("resident", COMPANY, f"{site}/{RESIDENT_UNIT}"),
            "bolt-boss": ("supervisor", LENDER, ""),
            "bolt-tech": ("technician", LENDER, ""),
        }
        return {
            name: await add_user(engine, name, role=role, company=company, area=area or None)
            for name, (role, company, area) in people.items()
        }
    finally:
        await engine.dispose()


def _roster(loop: Loop) -> None:
    """The supervisor puts the technician in the grid's team, on duty from an hour ago."""
    team = loop.call(
        "POST", "teams", "boss", body={"name": "g03 maintenance", "area": loop.scenario.site.path}
    )
    assert team.status_code == 201, team.text
    member = {"name": "tech", "team_id": team.json()["id"]}
    registered = loop.call("POST", "technicians", "boss", body=member)
    assert registered.status_code == 201, registered.text
    now = datetime.now(SHANGHAI)
    shift = {
        "technician": "tech",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    on_duty = loop.call("POST", "rosters", "boss", body={"shifts": [shift]})
    assert on_duty.status_code == 201, on_duty.text


def _handed_over(db_url: str) -> bool:
    """No alarm change is waiting for the work-order service."""
    sql = "SELECT count(*) FROM alarm_instances WHERE handoff_pending"
    return bool(scalar(db_url, sql) == 0)


@pytest.fixture(scope="module")
def loop(postgres_server: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """Play the scenario through the agent into the ingest once; redeliver every batch after it."""
    workdir = tmp_path_factory.mktemp("work-order-loop")
    database = f"work_order_loop_{uuid4().hex[:8]}"
    postgres_server.create_database(database)
    db_url = postgres_server.url(database, driver="postgresql+asyncpg")
    upgrade_database(db_url)
    shipped = load_scenario(SCENARIO)
    tokens = asyncio.run(_people(db_url, shipped.gateway_id, shipped.site.path))
    with Mosquitto() as broker:
        server = IngestServer(
            workdir, db_url=db_url, mqtt_url=broker.url, client_id="ingest-loop", env=SERVE_ENV
        )
        capture = Capture(broker, "loop-capture")
        play = ScenarioPlay(SCENARIO, workdir, broker, SPEED)
        try:
            server.start()
            play.start()
            play.play_out()
            assert play.stop() == 0, play.agent_log()
            until(lambda: caught_up(db_url, capture), 60, "every delivered batch stored")
            envelopes = capture.snapshot()
            assert any(e.alarm_events for e in envelopes)
            duplicates = "steward_ingest_duplicates_total"
            before = server.metric(duplicates)
            Publisher(broker, [up_message(e) for e in envelopes]).run()
            until(
                lambda: server.metric(duplicates) >= before + len(envelopes),
                60,
                "every redelivered batch seen",
            )
            until(lambda: _handed_over(db_url), 60, "every alarm change handed to the work orders")
            made = Loop(server, db_url, play.scenario, tokens, envelopes)
            _roster(made)
            yield made
            assert server.alive(), server.log_text()[-3000:]
        finally:
            play.stop()
            capture.close()
            server.stop()


def assert_history(order: Mapping[str, Any]) -> None:
    """The events count from 1 without a gap, each from the state the previous one left."""
    events = order["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["action"] == "open"
    assert events[0]["from_state"] is None
    for before, after in itertools.pairwise(events):
        assert after["from_state"] == before["to_state"], (before, after)
    assert order["version"] == len(events)
    assert order["state"] == events[-1]["to_state"]


def people_events(order: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(action, actor, role, to_state) of every event a person took, oldest first."""
    return [
        (e["action"], e["actor"], e["role"], e["to_state"])
        for e in order["events"]
        if e["role"] != "system"
    ]


# --- 1. a fire, from the detector to the follow-up ------------------------------------------------


def test_a_fire_becomes_one_p1_order_verified_by_another_than_its_handler_rated_and_followed_up(
    loop: Loop,
) -> None:
    fires = [t.device for t in loop.scenario.timeline if t.incident == "fire" and t.device]
    orders = loop.fire_orders()
    # One order per burning place, though each alarm came as several events (re-sent every
    # simulated minute while the fire burnt, then RESOLVED and re-sent again) and every batch was
    # delivered twice.
    assert sorted(o["location"] for o in orders) == sorted(map(loop.device_location, fires))
    assert {o["priority"] for o in orders} == {"P1"}
    order = loop.fire_order("smoke-gs524n")
    fingerprint = f"{loop.scenario.gateway_id}/smoke-gs524n/smoke_alarm"
    assert (order["source"], order["company"], order["fingerprint"]) == (
        "alarm",
        COMPANY,
        fingerprint,
    )
    alarm = {a["fingerprint"]: a for a in order["alarms"]}[fingerprint]
    sent = {a.seq for e in loop.envelopes for a in e.alarm_events if a.fingerprint == fingerprint}
    assert len(sent) >= 2, "the alarm and its end"
    assert (alarm["first_seq"], alarm["last_seq"]) == (1, max(sent))
    # The later events are evidence on the one order (of those committed in one batch, the last).
    evidence = [e for e in order["events"] if e["action"] == "alarm"]
    assert 1 <= len(evidence) <= len(sent) - 1
    oid = order["id"]

    loop.step(oid, "ops", "accept", "ACCEPTED")
    loop.step(oid, "ops", "dispatch", "DISPATCHED", assignee="tech")
    loop.step(oid, "tech", "confirm", "DISPATCHED")
    loop.step(oid, "tech", "start", "IN_PROGRESS")
    after_fire = loop.photo("tech", "kitchen after the fire")
    submitted = loop.step(
        oid,
        "tech",
        "submit",
        "AWAITING_VERIFICATION",
        result="extinguished; hood and detector cleaned, detector tested",
        photos=[after_fire],
    )
    assert submitted["handler"] == "tech"
    own = loop.act(oid, "tech", "verify")
    assert own.status_code == 403, own.text
    assert loop.order(oid)["state"] == "AWAITING_VERIFICATION"
    closed = loop.step(oid, "boss", "verify", "CLOSED")
    assert (closed["verifier"], closed["handler"]) == ("boss", "tech")
    assert closed["closed_at"] is not None
    assert loop.step(oid, "ops", "rate", "RATED", rating=5, comment="quick")["rating"] == 5
    loop.step(oid, "ops", "follow_up", "FOLLOWED_UP", comment="resident called back: all fine")

    done = loop.order(oid)
    assert_history(done)
    assert people_events(done) == [
        ("accept", "ops", "operator", "ACCEPTED"),
        ("dispatch", "ops", "operator", "DISPATCHED"),
        ("confirm", "tech", "technician", "DISPATCHED"),
        ("start", "tech", "technician", "IN_PROGRESS"),
        ("submit", "tech", "technician", "AWAITING_VERIFICATION"),
        ("verify", "boss", "supervisor", "CLOSED"),
        ("rate", "ops", "operator", "RATED"),
        ("follow_up", "ops", "operator", "FOLLOWED_UP"),
    ]
    (submit,) = [e for e in done["events"] if e["action"] == "submit"]
    assert submit["evidence"] == {"photos": [after_fire]}
    assert submit["data"]["result"].startswith("extinguished")
    for column in ("accepted_at", "dispatched_at", "started_at", "submitted_at", "closed_at"):
        assert done[column] is not None, column
    assert done["allowed_actions"] == ["reopen", "comment"]


# --- 2. rework after a bad rating -----------------------------------------------------------------


def test_a_one_star_rating_sends_the_order_to_rework_and_counts_it(loop: Loop) -> None:
    oid = loop.fire_order("smoke-aqara")["id"]
    loop.step(oid, "ops", "accept", "ACCEPTED")
    loop.step(oid, "ops", "dispatch", "DISPATCHED", assignee="tech")
    loop.step(oid, "tech", "start", "IN_PROGRESS")
    loop.step(oid, "tech", "submit", "AWAITING_VERIFICATION", result="detector reset")
    loop.step(oid, "ops", "verify", "CLOSED")

    rated = loop.step(oid, "ops", "rate", "REWORK", rating=1, comment="still smells of smoke")
    assert (rated["rating"], rated["rework_count"]) == (1, 1)
    assert "dispatch" in rated["allowed_actions"]

    # The supervisor goes along this time and reports the result himself: as the handler he may
    # not verify his own work.
    loop.step(oid, "ops", "dispatch", "DISPATCHED", assignee="tech")
    loop.step(oid, "tech", "start", "IN_PROGRESS")
    loop.step(
        oid,
        "boss",
        "submit",
        "AWAITING_VERIFICATION",
        result="burnt cable found behind the hood and replaced",
        photos=[loop.photo("boss", "new cable")],
    )
    own = loop.act(oid, "boss", "verify")
    assert own.status_code == 403, own.text
    assert "handler" in own.json()["detail"]
    closed = loop.step(oid, "ops", "verify", "CLOSED")
    assert (closed["handler"], closed["verifier"], closed["rework_count"]) == ("boss", "ops", 1)
    assert loop.step(oid, "ops", "rate", "RATED", rating=4)["rework_count"] == 1
    loop.step(oid, "ops", "follow_up", "FOLLOWED_UP")

    done = loop.order(oid)
    assert_history(done)
    (bad,) = [e for e in done["events"] if e["action"] == "rate" and e["to_state"] == "REWORK"]
    assert (bad["from_state"], bad["data"]["rating"]) == ("CLOSED", 1)
    assert [e["action"] for e in done["events"] if e["action"] == "dispatch"] == ["dispatch"] * 2


# --- 3. a false alarm cancelled ------------------------------------------------------------------


def test_a_false_alarm_is_cancelled_with_a_reason_and_illegal_actions_are_refused(
    loop: Loop,
) -> None:
    oid = loop.fire_order("smoke-ts0205")["id"]
    illegal = loop.act(oid, "ops", "verify")
    assert illegal.status_code == 409, illegal.text
    assert illegal.headers["content-type"].startswith(PROBLEM_JSON)
    problem = illegal.json()
    assert problem["state"] == "NEW"
    assert {"accept", "cancel"} <= set(problem["allowed_actions"])
    assert "verify" not in problem["allowed_actions"]
    assert "NEW" in problem["detail"]

    loop.step(oid, "ops", "accept", "ACCEPTED")
    for blank in ({}, {"reason": "  "}):
        refused = loop.act(oid, "ops", "cancel", **blank)
        assert refused.status_code == 422, refused.text
    assert loop.order(oid)["state"] == "ACCEPTED"
    reason = "false alarm: steam from the kitchen, no fire found on site"
    cancelled = loop.step(oid, "ops", "cancel", "CANCELLED", reason=reason)
    assert cancelled["allowed_actions"] == ["comment"]

    again = loop.act(oid, "ops", "accept")
    assert again.status_code == 409, again.text
    assert (again.json()["state"], again.json()["allowed_actions"]) == ("CANCELLED", ["comment"])
    done = loop.order(oid)
    assert_history(done)
    assert done["events"][-1]["action"] == "cancel"
    assert (done["events"][-1]["reason"], done["events"][-1]["from_state"]) == (reason, "ACCEPTED")


# --- 4. people's requests -------------------------------------------------------------------------


def test_a_residents_request_goes_from_submission_to_follow_up(loop: Loop) -> None:
    leak = loop.photo("li", "water under the sink")
    filed = loop.call(
        "POST",
        "requests",
        "li",
        body={
            "text": "The kitchen sink leaks onto the floor.",
            "category": "plumbing",
            "photos": [leak],
        },
    )
    assert filed.status_code == 201, filed.text
    order = filed.json()
    assert (order["source"], order["requester"], order["company"]) == ("resident", "li", COMPANY)
    assert (order["location"], order["state"], order["priority"]) == (
        loop.location(RESIDENT_UNIT),
        "NEW",
        "P3",
    )
    oid = order["id"]
    mine = loop.call("GET", "requests", "li").json()["items"]
    assert [o["id"] for o in mine] == [oid]

    early = loop.act(oid, "li", "rate", rating=5)  # nothing to rate yet
    assert early.status_code == 409, early.text
    loop.step(oid, "ops", "accept", "ACCEPTED")
    # Nobody named: the technician on duty in the grid's team is picked.
    assert loop.step(oid, "ops", "dispatch", "DISPATCHED")["assignee"] == "tech"
    loop.step(oid, "tech", "confirm", "DISPATCHED")
    loop.step(oid, "tech", "start", "IN_PROGRESS")
    loop.step(
        oid,
        "tech",
        "submit",
        "AWAITING_VERIFICATION",
        result="trap seal replaced",
        photos=[loop.photo("tech", "dry sink")],
    )
    loop.step(oid, "boss", "verify", "CLOSED")
    assert loop.step(oid, "li", "rate", "RATED", rating=5, comment="thanks")["rating"] == 5
    loop.step(oid, "ops", "follow_up", "FOLLOWED_UP")

    done = loop.order(oid, "li")  # the resident follows their own request
    assert_history(done)
    assert done["events"][0]["evidence"] == {"photos": [leak]}
    assert (done["events"][0]["actor"], done["events"][0]["role"]) == ("li", "resident")
    (dispatch,) = [e for e in done["events"] if e["action"] == "dispatch"]
    assert dispatch["data"]["assignment"] == "automatic"
    assert [a for a, *_ in people_events(done)] == [
        "open",
        "accept",
        "dispatch",
        "confirm",
        "start",
        "submit",
        "verify",
        "rate",
        "follow_up",
    ]


def test_a_12345_complaint_is_opened_once_per_reference_and_kept_to_the_hotlines_deadline(
    loop: Loop,
) -> None:
    deadline = (datetime.now(SHANGHAI) + timedelta(days=5)).replace(microsecond=0)
    complaint = {
        "source": "hotline_12345",
        "text": "Caller reports rubbish piling up by the gate of compound c1 for three days.",
        "location": loop.location("c1"),
        "category": "sanitation",
        "external_ref": f"12345-{uuid4().hex[:10]}",
        "external_deadline": deadline.isoformat(),
    }
    missing = loop.call("POST", "requests", "ops", body={**complaint, "external_ref": None})
    assert missing.status_code == 422, missing.text
    filed = loop.call("POST", "requests", "ops", body=complaint)
    assert filed.status_code == 201, filed.text
    order = filed.json()
    assert (order["source"], order["external_ref"]) == ("hotline_12345", complaint["external_ref"])
    assert datetime.fromisoformat(order["external_deadline"]) == deadline
    again = loop.call("POST", "requests", "ops", body=complaint)  # the hotline forwards it again
    assert again.status_code in {200, 201}, again.text
    assert again.json()["id"] == order["id"]
    oid = order["id"]

    loop.step(oid, "ops", "accept", "ACCEPTED")
    loop.step(oid, "ops", "dispatch", "DISPATCHED", assignee="tech")
    started = loop.step(oid, "tech", "start", "IN_PROGRESS")
    assert datetime.fromisoformat(started["due_at"]) == deadline  # the hotline's, for handling
    loop.step(oid, "tech", "submit", "AWAITING_VERIFICATION", result="cleared, bins added")
    loop.step(oid, "boss", "verify", "CLOSED")
    loop.step(oid, "ops", "follow_up", "FOLLOWED_UP", comment="12345 caller satisfied")

    done = loop.order(oid)
    assert_history(done)
    assert done["external_ref"] == complaint["external_ref"]
    listed = loop.call("GET", "requests", "ops", params={"source": "hotline_12345"}).json()
    assert [o["id"] for o in listed["items"]].count(oid) == 1


# --- 5. the sensor's RESOLVED ---------------------------------------------------------------------


def test_the_sensors_resolved_is_evidence_and_closes_no_fire_order(loop: Loop) -> None:
    for listed in loop.fire_orders():
        order = loop.order(listed["id"])
        assert order["alarms"], order
        # Every fire burnt out within the scenario: each attached alarm ended RESOLVED ...
        assert {a["state"] for a in order["alarms"]} == {"resolved"}, order["alarms"]
        resolved = [
            e
            for e in order["events"]
            if e["action"] == "alarm" and e["data"]["alarm_state"] == "resolved"
        ]
        assert resolved, order["events"]
        # ... recorded as evidence that left the state where it was,
        for event in resolved:
            assert event["from_state"] == event["to_state"]
            assert event["actor"] == "system"
            (evidence,) = event["evidence"]["alarms"]
            assert evidence["state"] == "resolved"
        # and nobody but people moved the order.
        moved = [
            e
            for e in order["events"][1:]
            if e["role"] == "system" and e["from_state"] != e["to_state"]
        ]
        assert moved == []
        assert_history(order)

    panel = loop.fire_order("panel-b2")  # no person acts on this one
    assert (panel["state"], panel["verifier"], panel["closed_at"]) == ("NEW", None, None)
    assert {"accept", "cancel"} <= set(panel["allowed_actions"])


# --- 6. an SLA breach escalates -------------------------------------------------------------------


def breach_run(db_url: str, at: datetime) -> list[Escalation]:
    """One run of the SLA breach scheduler on a clock standing at `at`; its escalations."""

    async def run() -> list[Escalation]:
        engine = create_engine(db_url)
        try:
            return await BreachScheduler(engine, clock=ManualClock(at)).run_once()
        finally:
            await engine.dispose()

    return asyncio.run(run())


def subscribe(loop: Loop, channel: Mapping[str, object], area: str) -> None:
    """The supervisor adds `channel` and subscribes it to breaches within `area`."""
    made = loop.call("POST", "notifications/channels", "boss", body=channel)
    assert made.status_code == 201, made.text
    subscription = {"channel_id": made.json()["id"], "topic": "work_order.breach", "area": area}
    subscribed = loop.call("POST", "notifications/subscriptions", "boss", body=subscription)
    assert subscribed.status_code == 201, subscribed.text


def mailed(inbox: Inbox, number: str) -> list[str]:
    """What the mails to the street about order `number` said of the escalation."""
    said = []
    for recipients, mail in list(inbox.mails):
        subject = "".join(str(mail["Subject"]).splitlines())  # unfolded
        if recipients == [STREET_MAIL] and number in subject:
            said.append(subject.split(": ", 1)[0].split(f"{number} ", 1)[1])
    return said


def told(receiver: Receiver, order_id: int) -> dict[str, list[str]]:
    """Per webhook path, the levels the order's breach notifications were addressed to."""
    levels: dict[str, list[str]] = {}
    for hook in receiver.hooks:
        document = hook["json"]
        if document["topic"] == "work_order.breach" and document["data"]["id"] == order_id:
            assert hook["valid"], hook
            assert document["location"] == document["data"]["target"]
            levels.setdefault(hook["path"], []).append(document["data"]["level"])
    return levels


def test_an_order_nobody_accepts_escalates_grid_community_street_and_each_level_is_told(
    loop: Loop,
) -> None:
    order = loop.fire_order("panel-b2")
    oid = order["id"]
    assert (order["state"], order["escalation_level"]) == ("NEW", 0)
    grid = loop.scenario.site.path
    community = grid.rsplit("/", 1)[0]
    street = community.rsplit("/", 1)[0]
    with OnThread(serve_receiver()) as receiver, OnThread(serve_inbox()) as inbox:
        for level, area in {"grid": grid, "community": community, "street": street}.items():
            hook = {"target": f"{receiver.base}/hook/{level}", "secret": receiver.secret}
            subscribe(loop, {"name": f"{level} office", "kind": "webhook", **hook}, area)
        mail = {
            "name": "street duty mail",
            "kind": "email",
            "target": STREET_MAIL,
            "options": {"smtp_host": "127.0.0.1", "smtp_port": inbox.port},
        }
        subscribe(loop, mail, street)

        due = datetime.fromisoformat(order["due_at"])
        early = breach_run(loop.db_url, due - timedelta(seconds=1))  # other orders may be due
        assert [e for e in early if e.order_id == oid] == []
        (first,) = [e for e in breach_run(loop.db_url, due) if e.order_id == oid]
        assert (first.step.from_level, first.step.to_level, first.target) == (
            "grid",
            "community",
            community,
        )
        assert first.next_due_at is not None
        until(
            lambda: (
                told(receiver, oid)
                == {"/hook/community": ["community"], "/hook/street": ["community"]}
            ),
            30,
            "the community and the street told of the breach",
        )
        again = breach_run(loop.db_url, due)  # a second run (or process) at the same time
        assert [e for e in again if e.order_id == oid] == []
        (second,) = [e for e in breach_run(loop.db_url, first.next_due_at) if e.order_id == oid]
        assert (second.step.from_level, second.step.to_level, second.target) == (
            "community",
            "street",
            street,
        )
        until(
            lambda: (
                told(receiver, oid)
                == {"/hook/community": ["community"], "/hook/street": ["community", "street"]}
            ),
            30,
            "the street told of the second breach",
        )
        until(lambda: len(mailed(inbox, order["number"])) == 2, 30, "the street's two mails")
        assert mailed(inbox, order["number"]) == [
            f"escalated to the community ({community})",
            f"escalated to the street ({street})",
        ]

    after = loop.order(oid)
    assert (after["state"], after["escalation_level"]) == ("NEW", 2)
    breaches = [e for e in after["events"] if e["action"] == "breach"]
    assert [
        (e["data"]["stage"], e["data"]["from_level"], e["data"]["to_level"]) for e in breaches
    ] == [
        ("acceptance", "grid", "community"),
        ("acceptance", "community", "street"),
    ]
    assert all(
        (e["actor"], e["from_state"], e["to_state"]) == ("system", "NEW", "NEW") for e in breaches
    )
    assert_history(after)
    # The order waits to be taken, now in the sight of the street.
    assert "accept" in after["allowed_actions"]


# --- 7. a technician borrowed through the shared pool ---------------------------------------------


def test_a_technician_borrowed_from_another_company_through_the_pool_handles_an_order(
    loop: Loop,
) -> None:
    report = {
        "source": "inspector",
        "text": "The fire door of b2 does not shut: its closer is broken.",
        "location": loop.location("c1/b2"),
        "category": "fire_system_maintenance",
    }
    filed = loop.call("POST", "requests", "ops", body=report)
    assert filed.status_code == 201, filed.text
    assert filed.json()["source"] == "inspector"
    oid = filed.json()["id"]
    loop.step(oid, "ops", "accept", "ACCEPTED")
    not_lent = loop.act(oid, "ops", "dispatch", assignee="bolt-tech")
    assert not_lent.status_code == 422, not_lent.text

    ask = {"kind": "technician", "lender": LENDER, "technician": "bolt-tech", "order_id": oid}
    asked = loop.call("POST", "pool", "boss", body={**ask, "note": "ours are at the fire"})
    assert asked.status_code == 201, asked.text
    loan = asked.json()
    assert (loan["state"], loan["borrower"], loan["lender"]) == ("REQUESTED", COMPANY, LENDER)
    actions = f"pool/{loan['id']}/actions"
    own = loop.call("POST", actions, "boss", body={"action": "approve"})  # the borrower may not
    assert own.status_code == 403, own.text
    approved = loop.call("POST", actions, "bolt-boss", body={"action": "approve"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "APPROVED"

    dispatched = loop.step(oid, "ops", "dispatch", "DISPATCHED", assignee="bolt-tech")
    assert dispatched["assignee"] == "bolt-tech"
    loop.step(oid, "bolt-tech", "confirm", "DISPATCHED")
    loop.step(oid, "bolt-tech", "start", "IN_PROGRESS")
    loop.step(
        oid,
        "bolt-tech",
        "submit",
        "AWAITING_VERIFICATION",
        result="closer replaced, door shuts and latches",
        photos=[loop.photo("bolt-tech", "fire door shut")],
    )
    closed = loop.step(oid, "boss", "verify", "CLOSED")
    assert (closed["handler"], closed["verifier"]) == ("bolt-tech", "boss")
    loop.step(oid, "ops", "follow_up", "FOLLOWED_UP")
    returned = loop.call("POST", actions, "boss", body={"action": "return"})
    assert returned.status_code == 200, returned.text
    assert returned.json()["state"] == "RETURNED"

    done = loop.order(oid)
    assert_history(done)
    (dispatch,) = [e for e in done["events"] if e["action"] == "dispatch"]
    # the work is the lender's technician's, through this loan
    assert (dispatch["data"]["assignee_company"], dispatch["data"]["loan_id"]) == (
        LENDER,
        loan["id"],
    )
    hidden = loop.call("GET", f"work-orders/{oid}", "bolt-boss")  # the lender sees no order of acme
    assert hidden.status_code == 404, hidden.text

    def by_company(user: str) -> dict[str, dict[str, Any]]:
        answer = loop.call("GET", "kpis", user, params={"by": "company"})
        assert answer.status_code == 200, answer.text
        return {row["company"]: row for row in answer.json()["rows"]}

    # The KPIs count the work for the borrower as its own, and for the lender as lent.
    assert by_company("boss")[COMPANY]["borrowed_handled"] == 1
    assert by_company("bolt-boss")[LENDER]["lent_handled"] == 1
