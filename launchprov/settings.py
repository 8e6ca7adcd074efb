"""Every ``launchprov.*`` setting: declared once with its default, type and meaning.

Values come from the .ini (PasteDeploy hands them to ``main``) and can be overridden by
environment variables: ``LAUNCHPROV_`` and the key after ``launchprov.``, upper-cased, with dots
and dashes turned into underscores (``launchprov.ec2.endpoint_url`` ->
``LAUNCHPROV_EC2_ENDPOINT_URL``). They are parsed into typed values at startup; a bad value or an
unknown key stops startup with a message that names the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

PREFIX = "launchprov."
ENV_PREFIX = "LAUNCHPROV_"
#: The variables of the client and the command line (launchprov.client): where the service is
#: and the caller's token. They share the prefix but are not settings, so the service ignores
#: them rather than refusing to start in a shell that uses the command line.
CLIENT_ENV_VARS = frozenset({"LAUNCHPROV_URL", "LAUNCHPROV_TOKEN"})

#: The scopes of the ownership rules (see, act_on), each wider than the one before it.
SCOPES = ("own", "launchprov", "all")


class ConfigurationError(Exception):
    """A setting is unknown, missing or has a value that cannot be used."""


# -- parsers: text in, typed value out, ValueError with a readable reason otherwise ----------


def text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("expected a non-empty value")
    return value


def optional_text(value: str) -> str | None:
    return value.strip() or None


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError("expected true or false")


def positive_int(value: str) -> int:
    number = int(value.strip())
    if number < 1:
        raise ValueError("expected a whole number of at least 1")
    return number


def optional_port(value: str) -> int | None:
    if not value.strip():
        return None
    number = int(value.strip())
    if not 0 < number < 65536:
        raise ValueError("expected a port number from 1 to 65535")
    return number


def optional_boolean(value: str) -> bool | None:
    return boolean(value) if value.strip() else None


def positive_float(value: str) -> float:
    number = float(value.strip())
    if not number > 0:
        raise ValueError("expected a number of seconds greater than 0")
    return number


def non_negative_float(value: str) -> float:
    number = float(value.strip())
    if not number >= 0:
        raise ValueError("expected a number of seconds, 0 or more")
    return number


def word_list(value: str) -> tuple[str, ...]:
    """Words separated by white space, commas or new lines."""
    return tuple(word for word in value.replace(",", " ").split() if word)


def non_empty_word_list(value: str) -> tuple[str, ...]:
    words = word_list(value)
    if not words:
        raise ValueError("expected at least one name")
    return words


def optional_word_list(value: str) -> tuple[str, ...] | None:
    """Words as :func:`word_list`; None when there are none."""
    return word_list(value) or None


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    parse.__doc__ = f"one of {', '.join(choices)}"
    return parse


def optional_positive_int(value: str) -> int | None:
    return positive_int(value) if value.strip() else None


def optional_positive_float(value: str) -> float | None:
    return positive_float(value) if value.strip() else None


def optional_one_of(*choices: str) -> Callable[[str], str | None]:
    """One of ``choices``, or empty for None (no rule)."""
    parse_choice = one_of(*choices)

    def parse(value: str) -> str | None:
        return parse_choice(value) if value.strip() else None

    parse.__doc__ = f"empty, or one of {', '.join(choices)}"
    return parse


#: The shortest tag-signing key: 16 characters (``openssl rand -hex 32`` makes one of 64).
MIN_SIGNING_KEY = 16


def optional_signing_key(value: str) -> str | None:
    """Empty for None (no key), or a secret of at least 16 characters."""
    value = value.strip()
    if value and len(value) < MIN_SIGNING_KEY:
        raise ValueError(
            f"expected at least {MIN_SIGNING_KEY} characters (openssl rand -hex 32 makes a key)"
        )
    return value or None


def non_negative_int(value: str) -> int:
    number = int(value.strip())
    if number < 0:
        raise ValueError("expected a whole number of at least 0")
    return number


def rate_limits(value: str) -> tuple:
    """``limits``' notation, several separated by ``;``: ``20/second;600/minute``. Empty: none."""
    from limits import parse_many

    if not value.strip():
        return ()
    try:
        return tuple(parse_many(value.strip()))
    except ValueError:
        raise ValueError(
            "expected limits such as 20/second;600/minute (AMOUNT/second, minute, hour or day, "
            "separated by ;)"
        ) from None


#: The storages of rate-limit counters that launchprov's dependencies can reach.
RATE_LIMIT_STORAGES = ("memory://", "redis://", "rediss://", "redis+unix://")


def rate_limit_storage(value: str) -> str:
    value = value.strip()
    if not value.startswith(RATE_LIMIT_STORAGES):
        raise ValueError(f"expected a URI starting with {', '.join(RATE_LIMIT_STORAGES)}")
    return value


#: A calling service's name: in a token line, a policy key, a tag and a log line.
CALLER_NAME = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
_DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")


def token_lines(value: str) -> dict[str, str]:
    """Lines of ``<caller-name> <sha256 hex digest of the token>``: digest -> caller name.

    A caller may have several lines (several tokens), so that a token can be rotated without
    downtime: add the new one, hand it out, then remove the old one.
    """
    digests: dict[str, str] = {}
    for number, line in enumerate(value.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if "," in line:  # neither a caller name nor a digest holds one: a list on one line
            raise ValueError(
                f"line {number}: tokens are one per line, '<caller-name> <sha256 hex digest>' "
                "each, not separated by commas"
            )
        if len(words) != 2:
            raise ValueError(
                f"line {number}: expected '<caller-name> <sha256 hex digest>', one per line"
            )
        caller, digest = words[0], words[1].lower()
        if not CALLER_NAME.match(caller):
            raise ValueError(f"line {number}: caller names are 1-64 letters, digits, _ or -")
        if not _DIGEST.match(digest):
            raise ValueError(f"line {number}: expected 64 hex digits of a SHA-256 digest")
        if digest in digests:
            raise ValueError(f"line {number}: this digest is given twice")
        digests[digest] = caller
    return digests


def json_object(value: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError("expected a JSON object")
    return parsed


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    default: str
    parse: Callable[[str], Any]
    doc: str
    #: Its value is never shown in a message (a token line pasted with the token in it, a key).
    secret: bool = False

    @property
    def env_var(self) -> str:
        return env_var(self.key)


def env_var(key: str) -> str:
    """The environment variable that overrides ``key``."""
    suffix = key[len(PREFIX) :] if key.startswith(PREFIX) else key
    return ENV_PREFIX + suffix.upper().replace(".", "_").replace("-", "_")


# Defaults are written as they would be in the .ini, so that the parser checks them too.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "launchprov.provider",
        "ec2",
        text,
        "The cloud backend: 'ec2' (boto3), 'libcloud' (Apache Libcloud), or the dotted path "
        "of a class implementing launchprov.providers.interface.IProvider.",
    ),
    Setting(
        "launchprov.auth.enabled",
        "true",
        boolean,
        "Require a bearer token of a known caller on every route but /healthz, /readyz, "
        "/metrics and /v1/openapi.json. On by default; development.ini turns it off.",
    ),
    Setting(
        "launchprov.auth.tokens",
        "",
        token_lines,
        "Lines of '<caller-name> <sha256 hex digest of the token>', one per calling service "
        "(launchprov-token CALLER prints one). Digests only: the .ini holds no secret.",
        secret=True,
    ),
    Setting(
        "launchprov.auth.failure_limit",
        "",
        rate_limits,
        "Failed authentications (a request whose bearer token is not valid) allowed from one "
        "client address, in the notation of the limits library (10/minute). Past it, every "
        "request from that address that needs a token is answered 429 with Retry-After, a "
        "valid token included, until the window lets one more through; counted in "
        "launchprov.ratelimit.storage_uri (shared through Redis). The client address is "
        "REMOTE_ADDR: behind a proxy, have waitress take it from X-Forwarded-For "
        "(trusted_proxy). Empty: no limit.",
    ),
    Setting(
        "launchprov.metrics.tokens",
        "",
        token_lines,
        "Lines of '<name> <sha256 hex digest of the token>' (launchprov-token NAME prints "
        "one), like launchprov.auth.tokens: when set, GET /metrics needs one of these tokens "
        "(401 without); they open /metrics only, no other route. Empty: /metrics is open to "
        "every caller.",
        secret=True,
    ),
    Setting(
        "launchprov.metrics.caller_labels",
        "name",
        one_of("name", "hash", "drop"),
        "What the caller label of the metrics by caller holds: name (the caller's name), "
        "hash (the first 8 hex digits of the SHA-256 of the name, logged at startup for each "
        "caller) or drop (no caller label).",
    ),
    Setting(
        "launchprov.policy.max_count",
        "",
        optional_positive_int,
        "Largest max_count a launch request may ask for. Empty: no limit.",
    ),
    Setting(
        "launchprov.policy.instance_types",
        "",
        word_list,
        "Instance types a launch may use: names or globs (t3.* m5.large). Empty: any.",
    ),
    Setting(
        "launchprov.policy.amis",
        "",
        word_list,
        "AMIs (images) a launch may use: ids or globs. Empty: any.",
    ),
    Setting(
        "launchprov.policy.placements",
        "",
        word_list,
        "Availability zones a launch may use: names or globs (us-east-1*). Empty: any.",
    ),
    Setting(
        "launchprov.policy.subnets",
        "",
        word_list,
        "VPC subnets a launch may name (subnet_id, and each fallback's): ids or globs. Empty: any.",
    ),
    Setting(
        "launchprov.policy.iam_instance_profiles",
        "",
        word_list,
        "IAM instance profiles a launch may name: names, ARNs, or globs. Empty: any.",
    ),
    Setting(
        "launchprov.policy.max_root_volume_size",
        "",
        optional_positive_int,
        "Largest root_volume_size (GiB) a launch may ask for. Empty: no limit.",
    ),
    Setting(
        "launchprov.policy.metadata_tokens",
        "",
        optional_one_of("required"),
        "required: a launch may not ask for metadata_tokens = optional (IMDSv1). Empty: no rule.",
    ),
    Setting(
        "launchprov.policy.spot",
        "allowed",
        one_of("allowed", "required", "forbidden"),
        "Spot instances: allowed (either), required (spot must be true) or forbidden "
        "(spot must be false).",
    ),
    Setting(
        "launchprov.capacity.unavailable_ttl",
        "180",
        positive_float,
        "Seconds an offering (instance type, zone) that answered a capacity error is skipped by "
        "launches with a fallback, without a call. Per process.",
    ),
    Setting(
        "launchprov.policy.max_expires_in",
        "",
        optional_positive_int,
        "Longest lease (expires_in, seconds) a launch or PUT /v1/instances/{id}/expiry may ask "
        "for; a longer one is a 403. Empty: up to a year.",
    ),
    Setting(
        "launchprov.policy.require_expiry",
        "false",
        boolean,
        "true: every launch must give expires_in, and a lease cannot be removed (403): for CI "
        "callers, say.",
    ),
    Setting(
        "launchprov.policy.see",
        "own",
        one_of(*SCOPES),
        "Which instances a caller may read (GET /v1/instances/{id}, GET /v1/instances): 'own' "
        "(tagged launchprov:caller = the caller), 'launchprov' (launched through launchprov by "
        "anyone) or 'all' (every instance of the account). Another instance is a 404.",
    ),
    Setting(
        "launchprov.policy.act_on",
        "own",
        one_of(*SCOPES),
        "Which instances a caller may stop, start, reboot, terminate and change the expiry of: "
        "'own', 'launchprov' or 'all', no wider than launchprov.policy.see. An instance the "
        "caller may see but not act on is a 403.",
    ),
    Setting(
        "launchprov.tag_signing_key",
        "",
        optional_signing_key,
        "A secret (at least 16 characters; openssl rand -hex 32) with which every launch signs "
        "its launchprov tags (launchprov:signature, an HMAC-SHA256): launchprov-reap "
        "terminates only instances whose signature holds, and refuses to run without a key "
        "unless given --trust-unsigned. The service and the reaper need the same key. It also "
        "keys the seal that binds a listing's next token to its caller and query (every "
        "process of a deployment needs the same key). Empty: launches are not signed, and a "
        "page token's seal is an unkeyed digest.",
        secret=True,
    ),
    Setting(
        "launchprov.retry_after",
        "2",
        positive_int,
        "Seconds in the Retry-After header of a 408 whose failure a retry can mend.",
    ),
    Setting(
        "launchprov.max_body_size",
        "65536",
        positive_int,
        "Largest request body accepted, in bytes; a larger one is answered with 413.",
    ),
    Setting(
        "launchprov.log_format",
        "text",
        one_of("text", "json"),
        "Log lines as text, or as one JSON object per line (for a log pipeline). Applies to "
        "every handler of the root logger that the .ini's logging section sets up.",
    ),
    Setting(
        "launchprov.readiness_timeout",
        "2",
        positive_float,
        "Seconds that GET /readyz waits for its one cheap provider call.",
    ),
    Setting(
        "launchprov.readiness_cache",
        "5",
        non_negative_float,
        "Seconds GET /readyz answers from what the provider last did (a provider call that "
        "succeeded, or /readyz's own call) before it makes its one cheap call again: one call "
        "per period at most, however many probes, and one probe at a time makes it (the "
        "others get the last answer at once). A cloud that stops answering turns /readyz 503 "
        "within readiness_cache + readiness_timeout. 0: a call for every probe that finds "
        "none in progress. Under egg:launchprov#waitress /readyz is answered in the server's "
        "loop thread, which never waits for that call (a thread of its own makes it) and never "
        "asks the rate-limit storage: its reachability is checked at most once a period too, "
        "by a thread of its own.",
    ),
    Setting(
        "launchprov.startup_checks",
        "true",
        boolean,
        "At startup, check the configuration against the cloud without launching (what "
        "launchprov-check CONFIG.ini prints: the credentials, the default zone, key pair and "
        "security groups, the images of launchprov.policy.amis, a dry-run launch, the "
        "rate-limit Redis), in the background, each call within launchprov.readiness_timeout; "
        "each failed check is logged as one WARNING line and the service starts anyway. Never "
        "for the in-process sandbox.",
    ),
    Setting(
        "launchprov.provider_concurrency",
        "",
        optional_positive_int,
        "Most provider calls in progress at once in one process while the provider stalls "
        "(the bulkhead's base slots; see launchprov.provider_stall_timeout). Empty: "
        "waitress's threads minus a reserve of max(2, threads // 4), read from the .ini's "
        "[server:main] when the app is served from one (else waitress's default, 4 threads). "
        "It must leave at least one thread: the reserved threads answer /healthz, /readyz, "
        "/metrics and requests that make no provider call while the provider stalls. While "
        "the provider answers, the reserve is lent (launchprov.provider_lend_reserve): every "
        "thread may hold a provider call under egg:launchprov#waitress (which answers /healthz, "
        "/metrics and /readyz in its loop thread), every thread but one under another server.",
    ),
    Setting(
        "launchprov.provider_lend_reserve",
        "true",
        boolean,
        "While the provider answers, lend the reserved threads to provider calls: up to "
        "waitress's threads calls at once under egg:launchprov#waitress (the probes need no "
        "worker thread: launchprov.serving's probe lane), threads minus one under another server "
        "(one thread is never lent), back to "
        "launchprov.provider_concurrency once the provider stalls. false: never more than "
        "launchprov.provider_concurrency, whatever the provider does.",
    ),
    Setting(
        "launchprov.provider_stall_timeout",
        "5",
        positive_float,
        "Seconds with provider calls in progress and none answered (by a result or an error "
        "reply; a transport failure or time-out is no answer) after which the provider counts "
        "as stalled: the lent threads are taken back, a request that finds the base slots "
        "taken is answered 503 with Retry-After at once. Above the provider's usual call "
        "time (EC2 launches in 1-3 s), so that calls sent together and still running are not "
        "taken for a stall.",
    ),
    Setting(
        "launchprov.provider_queue_timeout",
        "",
        optional_positive_float,
        "Seconds a request may wait for a free provider slot while calls keep answering; "
        "after that it is answered 503 with Retry-After (nothing sent). Empty: "
        "0.4 x launchprov.request_deadline (10 s of the 25 s default), so that a queued "
        "request still has most of its deadline for its call. A request stops waiting, 503, "
        "when no call has answered for 0.5 s (it holds a thread the health checks may need), "
        "and a stalled provider refuses at once (launchprov.provider_stall_timeout).",
    ),
    Setting(
        "launchprov.request_deadline",
        "25",
        positive_float,
        "Seconds within which a request that calls the provider is answered, whatever the "
        "provider does: waiting for a slot, a launch's client-token lookup, an action's "
        "ownership check and the SDK's own retries included (one deadline for all of a "
        "request's provider calls). When it runs out the answer is a 408 Timeout. Keep it "
        "below the "
        "load balancer's idle time-out, or the balancer cuts the connection first.",
    ),
    Setting(
        "launchprov.drain_delay",
        "5",
        non_negative_float,
        "Seconds a process served by egg:launchprov#waitress keeps accepting after SIGTERM "
        "while /healthz and /readyz answer 503 draining, so that the load balancer's health "
        "checks take it out before it stops accepting (deploy/haproxy.cfg: two failed checks "
        "2 s apart). Then it closes its listening socket, finishes the requests in progress "
        "(for at most launchprov.request_deadline) and exits. 0: stop accepting at once.",
    ),
    Setting(
        "launchprov.defaults.key_name",
        "",
        optional_text,
        "key_name used when a launch request does not give one. Empty: the cloud's own "
        "default (on EC2, the seed's scalacity_dev1; elsewhere none is sent).",
    ),
    Setting(
        "launchprov.defaults.security_groups",
        "",
        optional_word_list,
        "security_groups used when a launch request does not give them (names or sg- ids, "
        "separated by spaces or commas). Empty: the cloud's own default (on EC2, the seed's "
        "SSH; elsewhere none is sent).",
    ),
    Setting(
        "launchprov.defaults.placement",
        "",
        optional_text,
        "placement used when a launch request does not give one: on EC2 an availability "
        "zone, on another cloud its own zone or location name (checked against the cloud's "
        "catalog at startup). Empty: the cloud's own default (on EC2, the seed's us-east-1b; "
        "elsewhere none is sent and the cloud chooses).",
    ),
    Setting(
        "launchprov.defaults.metadata_tokens",
        "required",
        one_of("required", "optional"),
        "metadata_tokens used when a launch request does not give it: required (IMDSv2 "
        "only) or optional (IMDSv1 too).",
    ),
    Setting(
        "launchprov.ec2.sandbox",
        "false",
        boolean,
        "Start an in-process moto EC2 with the app, holding the default key pair and security "
        "group: for development without a cloud account. Never in production.",
    ),
    Setting(
        "launchprov.ec2.endpoint_url",
        "",
        optional_text,
        "EC2 endpoint URL for every region (an EC2-compatible service, moto, a proxy). Empty "
        "means AWS's own endpoint for the region.",
    ),
    Setting(
        "launchprov.ec2.connect_timeout",
        "5",
        positive_float,
        "Seconds to wait for a connection to the EC2 endpoint.",
    ),
    Setting(
        "launchprov.ec2.read_timeout",
        "20",
        positive_float,
        "Seconds to wait for each reply from the EC2 endpoint.",
    ),
    Setting(
        "launchprov.ec2.max_attempts",
        "3",
        positive_int,
        "Attempts per EC2 call, the first included (botocore's retry max_attempts).",
    ),
    Setting(
        "launchprov.ec2.max_pool_connections",
        "16",
        positive_int,
        "Connections each EC2 client keeps open: at least the provider calls that run at once "
        "(waitress's threads - 1), or concurrent calls open and throw away connections of "
        "their own.",
    ),
    Setting(
        "launchprov.ec2.retry_mode",
        "standard",
        one_of("standard", "adaptive", "legacy"),
        "botocore's retry mode.",
    ),
    Setting(
        "launchprov.libcloud.driver",
        "ec2",
        text,
        "Libcloud compute provider name: ec2, dummy, openstack, ...",
    ),
    Setting(
        "launchprov.libcloud.key",
        "",
        optional_text,
        "The driver's key (for EC2: the access key id). Prefer LAUNCHPROV_LIBCLOUD_KEY.",
        secret=True,
    ),
    Setting(
        "launchprov.libcloud.secret",
        "",
        optional_text,
        "The driver's secret (for EC2: the secret access key). Set it with "
        "LAUNCHPROV_LIBCLOUD_SECRET, never in an .ini.",
        secret=True,
    ),
    Setting(
        "launchprov.libcloud.region",
        "",
        optional_text,
        "Region for drivers that take one. For the EC2 driver the region comes from each "
        "request's placement, and this is only the region of calls that have no placement.",
    ),
    Setting(
        "launchprov.libcloud.host",
        "",
        optional_text,
        "Host name of the endpoint, overriding the driver's own (for example 127.0.0.1).",
    ),
    Setting(
        "launchprov.libcloud.port",
        "",
        optional_port,
        "Port of the endpoint, overriding the driver's own.",
    ),
    Setting(
        "launchprov.libcloud.secure",
        "",
        optional_boolean,
        "Use HTTPS (true) or HTTP (false) to reach the endpoint; empty: the driver's own "
        "(HTTPS). Setting it for a driver whose constructor cannot take it stops startup.",
    ),
    Setting(
        "launchprov.libcloud.timeout",
        "20",
        positive_float,
        "Seconds to wait for a connection and for each reply.",
    ),
    Setting(
        "launchprov.libcloud.driver_kwargs",
        "",
        json_object,
        "Other keyword arguments for the driver's constructor, as a JSON object "
        '(for example {"ex_force_auth_url": "https://keystone:5000"}).',
    ),
    Setting(
        "launchprov.libcloud.launch_kwargs",
        "",
        json_object,
        "Deployment-wide create_node arguments that no request carries, as a JSON object "
        '(Azure: {"ex_resource_group": "rg", "auth": {"ssh_key": "ssh-ed25519 ..."}}); '
        "checked against the driver's create_node at startup. Its location is the one used "
        "when a launch gives no placement.",
    ),
    Setting(
        "launchprov.libcloud.catalog_ttl",
        "300",
        positive_float,
        "Seconds an image, size or location list of the cloud is remembered, per process "
        "and region.",
    ),
)

SETTINGS += (
    Setting(
        "launchprov.ratelimit.default",
        "",
        rate_limits,
        "Requests each caller may make, in the notation of the limits library, several "
        "separated by ';' (20/second;600/minute). Empty: no limit. launchprov.ratelimit.<caller> "
        "(in the .ini) replaces it for one caller. /healthz, /readyz, /metrics and the OpenAPI "
        "document are never limited.",
    ),
    Setting(
        "launchprov.ratelimit.launch.default",
        "",
        rate_limits,
        "Launches (PUT /v1/launch) each caller may make, on top of launchprov.ratelimit.default: "
        "usually lower (5/minute). Empty: no limit. launchprov.ratelimit.launch.<caller> "
        "replaces it for one caller.",
    ),
    Setting(
        "launchprov.ratelimit.storage_uri",
        "memory://",
        rate_limit_storage,
        "Where the rate-limit counters live: memory:// (this process only) or "
        "redis://HOST:PORT/DB, shared by every process behind the load balancer. If Redis "
        "cannot be reached, requests are let through (and /readyz, a metric and a warning "
        "say so).",
        secret=True,
    ),
    Setting(
        "launchprov.batch.idle_ms",
        "10",
        non_negative_int,
        "Milliseconds a batch of concurrent describe (or terminate) calls in one region waits "
        "for another request before it is sent as one provider call. 0 turns batching off.",
    ),
    Setting(
        "launchprov.batch.max_ms",
        "100",
        positive_int,
        "Milliseconds after which a batch is sent however many requests keep joining it.",
    ),
    Setting(
        "launchprov.batch.max_ids",
        "500",
        positive_int,
        "Largest number of instance ids in one batched provider call.",
    ),
    Setting(
        "launchprov.tracing",
        "false",
        boolean,
        "Trace requests with OpenTelemetry (needs launchprov[tracing]): a span per request, "
        "per provider call and per boto3 call, children of the caller's W3C traceparent. The "
        "exporter, its endpoint, the sampler and the service name come from the standard "
        "OTEL_* variables (OTEL_TRACES_EXPORTER: otlp, the default, needs "
        "launchprov[tracing-otlp]; console; none). false: no OpenTelemetry module is loaded.",
    ),
)

BY_KEY: dict[str, Setting] = {setting.key: setting for setting in SETTINGS}

#: Keys with a caller's name in them: ``launchprov.policy.<caller>.<rule>`` overrides a policy
#: rule for one caller, parsed as the rule's own setting is. Set in the .ini only (environment
#: variable names cannot tell a caller's name from a rule's).
POLICY_RULES = (
    "max_count",
    "instance_types",
    "amis",
    "placements",
    "subnets",
    "iam_instance_profiles",
    "max_root_volume_size",
    "metadata_tokens",
    "spot",
    "see",
    "act_on",
    "max_expires_in",
    "require_expiry",
)
CALLER_POLICY = re.compile(
    rf"\Alaunchprov\.policy\.(?P<caller>[A-Za-z0-9_-]{{1,64}})\.(?P<rule>{'|'.join(POLICY_RULES)})\Z"
)


#: Per-caller rate limits: ``launchprov.ratelimit.<caller>`` and
#: ``launchprov.ratelimit.launch.<caller>``, parsed as the defaults are (.ini only).
CALLER_RATE_LIMIT = re.compile(
    r"\Alaunchprov\.ratelimit\.(?P<launch>launch\.)?(?P<caller>[A-Za-z0-9_-]{1,64})\Z"
)


@dataclasses.dataclass(frozen=True)
class PatternedSetting:
    """A key with a caller's name in it: in the .ini only, parsed as ``parse`` says."""

    key: str
    parse: Callable[[str], Any]
    doc: str
    env_var: None = None


PATTERNED_SETTINGS: tuple[PatternedSetting, ...] = (
    PatternedSetting(
        "launchprov.ratelimit.<caller>",
        rate_limits,
        "The request limits of one caller (the name in its launchprov.auth.tokens line), in "
        "place of launchprov.ratelimit.default; empty exempts the caller. In the .ini only.",
    ),
    PatternedSetting(
        "launchprov.ratelimit.launch.<caller>",
        rate_limits,
        "The launch limits of one caller, in place of launchprov.ratelimit.launch.default; "
        "empty exempts the caller's launches. In the .ini only.",
    ),
)


DEFAULTS_PREFIX = f"{PREFIX}defaults."


#: The deployment defaults that fall back on the cloud's own when unset (None).
CLOUD_DEFAULTED = ("key_name", "security_groups", "placement")


def launch_defaults(
    settings: Mapping[str, Any], cloud: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The deployment's launch defaults, by parameter name: every ``launchprov.defaults.*``,
    the unset ones (None) replaced by the cloud's own (``cloud``: a provider's
    ``cloud_defaults``, the seed's on EC2). None left: the parameter is not sent at all."""
    cloud = cloud or {}
    defaults = {
        key[len(DEFAULTS_PREFIX) :]: value
        for key, value in settings.items()
        if key.startswith(DEFAULTS_PREFIX)
    }
    for name in CLOUD_DEFAULTED:
        if defaults.get(name) is None:
            defaults[name] = cloud.get(name)
    return defaults


def _bad_value(setting: Setting, source: str, value: str, exc: ValueError) -> str:
    """One line naming the setting and its environment variable; a secret's value not shown."""
    where = {
        "environment": f"from the environment variable {setting.env_var}",
        "setting": f"from the .ini; the environment variable {setting.env_var} overrides it",
        "default": "its default",
    }[source]
    reason = str(exc)
    if setting.secret:
        shown = "(value not shown: it may hold a secret)"
        if value.strip() and value.strip() in reason:
            reason = "not a valid value"
    else:
        shown = repr(value)
    return f"{setting.key} = {shown} ({where}): {reason}"


def load(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse every declared setting from ``raw`` (the .ini's settings) and ``environ``.

    Returns a dict of every declared key to its typed value. The environment wins over the .ini,
    and the .ini over the default. Raises ConfigurationError naming the key of a value that does
    not parse, of an unknown ``launchprov.*`` key, or of an unknown ``LAUNCHPROV_*`` variable.
    """
    environ = os.environ if environ is None else environ
    patterned = [
        key
        for key in raw
        if key not in BY_KEY and (CALLER_POLICY.match(key) or CALLER_RATE_LIMIT.match(key))
    ]
    unknown = sorted(
        key for key in raw if key.startswith(PREFIX) and key not in BY_KEY and key not in patterned
    )
    if unknown:
        raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}")
    known_vars = {setting.env_var for setting in SETTINGS} | CLIENT_ENV_VARS
    unknown_vars = sorted(
        var for var in environ if var.startswith(ENV_PREFIX) and var not in known_vars
    )
    if unknown_vars:
        raise ConfigurationError(f"unknown environment variable(s): {', '.join(unknown_vars)}")

    values: dict[str, Any] = {}
    for setting in SETTINGS:
        source, value = "default", setting.default
        if setting.key in raw:
            source, value = "setting", raw[setting.key]
        if setting.env_var in environ:
            source, value = "environment", environ[setting.env_var]
        if isinstance(value, bool | int | float):
            value = str(value)  # main() called from Python with a typed value
        try:
            values[setting.key] = setting.parse(value)
        except ValueError as exc:
            raise ConfigurationError(_bad_value(setting, source, value, exc)) from None
    for key in patterned:
        if policy := CALLER_POLICY.match(key):
            rule = BY_KEY[f"{PREFIX}policy.{policy['rule']}"]
        else:
            rule = BY_KEY["launchprov.ratelimit.default"]
        try:
            values[key] = rule.parse(str(raw[key]))
        except ValueError as exc:
            raise ConfigurationError(f"{key} = {raw[key]!r}: {exc}") from None
    return values
