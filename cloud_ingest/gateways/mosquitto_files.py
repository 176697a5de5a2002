"""Mosquitto's password file and ACL file for the gateways, and a private atomic file write.

The ACL gives each gateway, by its user name (= its id), exactly the topics the edge agent uses
(`edge_agent/uplink.py`):

- write `steward/v1/<id>/up` (envelopes), `steward/v1/<id>/status` (retained status and last
  will) and `steward/v1/<id>/config/report` (its answer to a pushed config);
- read `steward/v1/<id>/config` (the retained config the cloud pushes).

One `user <id>` block per gateway, not one `pattern ... %u` block: a pattern applies to every
user the broker knows, including the ingest's own user, while user blocks name each gateway
explicitly, so the file says who may do what and a user without a block may do nothing. Ids are
checked (`cloud_ingest.gateways.ids`) to hold no `+`, `#`, `/`, space or line break, so an id cannot
widen its own topics.

The ingest user may read `steward/v1/+/up` and `steward/v1/+/status`. Mosquitto's ACL file checks
read rights when a message is delivered, against the message's topic, whatever filter matched it:
the consumer's shared subscription `$share/<group>/steward/v1/+/up` is served by the same lines, and
a subscription outside a user's rights is acknowledged but never delivers anything.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

TOPIC_ROOT: Final = "steward/v1"
DEFAULT_INGEST_USER: Final = "steward-ingest"


def gateway_rules(gateway_id: str) -> list[str]:
    """The ACL lines (`topic read|write ...`) of one gateway."""
    root = f"{TOPIC_ROOT}/{gateway_id}"
    return [
        f"topic write {root}/up",
        f"topic write {root}/status",
        f"topic write {root}/config/report",
        f"topic read {root}/config",
    ]


def ingest_rules() -> list[str]:
    """The ACL lines of the ingest's user: read every gateway's envelopes and statuses."""
    return [f"topic read {TOPIC_ROOT}/+/up", f"topic read {TOPIC_ROOT}/+/status"]


def acl_text(gateway_ids: Sequence[str], ingest_user: str | None) -> str:
    """The ACL file: no rule for anonymous clients, one block per gateway, then the ingest user."""
    if ingest_user is not None and ingest_user in gateway_ids:
        raise ValueError(f"the ingest user {ingest_user!r} is also a gateway id")
    lines = ["# Written by `cloud-ingest gateways acl`; regenerate it, do not edit it.", ""]
    for gateway_id in gateway_ids:
        lines += [f"user {gateway_id}", *gateway_rules(gateway_id), ""]
    if ingest_user is not None:
        lines += [f"user {ingest_user}", *ingest_rules(), ""]
    return "\n".join(lines)


def password_text(entries: Iterable[tuple[str, str]]) -> str:
    """The password file: `user:hash` lines, as `mosquitto_passwd` writes them."""
    users: set[str] = set()
    lines = []
    for user, hashed in entries:
        if user in users:
            raise ValueError(f"user {user!r} appears twice")
        users.add(user)
        lines.append(f"{user}:{hashed}\n")
    return "".join(lines)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (a temporary file renamed over it), mode 0600.

    A reader (Mosquitto reloading on SIGHUP) sees the old file or the new one, never a part.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
