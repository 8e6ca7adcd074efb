"""An in-process moto EC2 for development.ini: a sandbox that needs no cloud account.

moto's mock patches botocore for the whole process, so it serves every waitress thread. The
sandbox validates AMIs, instance types, key pairs and security groups the way EC2 does, so a
bad AMI or an unknown group gets the same 408 as it would in production.

It behaves as one account that holds the deployment's default key pair and security groups in
every region moto knows. moto builds a region's backend on the first call into that region, and
again after each reset; the sandbox's backend class seeds itself then, so a region costs
nothing until it is used (seeding all of moto's 46 regions at start would take about 10 s).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from launchprov.providers.ec2_common import split_security_groups
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

_mock = None


def sandbox_backend(key_name: str, security_groups: Iterable[str]) -> type:
    """moto's EC2 backend class, made to hold ``key_name`` and the named ``security_groups``
    from its creation, and to refuse unknown security groups as EC2 does."""
    import moto.ec2.urls
    from moto.ec2.exceptions import EC2ClientError, InvalidSecurityGroupNotFoundError
    from moto.ec2.models import EC2Backend

    # Only names can be seeded: a group's id is chosen by EC2 (here, by moto).
    group_names = tuple(split_security_groups(security_groups)[0])

    class SandboxEC2Backend(EC2Backend):
        def __init__(self, region_name: str, account_id: str):
            super().__init__(region_name, account_id)
            self.create_key_pair(key_name, "rsa", {})
            for name in group_names:
                self.create_security_group(name, f"launchprov sandbox {name}")

        @property
        def _url_module(self):
            # moto finds a backend's routes by the module of its class: this one is not moto's.
            return moto.ec2.urls

        def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
            # moto looks group names up without checking the answer, then fails on None with
            # an AttributeError (an HTML 500); EC2 answers InvalidGroup.NotFound.
            for name in security_group_names:
                if self.get_security_group_by_name_or_id(name) is None:
                    raise InvalidSecurityGroupNotFoundError(name)
            if kwargs.get("instance_type") == SANDBOX_OUT_OF_CAPACITY:
                zone = kwargs.get("placement") or "the subnet's zone"
                raise EC2ClientError(
                    "InsufficientInstanceCapacity",
                    f"We currently do not have sufficient {SANDBOX_OUT_OF_CAPACITY} capacity "
                    f"in the Availability Zone you requested ({zone}).",
                )
            return super().run_instances(image_id, count, user_data, security_group_names, **kwargs)

    return SandboxEC2Backend


def start_sandbox(region: str, key_name: str, security_groups) -> None:
    """Start moto's EC2 mock once per process, holding ``key_name`` and ``security_groups`` in
    every region; ``region`` (the default placement's) is made ready now, the others on first
    use."""
    global _mock
    if _mock is not None:
        return
    # moto reads these flags once, when moto.settings is first imported.
    os.environ.update(VALIDATION_FLAGS)
    try:
        import boto3
        import moto.settings
        from moto import mock_aws
        from moto.ec2.models import ec2_backends
    except ImportError:
        raise ConfigurationError(
            "launchprov.ec2.sandbox = true needs moto: pip install 'launchprov[sandbox]'"
        ) from None
    # ... so when moto was imported before us (a test run), set them where moto reads them.
    moto.settings.ENABLE_AMI_VALIDATION = True
    moto.settings.EC2_ENABLE_INSTANCE_TYPE_VALIDATION = True
    moto.settings.ENABLE_KEYPAIR_VALIDATION = True
    ec2_backends.backend = sandbox_backend(key_name, security_groups)
    _mock = mock_aws()
    _mock.start()
    # Each account is rebuilt, with the sandbox's class, on first use. (Starting the mock has
    # just reset moto, unless a mock was already running in this process: a test's.)
    ec2_backends.clear()
    # The default region is built now, so that the first launch does not pay for it.
    boto3.client("ec2", region_name=region).describe_key_pairs(KeyNames=[key_name])
    # moto's accounts have a default VPC with a subnet in every zone; add the role a launch
    # can name (iam_instance_profile = sandbox). IAM is global: one for every region.
    iam = boto3.client("iam", region_name=region)
    iam.create_instance_profile(InstanceProfileName=SANDBOX_INSTANCE_PROFILE)


def stop_sandbox() -> None:
    """Stop the mock (tests, which start and stop many apps in one process)."""
    global _mock
    if _mock is not None:
        from moto.ec2.models import EC2Backend, ec2_backends

        ec2_backends.backend = EC2Backend
        # No backend of the sandbox's class outlives it; and dropped now, moto's reset does not
        # rebuild each of them only to throw them away.
        ec2_backends.clear()
        _mock.stop()
        _mock = None
