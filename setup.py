from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    long_description = readme.read()

requires = [
    "apache-libcloud>=3.8",
    "boto3>=1.34",
    "colander>=2.0",
    "limits[redis]>=4.0",
    "prometheus-client>=0.20",
    "redis>=5.0",
    "pyramid>=2.0",
    "waitress>=3.0",
    "zope.interface>=6.0",
]

sandbox_requires = [
    "moto[ec2,server]>=5.0",  # the server: the README's Libcloud example runs one
]

#: The Python client and the command line (launchprov.client, launchprov.cli): kept out of
#: the server's install.
client_requires = [
    "click>=8.1",
    "httpx>=0.27",
    "rich>=13.0",
]

#: Tracing with OpenTelemetry (launchprov.tracing = true): the SDK, and boto3's calls as spans.
#: The request and provider-call spans are launchprov's own (launchprov/tracing.py).
tracing_requires = [
    "opentelemetry-api>=1.30",
    "opentelemetry-sdk>=1.30",
    "opentelemetry-instrumentation-botocore>=0.51b0",
]

#: The OTLP exporter (OTEL_TRACES_EXPORTER=otlp, over HTTP): to send the traces to a collector.
tracing_otlp_requires = [
    *tracing_requires,
    "opentelemetry-exporter-otlp-proto-http>=1.30",
]

tests_require = [
    *sandbox_requires,
    *client_requires,
    *tracing_requires,
    "aiopenapi3>=0.8",
    "hypothesis>=6.100",
    "import-linter>=2.1",  # make lint, make test: the contracts of docs/architecture.rst
    "moto[server]>=5.0",
    "mutmut>=3.8,<4",  # make mutate; tools/mutation.py reads its results (the 3.x layout)
    # A client generated from the served document drives the sandbox; openapi-core validates
    # what went over the wire against the document (tests/e2e/test_generated_client_e2e.py).
    "openapi-core>=0.19",
    "openapi-python-client>=0.21",
    "openapi-spec-validator>=0.7",
    "pytest>=8.0",
    "pytest-xdist>=3.5",  # make test: one worker per core
    "PyYAML>=6.0",
    "requests-mock>=1.11",  # Apache Libcloud's recorded driver replies import it
    "ruff>=0.6",
    "schemathesis>=4.0",
    "WebTest>=3.0",
]

bench_require = [
    "matplotlib>=3.8",
    "moto[server]>=5.0",
    "numpy>=1.26",
    "py-spy>=0.3",
]

docs_require = [
    *client_requires,  # the command line's help texts are generated into docs/client.rst
    "sphinx>=7",  # alabaster, its default theme, comes with it
]

setup(
    name="launchprov",
    version="1.0.0",
    description="Internal REST API to launch and provision cloud instances",
    long_description=long_description,
    long_description_content_type="text/markdown",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Pyramid",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Application",
    ],
    python_requires=">=3.11",
    packages=find_packages(
        exclude=["tests", "tests.*", "benchmarks", "benchmarks.*", "docs*", "tools", "tools.*"]
    ),
    include_package_data=True,
    package_data={"launchprov": ["py.typed"]},
    zip_safe=False,
    install_requires=requires,
    extras_require={
        "sandbox": sandbox_requires,
        "client": client_requires,
        "tracing": tracing_requires,
        "tracing-otlp": tracing_otlp_requires,
        "testing": tests_require,
        "docs": docs_require,
        "bench": bench_require,
    },
    entry_points={
        "paste.app_factory": [
            "main = launchprov:main",
        ],
        # pserve's server: waitress, drained on SIGTERM (use = egg:launchprov#waitress).
        "paste.server_runner": [
            "waitress = launchprov.serving:serve",
        ],
        "console_scripts": [
            "launchprov = launchprov.cli:main",
            "launchprov-token = launchprov.scripts.token:main",
            "launchprov-reap = launchprov.scripts.reap:main",
            "launchprov-check = launchprov.scripts.check:main",
        ],
    },
)
