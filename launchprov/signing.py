"""Signed tags: proof that launchprov launched an instance, for the reaper to trust.

Tags are the only record launchprov keeps, and anyone who may tag an instance can write
``launchprov:caller`` and a past ``launchprov:expires-at`` on it. With a deployment secret
(``launchprov.tag_signing_key``) a launch also tags its instances :data:`SIGNATURE_TAG`, an
HMAC-SHA256 over its provenance tags, and ``launchprov-reap`` terminates only instances whose
signature holds.

What is signed, exactly: the message ``launchprov-tags-v1`` and a new line, then the JSON object
of the :data:`SIGNED_TAGS` the instance carries (keys sorted, no spaces, ASCII, as
``json.dumps(..., sort_keys=True, separators=(",", ":"))`` writes it), in UTF-8; the tag holds
``v1:`` and the digest in lower-case hex. Not signed:

* the lease (``launchprov:expires-at``): PUT and DELETE /v1/instances/{id}/expiry change it
  after the launch, and a caller who may tag an instance may as well terminate it;
* the instance id, which is not known before the launch (signing it would cost a CreateTags per
  instance after the launch, and an unsigned gap): tags copied whole from a signed instance
  onto another (the console's "Launch more like this") carry a signature that holds, and such a
  copy is reaped with its lease, as the original is.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping

from launchprov.launching import CALLER_TAG, CLIENT_TOKEN_TAG, REQUEST_HASH_TAG, REQUEST_ID_TAG

SIGNATURE_TAG = "launchprov:signature"
#: The tags a signature covers: who launched, in which launch, and for a client-token launch
#: its token and the digest of its parameters.
SIGNED_TAGS = (CALLER_TAG, REQUEST_ID_TAG, CLIENT_TOKEN_TAG, REQUEST_HASH_TAG)
_DOMAIN = b"launchprov-tags-v1\n"
_VERSION = "v1:"


def canonical(tags: Mapping[str, str]) -> bytes:
    """The signed message of an instance's ``tags``."""
    signed = {key: tags[key] for key in SIGNED_TAGS if key in tags}
    return _DOMAIN + json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


def signature(tags: Mapping[str, str], key: str) -> str:
    """The :data:`SIGNATURE_TAG` value of ``tags`` under ``key``."""
    digest = hmac.new(key.encode(), canonical(tags), hashlib.sha256).hexdigest()
    return f"{_VERSION}{digest}"


def signed(tags: Mapping[str, str], key: str) -> dict[str, str]:
    """``tags`` with their signature added."""
    return {**tags, SIGNATURE_TAG: signature(tags, key)}


def is_signed(tags: Mapping[str, str], key: str) -> bool:
    """Whether ``tags`` carry launchprov's caller tag and a signature under ``key`` that holds."""
    given = tags.get(SIGNATURE_TAG)
    if given is None or CALLER_TAG not in tags:
        return False
    return hmac.compare_digest(given.encode(), signature(tags, key).encode())


def signer(key: str | None) -> Callable[[Mapping[str, str]], dict[str, str]] | None:
    """What a launch signs its tags with (:func:`launchprov.launching.traced`): None without a
    key."""
    return None if key is None else functools.partial(signed, key=key)
