"""Password hashing with scrypt, a memory-hard KDF. Sans-IO (CPU only: call it off the event loop).

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt hex>$<key hex>``, so the parameters travel with
the hash and can be raised later without invalidating existing users.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCRYPT_N = 2**14
"""CPU/memory cost. With r = 8 scrypt needs 128 × n × r bytes = 16 MiB per hash and about 50 ms
on a small machine: the interactive-login parameters recommended by the scrypt paper and OWASP."""

SCRYPT_R = 8
"""Block size (the scrypt paper's recommended value)."""

SCRYPT_P = 1
"""Parallelism: one lane; the cost comes from memory, not threads."""

SALT_BYTES = 16
"""128 bits of random salt per user: no two users share a hash, even with equal passwords."""

KEY_BYTES = 32
"""Length of the derived key."""

SCRYPT_MAXMEM = 64 * 1024 * 1024
"""Memory scrypt may use: above the 16 MiB the parameters need (OpenSSL's 32 MiB default would
refuse stronger stored parameters), bounded so a tampered config cannot ask for gigabytes."""

_PREFIX = "scrypt"


def hash_password(password: str) -> str:
    """A new salted hash of ``password`` in the stored format."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"{_PREFIX}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False for a malformed stored hash. Constant-time compare."""
    try:
        prefix, n, r, p, salt, key = stored.split("$")
        if prefix != _PREFIX:
            return False
        expected = bytes.fromhex(key)
        derived = _derive(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, OverflowError, TypeError):  # TypeError: n beyond an unsigned int
        return False
    return hmac.compare_digest(derived, expected)


def is_password_hash(value: str) -> bool:
    """Whether ``value`` looks like a hash this module wrote (config validation)."""
    parts = value.split("$")
    return len(parts) == 6 and parts[0] == _PREFIX and all(part.isalnum() for part in parts[1:])


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # ValueError for parameters OpenSSL refuses (n not a power of two, memory over maxmem).
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=KEY_BYTES
    )
