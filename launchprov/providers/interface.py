"""The provider contract: what views may ask of a cloud backend, in plain launchprov values.

Nothing here knows HTTP or any SDK. Adapters implement :class:`IProvider`, return plain values
and turn every failure of their SDK into a :class:`ProviderError`.
"""

from __future__ import annotations

import dataclasses

from zope.interface import Attribute, Interface

from launchprov.placement import region_of


@dataclasses.dataclass(frozen=True, slots=True)
class LaunchRequest:
    """A validated request to launch instances.

    Every field holds a value: the caller's, or the default. ``explicit`` names the fields the
    caller gave, so that an adapter can refuse a parameter it cannot honour when (and only when)
    the caller asked for it.
    """

    ami: str
    instance_type: str
    min_count: int = 1
    max_count: int = 1
    key_name: str = "scalacity_dev1"
    security_groups: tuple[str, ...] = ("SSH",)
    user_data: str | None = None
    placement: str = "us-east-1b"
    placement_group: str | None = None
    instance_initiated_shutdown_behavior: str = "terminate"
    ebs_optimized: bool = False
    explicit: frozenset[str] = frozenset()

    @property
    def region(self) -> str:
        """The EC2 region of ``placement`` (``us-east-1b`` -> ``us-east-1``)."""
        return region_of(self.placement)


class ProviderError(Exception):
    """A provider call failed: an error reply, a refused connection, a time-out, a bad reply.

    ``code`` is the provider's own error code where it gave one (``InvalidAMIID.NotFound``),
    otherwise one of the transport codes below. ``retryable`` says whether the same call may
    succeed later.
    """

    #: The endpoint could not be reached (refused connection, DNS failure, reset).
    UNREACHABLE = "EndpointUnreachable"
    #: The endpoint did not answer within the configured time-out.
    TIMEOUT = "Timeout"
    #: The endpoint answered with something that could not be parsed.
    MALFORMED_RESPONSE = "MalformedResponse"
    #: No usable credentials were found, or the provider refused them.
    AUTH_FAILURE = "AuthFailure"
    #: The SDK failed in a way it does not classify (a bug in it, or a reply it choked on).
    UNEXPECTED = "UnexpectedProviderError"

    def __init__(self, provider: str, code: str, message: str, *, retryable: bool = False):
        super().__init__(f"{provider}: {code}: {message}")
        self.provider = provider
        self.code = code
        self.message = message
        self.retryable = retryable


class UnsupportedParameters(Exception):
    """The caller explicitly set parameters that the active provider cannot honour.

    ``reasons`` maps each parameter name to why it cannot be honoured. Raised before any call
    to the provider is made.
    """

    def __init__(self, provider: str, reasons: dict[str, str]):
        super().__init__(f"{provider} cannot honour: {', '.join(sorted(reasons))}")
        self.provider = provider
        self.reasons = dict(reasons)


class IProvider(Interface):
    """A cloud backend that launches instances."""

    name = Attribute("Short name shown to callers in error bodies, e.g. 'ec2' or 'libcloud'.")
    image_id_pattern = Attribute(
        "A compiled regex that every image id must match, or None when the backend has no "
        "fixed format. Used by request validation, so a malformed id is a 400, not a 408."
    )

    def launch(request):
        """Launch instances for a :class:`LaunchRequest`; return their ids as a list of str.

        Launches at least ``min_count`` and at most ``max_count`` instances, or none. Raises
        :class:`UnsupportedParameters` before any call when the request explicitly sets a
        parameter the backend cannot honour, and :class:`ProviderError` on any failure of the
        backend.
        """
