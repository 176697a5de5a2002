"""Console passwords: scrypt hashes (`hashlib.scrypt`, no extra dependency) checked in constant time.

A stored hash reads `scrypt$<n>$<r>$<p>$<salt>$<key>` (salt and key in unpadded URL-safe base64),
so the cost can be raised later and old hashes still verify. `verify` of a missing hash still
spends the work of one hash, so a wrong name and a wrong password take the same time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

SCHEME: Final = "scrypt"
COST_N: Final = 2**14
BLOCK_R: Final = 8
PARALLEL_P: Final = 1
KEY_BYTES: Final = 32
SALT_BYTES: Final = 16
PASSWORD_MIN: Final = 8
"""Characters a new password needs at least."""
PASSWORD_MAX: Final = 1024
"""Characters a password may have at most (a longer one is refused before it is hashed)."""
_MAXMEM: Final = 64 * 1024 * 1024


class PasswordError(ValueError):
    """A new password is refused; the message says why in one line."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=KEY_BYTES
    )


def check_password(password: str) -> str:
    """Return `password` if it may be set (length bounds; not only spaces)."""
    if len(password) < PASSWORD_MIN or len(password) > PASSWORD_MAX:
        raise PasswordError(f"a password needs {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if not password.strip():
        raise PasswordError("a password cannot be only spaces")
    return password


def hash_password(password: str) -> str:
    """The stored form of `password` (a fresh random salt each time)."""
    check_password(password)
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, COST_N, BLOCK_R, PARALLEL_P)
    return f"{SCHEME}${COST_N}${BLOCK_R}${PARALLEL_P}${_b64(salt)}${_b64(key)}"


_DUMMY: Final = (
    f"{SCHEME}${COST_N}${BLOCK_R}${PARALLEL_P}${_b64(bytes(SALT_BYTES))}${_b64(bytes(KEY_BYTES))}"
)


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches the `stored` hash (`None`: no password set, always `False`)."""
    if len(password) > PASSWORD_MAX:
        return False
    parts = (stored or _DUMMY).split("$")
    try:
        scheme, n, r, p, salt, key = parts
        expected = _unb64(key)
        derived = _derive(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return scheme == SCHEME and stored is not None and hmac.compare_digest(derived, expected)
