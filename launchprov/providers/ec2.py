"""The boto3 adapter: EC2 through one shared client per region.

boto3 clients are thread-safe and sessions are not, so one session builds the clients under a
lock and every waitress thread shares them; a client costs hundreds of milliseconds to build.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from zope.interface import implementer

from launchprov.placement import region_of
from launchprov.providers.ec2_common import IMAGE_ID, is_retryable, split_security_groups
from launchprov.providers.interface import IProvider, LaunchRequest, ProviderError
from launchprov.settings import ConfigurationError

NAME = "ec2"


def run_instances_params(request: LaunchRequest) -> dict[str, Any]:
    """The RunInstances arguments for a launch request: every seed parameter, mapped."""
    placement = {"AvailabilityZone": request.placement}
    if request.placement_group:
        placement["GroupName"] = request.placement_group
    params: dict[str, Any] = {
        "ImageId": request.ami,
        "InstanceType": request.instance_type,
        "MinCount": request.min_count,
        "MaxCount": request.max_count,
        "KeyName": request.key_name,
        "Placement": placement,
        "InstanceInitiatedShutdownBehavior": request.instance_initiated_shutdown_behavior,
        "EbsOptimized": request.ebs_optimized,
    }
    names, ids = split_security_groups(request.security_groups)
    if names:
        params["SecurityGroups"] = names
    if ids:
        params["SecurityGroupIds"] = ids
    if request.user_data:
        params["UserData"] = request.user_data  # boto3 does the base64
    return params


def provider_error(exc: Exception) -> ProviderError:
    """Translate any botocore failure into a ProviderError."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = error.get("Code") or f"HTTP{status}"
        message = error.get("Message") or str(exc)
        return ProviderError(NAME, code, message, retryable=is_retryable(code, status))
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return ProviderError(NAME, ProviderError.TIMEOUT, str(exc), retryable=True)
    if isinstance(exc, EndpointConnectionError | HTTPClientError):
        return ProviderError(NAME, ProviderError.UNREACHABLE, str(exc), retryable=True)
    if isinstance(exc, ResponseParserError):
        # str(exc) carries the whole unparseable body (an HTML page): keep its first line.
        message = str(exc).splitlines()[0]
        return ProviderError(NAME, ProviderError.MALFORMED_RESPONSE, message, retryable=True)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return ProviderError(NAME, ProviderError.AUTH_FAILURE, str(exc), retryable=False)
    return ProviderError(NAME, ProviderError.UNEXPECTED, f"{type(exc).__name__}: {exc}")


@implementer(IProvider)
class EC2Provider:
    """Launches on EC2 (or any EC2-compatible endpoint) with boto3."""

    name = NAME
    image_id_pattern = IMAGE_ID

    def __init__(self, config: Config, endpoint_url: str | None = None, session=None):
        self._config = config
        self._endpoint_url = endpoint_url
        self._session = session or boto3.session.Session()
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> EC2Provider:
        default_region = region_of(settings["launchprov.defaults.placement"])
        if settings["launchprov.ec2.sandbox"]:
            if settings["launchprov.ec2.endpoint_url"]:
                raise ConfigurationError(
                    "launchprov.ec2.sandbox = true and launchprov.ec2.endpoint_url are exclusive"
                )
            from launchprov.providers.sandbox import start_sandbox

            start_sandbox(
                region=default_region,
                key_name=settings["launchprov.defaults.key_name"],
                security_groups=settings["launchprov.defaults.security_groups"],
            )
        config = Config(
            connect_timeout=settings["launchprov.ec2.connect_timeout"],
            read_timeout=settings["launchprov.ec2.read_timeout"],
            retries={
                "total_max_attempts": settings["launchprov.ec2.max_attempts"],
                "mode": settings["launchprov.ec2.retry_mode"],
            },
        )
        provider = cls(config, endpoint_url=settings["launchprov.ec2.endpoint_url"])
        provider.client(default_region)  # built now, so that no request pays for it
        return provider

    def client(self, region: str):
        """The shared EC2 client of ``region``, built on first use."""
        client = self._clients.get(region)
        if client is None:
            with self._lock:
                client = self._clients.get(region)
                if client is None:
                    client = self._session.client(
                        "ec2",
                        region_name=region,
                        endpoint_url=self._endpoint_url,
                        config=self._config,
                    )
                    self._clients[region] = client
        return client

    def launch(self, request: LaunchRequest) -> list[str]:
        params = run_instances_params(request)
        try:
            reply = self.client(request.region).run_instances(**params)
        except Exception as exc:  # anything the SDK raises is a provider failure
            raise provider_error(exc) from exc
        return [instance["InstanceId"] for instance in reply["Instances"]]
