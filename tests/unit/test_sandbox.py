"""The sandbox's life in a process: what it changes in moto, it gives back when it stops."""

from moto.ec2.models import EC2Backend, ec2_backends

from launchprov.providers.sandbox import start_sandbox, stop_sandbox


def test_stopping_the_sandbox_gives_moto_its_own_backend_back():
    try:
        start_sandbox("us-east-1", "scalacity_dev1", ["SSH"])
        assert ec2_backends.backend is not EC2Backend
        assert issubclass(ec2_backends.backend, EC2Backend)
    finally:
        stop_sandbox()
    assert ec2_backends.backend is EC2Backend
    assert not ec2_backends  # no account built by the sandbox survives it
