"""Gateway credentials: random secrets, Mosquitto's `$7$` password hash and the token hash.

The MQTT password is stored as Mosquitto's own PBKDF2 format, so the password file is written from
the database without ever seeing the password again:
`$7$<iterations>$<salt>$<hash>`, PBKDF2-HMAC-SHA512 over a 12-byte random salt, a 64-byte hash,
salt and hash in standard base64 with padding (what `mosquitto_passwd` writes; 101 iterations is its
default). The HTTP bearer token is high-entropy random text, so a plain SHA-256 (hex) is enough to
store it and lets the intake look a token up by its hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Final

MOSQUITTO_PBKDF2_ITERATIONS: Final = 101
"""`mosquitto_passwd`'s default iteration count for `$7$` hashes."""
MOSQUITTO_SALT_BYTES: Final = 12
MOSQUITTO_HASH_BYTES: Final = 64
SECRET_BYTES: Final = 32
"""Random bytes in each generated password and token (43 characters of URL-safe base64)."""


def new_secret() -> str:
    """A fresh random password or token: URL-safe text, no characters a shell or YAML minds."""
    return secrets.token_urlsafe(SECRET_BYTES)


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = MOSQUITTO_PBKDF2_ITERATIONS
) -> str:
    """Hash `password` as `mosquitto_passwd` does: `$7$<iterations>$<salt b64>$<hash b64>`."""
    if iterations < 1:
        raise ValueError(f"iterations must be positive, not {iterations}")
    salt = secrets.token_bytes(MOSQUITTO_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), salt, iterations, MOSQUITTO_HASH_BYTES
    )
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def mosquitto_verify(password: str, stored: str) -> bool:
    """Whether `password` matches a `$7$` hash (any iteration count); False for other formats."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "7" or not parts[2].isdigit():  # noqa: PLR2004
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    iterations = int(parts[2])
    if iterations < 1 or not expected:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(expected))
    return hmac.compare_digest(digest, expected)


def token_hash(token: str) -> str:
    """The stored form of an HTTP bearer token: SHA-256 of its UTF-8 bytes, lower-case hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored: str) -> bool:
    """Whether `token` hashes to `stored` (compared in constant time)."""
    return hmac.compare_digest(token_hash(token), stored)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
