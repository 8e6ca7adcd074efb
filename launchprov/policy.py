"""Policy guardrails: what a launch may ask for, and which instances a caller may see and act
on, per deployment and per caller.

The launch rules are checked after validation and before any provider call; the ownership rules
(``see``, ``act_on``) by :mod:`launchprov.ownership`. Each rule is a setting
(``launchprov.policy.<rule>``); a caller's own setting (``launchprov.policy.<caller>.<rule>``)
replaces the rule for that caller. An empty launch rule allows anything.
"""

from __future__ import annotations

import dataclasses
from fnmatch import fnmatchcase
from typing import Any

from launchprov.providers.interface import LaunchRequest
from launchprov.settings import CALLER_POLICY, POLICY_RULES, SCOPES, ConfigurationError

#: The launch parameter each glob rule checks (a parameter that is None is not checked).
GLOB_RULES = {
    "instance_types": "instance_type",
    "amis": "ami",
    "placements": "placement",
    "subnets": "subnet_id",
    "iam_instance_profiles": "iam_instance_profile",
}
#: The launch parameter each upper-bound rule checks.
LIMIT_RULES = {"max_count": "max_count", "max_root_volume_size": "root_volume_size"}


class PolicyViolation(Exception):
    """A launch request breaks a policy rule; answered 403 before any provider call."""

    def __init__(self, setting: str, parameter: str, value: Any, allowed: str):
        super().__init__(f"{parameter} = {value!r} is not allowed by {setting} ({allowed})")
        self.setting = setting
        self.parameter = parameter

    #: Where the refused parameter was (body, querystring, path); None: where the request's
    #: parameters came from.
    location: str | None = None


@dataclasses.dataclass(frozen=True)
class Rules:
    max_count: int | None = None
    instance_types: tuple[str, ...] = ()
    amis: tuple[str, ...] = ()
    placements: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    iam_instance_profiles: tuple[str, ...] = ()
    max_root_volume_size: int | None = None
    metadata_tokens: str | None = None
    spot: str = "allowed"
    see: str = "own"
    act_on: str = "own"
    max_expires_in: int | None = None
    require_expiry: bool = False


class Policy:
    def __init__(self, default: Rules, per_caller: dict[str, dict[str, Any]]):
        self.default = default
        self.per_caller = per_caller  # caller -> {rule: value}

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Policy:
        default = Rules(**{rule: settings[f"launchprov.policy.{rule}"] for rule in POLICY_RULES})
        per_caller: dict[str, dict[str, Any]] = {}
        for key, value in settings.items():
            match = CALLER_POLICY.match(key)
            if match:
                per_caller.setdefault(match["caller"], {})[match["rule"]] = value
        policy = cls(default, per_caller)
        policy.check_scopes()
        return policy

    def check_scopes(self) -> None:
        """ConfigurationError when a caller (or the default) may act on more than it may see."""
        for caller in [None, *sorted(self.per_caller)]:
            see_setting, see = self.rule(caller, "see")
            act_setting, act_on = self.rule(caller, "act_on")
            if SCOPES.index(act_on) > SCOPES.index(see):
                raise ConfigurationError(
                    f"{act_setting} = {act_on} is wider than {see_setting} = {see}: a caller "
                    "cannot act on instances it may not see"
                )

    def rule(self, caller: str | None, rule: str) -> tuple[str, Any]:
        """(the setting in force, its value) for one caller."""
        own = self.per_caller.get(caller, {})  # None, the default, is no caller's name
        if rule in own:
            return f"launchprov.policy.{caller}.{rule}", own[rule]
        return f"launchprov.policy.{rule}", getattr(self.default, rule)

    def check(self, caller: str, request: LaunchRequest) -> None:
        """Raise PolicyViolation for the first rule ``request`` breaks, the request itself
        first, then each field its fallback alternatives replace."""
        self._check_request(caller, request)
        for index, alternative in enumerate(request.fallback):
            where = f"fallback[{index}]."
            for parameter in ("instance_type", "placement", "subnet_id"):
                value = getattr(alternative, parameter)
                if value is not None:
                    self._check_glob(caller, parameter, value, where + parameter)

    def _check_request(self, caller: str, request: LaunchRequest) -> None:
        for rule, parameter in LIMIT_RULES.items():
            setting, limit = self.rule(caller, rule)
            value = getattr(request, parameter)
            if limit is not None and value is not None and value > limit:
                raise PolicyViolation(setting, parameter, value, f"at most {limit}")
        for parameter in GLOB_RULES.values():
            value = getattr(request, parameter)
            if value is not None:
                self._check_glob(caller, parameter, value, parameter)
        setting, placements = self.rule(caller, "placements")
        if placements and request.placement is None:
            # No placement and no default: the cloud would choose, unchecked.
            raise PolicyViolation(
                setting, "placement", None, "give a placement: " + " ".join(placements)
            )
        setting, tokens = self.rule(caller, "metadata_tokens")
        if tokens == "required" and request.metadata_tokens != "required":
            raise PolicyViolation(setting, "metadata_tokens", request.metadata_tokens, "required")
        setting, spot = self.rule(caller, "spot")
        if (spot == "required" and not request.spot) or (spot == "forbidden" and request.spot):
            raise PolicyViolation(setting, "spot", request.spot, spot)
        self.check_expiry(caller, request.expires_in)

    def check_expiry(self, caller: str, expires_in: int | None) -> None:
        """Raise PolicyViolation when a lease of ``expires_in`` seconds (None: no lease) breaks
        the caller's require_expiry or max_expires_in."""
        setting, required = self.rule(caller, "require_expiry")
        if expires_in is None and required:
            raise PolicyViolation(setting, "expires_in", None, "a lease is required")
        setting, limit = self.rule(caller, "max_expires_in")
        if expires_in is not None and limit is not None and expires_in > limit:
            raise PolicyViolation(setting, "expires_in", expires_in, f"at most {limit}")

    def _check_glob(self, caller: str, parameter: str, value: str, name: str) -> None:
        rule = _GLOB_RULE_OF[parameter]
        setting, globs = self.rule(caller, rule)
        if globs and not any(fnmatchcase(value, glob) for glob in globs):
            raise PolicyViolation(setting, name, value, " ".join(globs))


_GLOB_RULE_OF = {parameter: rule for rule, parameter in GLOB_RULES.items()}
