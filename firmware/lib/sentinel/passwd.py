"""Password hashes for NUT users: `sha256$<salt>$<hex>`, hex = sha256(salt + password).

The device never stores a plaintext password; the host tool hashes what the user types.
NUT sends passwords in clear over TCP anyway, so this protects the flash contents (a stolen or
dumped board), not the wire. Runs under MicroPython and CPython (hashlib, binascii, os).
"""
import binascii
import hashlib
import os

PREFIX = "sha256"
SALT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./+_-"
SALT_MAX = 32
_HEX = "0123456789abcdef"

# Checked by the validator: a hash of one of these (or of the user's own name) is refused.
WEAK = ("", "upsmon", "password", "secret", "admin", "pass", "changeme", "nut", "ups",
        "1234", "12345678", "monmaster", "monslave")


def _digest(salt, password):
    h = hashlib.sha256(salt.encode())
    h.update(password.encode())
    return binascii.hexlify(h.digest()).decode()


def new_salt():
    """16 random hex characters."""
    return binascii.hexlify(os.urandom(8)).decode()


def salt_ok(salt):
    if not 1 <= len(salt) <= SALT_MAX:
        return False
    for ch in salt:
        if ch not in SALT_CHARS:
            return False
    return True


def parse(stored):
    """(salt, hexdigest) of a well-formed hash string, else None."""
    if not isinstance(stored, str):
        return None
    parts = stored.split("$")
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    salt, hx = parts[1], parts[2]
    if not salt_ok(salt) or len(hx) != 64:
        return None
    for ch in hx:
        if ch not in _HEX:
            return None
    return salt, hx


def hash_password(password, salt=None):
    """The stored form of `password`; a fresh random salt unless one is given."""
    if salt is None:
        salt = new_salt()
    if not salt_ok(salt):
        raise ValueError("salt must be 1..32 of [A-Za-z0-9./+_-]")
    return "%s$%s$%s" % (PREFIX, salt, _digest(salt, password))


def check_password(stored, given):
    """True when `given` (plaintext from the client) matches the stored hash. The comparison
    time does not depend on where the digests differ."""
    p = parse(stored)
    if p is None or not isinstance(given, str):
        return False
    d = _digest(p[0], given)
    diff = 0
    for i in range(64):
        diff |= ord(d[i]) ^ ord(p[1][i])
    return diff == 0
