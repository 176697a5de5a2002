"""Which gateway ids, company names and MQTT user names the administration accepts.

A gateway id follows the rule of the edge config's `gateway.id` (a letter or digit, then letters,
digits, `_ . : -`; at most 128 characters), except `:`: the id is also the gateway's MQTT user name,
and Mosquitto's password file separates user name and hash with the first `:`. The rule keeps MQTT
wildcards (`+`, `#`), the level separator `/`, spaces and line breaks out of ids, so an id can be
written into topics, the ACL file and the password file as it is.
"""

from __future__ import annotations

import re
from typing import Final

EDGE_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
"""The edge config's identifier rule (`edge_agent.config.Identifier`)."""
ID_MAX_LENGTH: Final = 128
COMPANY_MAX_LENGTH: Final = 128


def check_gateway_id(value: str) -> str:
    """Return `value` if it may be a gateway id (and MQTT user name); else raise `ValueError`."""
    if not value or len(value) > ID_MAX_LENGTH:
        raise ValueError(f"gateway id must have 1 to {ID_MAX_LENGTH} characters: {value!r}")
    if EDGE_IDENTIFIER.fullmatch(value) is None:
        raise ValueError(
            f"invalid gateway id {value!r}: a letter or digit, then letters, digits, _ . -"
        )
    if ":" in value:
        raise ValueError(
            f"invalid gateway id {value!r}: ':' cannot be in an MQTT user name of Mosquitto's "
            "password file"
        )
    return value


def check_user_name(value: str) -> str:
    """Return `value` if it may be the ingest's MQTT user name (same rule as a gateway id)."""
    try:
        return check_gateway_id(value)
    except ValueError as err:
        raise ValueError(str(err).replace("gateway id", "user name")) from None


def check_company(value: str) -> str:
    """Return `value` stripped if it is a usable company name; else raise `ValueError`."""
    text = value.strip()
    if not text or len(text) > COMPANY_MAX_LENGTH:
        raise ValueError(f"company must have 1 to {COMPANY_MAX_LENGTH} characters")
    if any(not ch.isprintable() for ch in text):
        raise ValueError(f"company must not contain control characters: {value!r}")
    return text
