"""Who is on call, by name: the `[oncall]` roster of imsnb.toml with the runbook's rotation.

The runbook: primary Mon–Fri 09:00–17:00 UTC, secondary otherwise (weekday nights and weekends), handoff every week.
`imsnb.findings.on_call(at)` says which role; this module says which person holds it that week and how to reach
them, plus the contacts table by role (DevOps lead, database admin, security officer, VP engineering).

    [oncall]
    handoff = "2026-11-02T09:00:00Z"   # a handoff instant (the runbook's is weekly); week 0 starts here
    primary = ["ana", "ben"]           # one person a week, in this order
    secondary = ["cy", "ana"]

    [oncall.people.ana]                # contact per channel; every field optional
    name = "Ana Example"
    email = "ana@example.com"
    slack = "U0123ABCD"                # Slack member id (mentioned as <@U0123ABCD>) or a handle
    phone = "+1-555-0100"

    [oncall.contacts]                  # role -> person id
    devops_lead = "ana"
    database_admin = "cy"
    security_officer = "ben"
    vp_engineering = "di"

No real person's details are shipped: without `[oncall]` the role ("primary") is all anyone is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from imsnb import config
from imsnb.errors import NotConfigured
from imsnb.findings.escalation import on_call

ROLES = ("devops_lead", "database_admin", "security_officer", "vp_engineering")
ROLE_TITLES = {
    "devops_lead": "DevOps Lead",
    "database_admin": "Database Admin",
    "security_officer": "Security Officer",
    "vp_engineering": "VP Engineering",
}
CHANNELS = ("email", "slack", "phone", "pagerduty")
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    contact: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, **self.contact}


@dataclass(frozen=True)
class Roster:
    handoff: datetime
    primary: tuple[str, ...]
    secondary: tuple[str, ...]
    people: dict[str, Person]
    contacts: dict[str, str]

    def person(self, person_id: str) -> Person:
        return self.people.get(person_id) or Person(person_id, person_id)

    def on_call(self, at: datetime | None = None) -> tuple[str, Person | None]:
        """The role on call at `at` (UTC) and the person holding it this week (None if that list is empty)."""
        at = (at or datetime.now(UTC)).astimezone(UTC)
        role = on_call(at)
        rotation = self.primary if role == "primary" else self.secondary
        if not rotation:
            return role, None
        week = (at - self.handoff) // WEEK
        return role, self.person(rotation[week % len(rotation)])

    def contact(self, role: str) -> Person | None:
        person_id = self.contacts.get(role)
        return self.person(person_id) if person_id else None


def load_roster() -> Roster | None:
    """The `[oncall]` roster of imsnb.toml, or None when there is none; NotConfigured naming a bad entry."""
    section = config.toml_section("oncall")
    if section is None:
        return None
    return roster_from(section)


def roster_from(section: dict) -> Roster:
    where = "[oncall]"
    raw_handoff = section.get("handoff", "2026-01-05T09:00:00Z")  # a Monday 09:00 UTC
    try:
        handoff = raw_handoff if isinstance(raw_handoff, datetime) else datetime.fromisoformat(str(raw_handoff))
    except ValueError:
        example = "2026-11-02T09:00:00Z"
        raise NotConfigured(f"{where} handoff={raw_handoff!r} is not an ISO 8601 time (e.g. {example})") from None
    if handoff.tzinfo is None:
        handoff = handoff.replace(tzinfo=UTC)
    people = {}
    for person_id, entry in (section.get("people") or {}).items():
        if not isinstance(entry, dict):
            raise NotConfigured(f"{where} people.{person_id} must be a table (name, email, slack, phone)")
        unknown = sorted(set(entry) - {"name", *CHANNELS})
        if unknown:
            raise NotConfigured(
                f"{where} people.{person_id}: unknown key {unknown[0]!r} (use name, {', '.join(CHANNELS)})"
            )
        contact = {k: str(v) for k, v in entry.items() if k in CHANNELS and v}
        people[person_id] = Person(person_id, str(entry.get("name") or person_id), contact)
    rotations = {}
    for role in ("primary", "secondary"):
        listed = section.get(role) or []
        if isinstance(listed, str):
            listed = [listed]
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise NotConfigured(f'{where} {role} must be a list of person ids, e.g. {role} = ["ana", "ben"]')
        missing = [p for p in listed if people and p not in people]
        if missing:
            raise NotConfigured(f"{where} {role} names {missing[0]!r}, who is not in [oncall.people]")
        rotations[role] = tuple(listed)
    contacts = {}
    for role, person_id in (section.get("contacts") or {}).items():
        if role not in ROLES:
            raise NotConfigured(f"{where} contacts.{role}: unknown role (use {', '.join(ROLES)})")
        if people and person_id not in people:
            raise NotConfigured(f"{where} contacts.{role} names {person_id!r}, who is not in [oncall.people]")
        contacts[role] = str(person_id)
    return Roster(handoff, rotations["primary"], rotations["secondary"], people, contacts)


def on_call_now(at: datetime | None = None) -> dict[str, object]:
    """{"role": "primary", "name": "Ana Example", "contact": {...}} for the summary and notifications; the name is
    the role itself when no roster is configured (or it cannot be read: a report never fails over the roster)."""
    role = on_call(at)
    try:
        roster = load_roster()
    except NotConfigured as exc:
        return {"role": role, "name": role, "contact": {}, "note": str(exc)}
    if roster is None:
        return {"role": role, "name": role, "contact": {}}
    role, person = roster.on_call(at)
    if person is None:
        return {"role": role, "name": role, "contact": {}}
    return {"role": role, "name": person.name, "id": person.id, "contact": dict(person.contact)}


def role_contact(role: str) -> dict[str, object] | None:
    """The contacts table's person for a role (e.g. vp_engineering for "Page VP"), or None."""
    try:
        roster = load_roster()
    except NotConfigured:
        return None
    person = roster.contact(role) if roster else None
    return {"role": role, "title": ROLE_TITLES[role], **person.to_dict()} if person else None
