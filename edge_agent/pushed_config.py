"""The last config the cloud pushed and the gateway accepted, kept in the state directory.

A pushed config or rule set stays in force across restarts: the agent starts from its files with
this payload applied on top, before any source runs, and does not depend on the uplink being up at
boot to get its rules back. The file is written like the rule state (temporary file, fsync,
rename), so a power cut leaves the old payload or the new one, never half of either.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_LOG = logging.getLogger(__name__)

PUSHED_CONFIG_FILE: Final = "pushed-config.json"


@dataclass(frozen=True, slots=True)
class PushedPayload:
    """An accepted payload of the `config` topic."""

    digest: str
    payload: bytes
    at: str
    """When it was accepted (ISO 8601)."""


class PushedConfigStore:
    """One JSON file holding the accepted payload (absent: the gateway runs on its own files)."""

    def __init__(self, path: Path) -> None:
        """Keep the payload in `path`."""
        self.path = path

    def load(self) -> PushedPayload | None:
        """The stored payload, or None if there is none or the file is unreadable (logged)."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return PushedPayload(str(doc["digest"]), str(doc["payload"]).encode(), str(doc["at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            _LOG.warning("pushed config %s unreadable, ignored: %s", self.path, err)
            return None

    def save(self, pushed: PushedPayload) -> None:
        """Replace the stored payload durably."""
        doc = {"digest": pushed.digest, "at": pushed.at, "payload": pushed.payload.decode()}
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(doc, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)

    def clear(self) -> None:
        """Forget the stored payload."""
        self.path.unlink(missing_ok=True)
