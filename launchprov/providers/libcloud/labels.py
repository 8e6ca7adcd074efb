"""GCE labels: launchprov's tags within GCE's rules, and back.

GCE label keys and values hold at most 63 characters, only lower-case letters, digits, ``-``
and ``_``, and a key starts with a letter. launchprov's tags do not fit: ``launchprov:*`` keys
have a colon, a client-token launch's ``launchprov:request-hash`` is 64 hex digits, and a
caller's tag values and client token may hold any printable character. Each is written so that
it fits, reversibly where it can be, always deterministically:

* a key or value within the rules is written as it is (``launchprov:`` keys as ``launchprov-``);
* a value of lower-case hex digits too long to fit (the request hash): ``x--`` and its bytes in
  base32, read back as the same hex digits;
* anything else of at most 37 bytes (UTF-8): ``b--`` and its bytes in base32, read back as it
  was;
* anything longer: ``h--`` and the 52 base32 characters of its SHA-256, read back as written (that
  label cannot be decoded). A lookup by such a value still finds it, since the adapter compares
  :func:`canonical` forms: what a value reads back as once written.

A key or value that would read as one of these forms (a ``b--`` written by a caller, a key
starting ``launchprov-``) is itself encoded, so that what reads back is what was written.
"""

from __future__ import annotations

import base64
import hashlib
import re

#: GCE's limit on the length of a label key and of a label value.
MAX_LENGTH = 63
_VALUE = re.compile(r"\A[a-z0-9_-]{0,63}\Z")
_KEY = re.compile(r"\A[a-z][a-z0-9_-]{0,62}\Z")
_HEX = re.compile(r"\A(?:[0-9a-f]{2})+\Z")
_MARKERS = ("x--", "b--", "h--")

#: launchprov's own tag keys, and how GCE (no ':') holds them.
OWN_PREFIX, LABEL_PREFIX = "launchprov:", "launchprov-"


def _base32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def _unbase32(text: str) -> bytes:
    return base64.b32decode(text.upper() + "=" * (-len(text) % 8))


def _encoded(text: str) -> str:
    """``b--`` and the bytes, or ``h--`` and a digest when they cannot fit."""
    reversible = "b--" + _base32(text.encode())
    if len(reversible) <= MAX_LENGTH:
        return reversible
    return "h--" + _base32(hashlib.sha256(text.encode()).digest())  # 52 characters: it fits


def encode_value(value: str) -> str:
    """A tag value as a GCE label value."""
    if _VALUE.match(value) and not value.startswith(_MARKERS):
        return value
    if _HEX.match(value) and len(value) // 2 * 8 <= (MAX_LENGTH - 3) * 5:
        return "x--" + _base32(bytes.fromhex(value))
    return _encoded(value)


def decode_value(label: str) -> str:
    """What :func:`encode_value` was given, where it can be known; the label otherwise."""
    try:
        if label.startswith("x--"):
            return _unbase32(label[3:]).hex()
        if label.startswith("b--"):
            return _unbase32(label[3:]).decode()
    except ValueError:  # not one launchprov wrote: as it is
        return label
    return label


def canonical(value: str) -> str:
    """What a tag value reads back as once written: itself, unless it had to be hashed."""
    return decode_value(encode_value(value))


def encode_key(key: str) -> str:
    """A tag key as a GCE label key."""
    if key.startswith(OWN_PREFIX):
        own = LABEL_PREFIX + key[len(OWN_PREFIX) :]
        if _KEY.match(own):
            return own
    elif _KEY.match(key) and not key.startswith((LABEL_PREFIX, *_MARKERS)):
        return key
    return _encoded(key)


def decode_key(label: str) -> str:
    """What :func:`encode_key` was given, where it can be known; the label otherwise."""
    if label.startswith(LABEL_PREFIX):
        return OWN_PREFIX + label[len(LABEL_PREFIX) :]
    return decode_value(label) if label.startswith("b--") else label


def encode(tags: dict[str, str]) -> dict[str, str]:
    """Tags as GCE labels."""
    return {encode_key(key): encode_value(value) for key, value in tags.items()}
