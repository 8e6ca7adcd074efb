"""What request validation and the use cases raise: plain exceptions, no Pyramid here.

:mod:`launchprov.errors` turns each into the one error body (its table says with which status);
:mod:`launchprov.params` and :mod:`launchprov.schemas` raise them without knowing HTTP.
"""

from __future__ import annotations


def detail(location: str, name: str, description: str) -> dict[str, str]:
    """One entry of ``details``: where (body, querystring, header, path), which name, what."""
    return {"location": location, "name": name, "description": description}


class APIError(Exception):
    """A request launchprov refuses, with the status and details of the answer."""

    status = 400

    def __init__(self, message: str, details: list[dict[str, str]] | None = None, status=None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        if status is not None:
            self.status = status


class InvalidParameters(APIError):
    """One or more parameters are missing or invalid; ``details`` names each one."""


class UnsupportedMediaType(APIError):
    status = 415


class BodyTooLarge(APIError):
    status = 413
