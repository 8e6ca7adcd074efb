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

#: The launch parameter each glob rule checks.
GLOB_RULES = {"instance_types": "instance_type", "amis": "ami", "placements": "placement"}


class PolicyViolation(Exception):
    """A launch request breaks a policy rule; answered 403 before any provider call."""

    def __init__(self, setting: str, parameter: str, value: Any, allowed: str):
        super().__init__(f"{parameter} = {value!r} is not allowed by {setting} ({allowed})")
        self.setting = setting
        self.parameter = parameter
        self.value = value
        self.allowed = allowed

    #: Where the refused parameter was (body, querystring, path); None: where the request's
    #: parameters came from.
    location: str | None = None


@dataclasses.dataclass(frozen=True)
class Rules:
    max_count: int | None = None
    instance_types: tuple[str, ...] = ()
    amis: tuple[str, ...] = ()
    placements: tuple[str, ...] = ()
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
        own = self.per_caller.get(caller, {}) if caller is not None else {}
        if rule in own:
            return f"launchprov.policy.{caller}.{rule}", own[rule]
        return f"launchprov.policy.{rule}", getattr(self.default, rule)

    def check(self, caller: str, request: LaunchRequest) -> None:
        """Raise PolicyViolation for the first rule ``request`` breaks."""
        setting, limit = self.rule(caller, "max_count")
        if limit is not None and request.max_count > limit:
            raise PolicyViolation(setting, "max_count", request.max_count, f"at most {limit}")
        for rule, parameter in GLOB_RULES.items():
            setting, globs = self.rule(caller, rule)
            value = getattr(request, parameter)
            if globs and not any(fnmatchcase(value, glob) for glob in globs):
                raise PolicyViolation(setting, parameter, value, " ".join(globs))
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
