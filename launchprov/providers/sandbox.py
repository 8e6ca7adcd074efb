"""An in-process moto EC2 for development.ini: a sandbox that needs no cloud account.

moto's mock patches botocore for the whole process, so it serves every waitress thread. The
sandbox validates AMIs, instance types and key pairs the way EC2 does, so a bad AMI gets the
same 408 as it would in production.
"""

from __future__ import annotations

import os

from launchprov.settings import ConfigurationError

VALIDATION_FLAGS = {
    "MOTO_ENABLE_AMI_VALIDATION": "true",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
    "MOTO_ENABLE_KEYPAIR_VALIDATION": "true",
}

#: The IAM instance profile the sandbox holds.
SANDBOX_INSTANCE_PROFILE = "sandbox"

#: An instance type the sandbox never has capacity for (moto never runs out of any): a launch
#: of it answers EC2's InsufficientInstanceCapacity, so the capacity fallback can be tried.
SANDBOX_OUT_OF_CAPACITY = "p4d.24xlarge"


def _no_capacity(params=None, model=None, **kwargs):
    """botocore ``before-call`` of RunInstances: EC2's capacity error for the type that is out.

    Returning a reply here answers the call without sending it, as a real EC2 would answer.
    """
    sent = params.get("body") or {}  # the request's form fields, as EC2 would receive them
    if sent.get("InstanceType") != SANDBOX_OUT_OF_CAPACITY or sent.get("DryRun") == "true":
        return None
    from botocore.awsrequest import AWSResponse

    zone = sent.get("Placement.AvailabilityZone") or "the subnet's zone"
    message = (
        f"We currently do not have sufficient {SANDBOX_OUT_OF_CAPACITY} capacity in the "
        f"Availability Zone you requested ({zone})."
    )
    error = {"Code": "InsufficientInstanceCapacity", "Message": message}
    reply = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 500}}
    return AWSResponse("http://sandbox", 500, {}, None), reply


_HANDLER = ("before-call.ec2.RunInstances", _no_capacity)

_mock = None


def start_sandbox(region: str, key_name: str, security_groups) -> None:
    """Start moto's EC2 mock once per process, holding ``key_name`` and ``security_groups``."""
    global _mock
    if _mock is not None:
        return
    # moto reads these flags once, when moto.settings is first imported.
    os.environ.update(VALIDATION_FLAGS)
    try:
        import boto3
        import moto.settings
        from moto import mock_aws
    except ImportError:
        raise ConfigurationError(
            "launchprov.ec2.sandbox = true needs moto: pip install 'launchprov[sandbox]'"
        ) from None
    # ... so when moto was imported before us (a test run), set them where moto reads them.
    moto.settings.ENABLE_AMI_VALIDATION = True
    moto.settings.EC2_ENABLE_INSTANCE_TYPE_VALIDATION = True
    moto.settings.ENABLE_KEYPAIR_VALIDATION = True
    _mock = mock_aws()
    _mock.start()
    from botocore.handlers import BUILTIN_HANDLERS

    BUILTIN_HANDLERS.append(_HANDLER)  # every session made from now on (the provider's)
    client = boto3.client("ec2", region_name=region)
    client.create_key_pair(KeyName=key_name)
    for group in security_groups:
        client.create_security_group(GroupName=group, Description=f"launchprov sandbox {group}")
    # moto's account already has a default VPC with a subnet per zone; add the role a launch
    # can name (iam_instance_profile = sandbox).
    iam = boto3.client("iam", region_name=region)
    iam.create_instance_profile(InstanceProfileName=SANDBOX_INSTANCE_PROFILE)


def stop_sandbox() -> None:
    """Stop the mock (tests, which start and stop many apps in one process)."""
    global _mock
    if _mock is not None:
        from botocore.handlers import BUILTIN_HANDLERS

        if _HANDLER in BUILTIN_HANDLERS:
            BUILTIN_HANDLERS.remove(_HANDLER)
        _mock.stop()
        _mock = None
