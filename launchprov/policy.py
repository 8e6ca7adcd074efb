"""Policy guardrails: what a launch may ask for, per deployment and per caller.

Checked after validation and before any provider call. Each rule is a setting
(``launchprov.policy.<rule>``); a caller's own setting (``launchprov.policy.<caller>.<rule>``)
replaces the rule for that caller. An empty rule allows anything.
"""

from __future__ import annotations

import dataclasses
from fnmatch import fnmatchcase
from typing import Any

from launchprov.providers.interface import LaunchRequest
from launchprov.settings import CALLER_POLICY, POLICY_RULES

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


@dataclasses.dataclass(frozen=True)
class Rules:
    max_count: int | None = None
    instance_types: tuple[str, ...] = ()
    amis: tuple[str, ...] = ()
    placements: tuple[str, ...] = ()


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
        return cls(default, per_caller)

    def _rule(self, caller: str, rule: str) -> tuple[str, Any]:
        """(the setting in force, its value) for one caller."""
        own = self.per_caller.get(caller, {})
        if rule in own:
            return f"launchprov.policy.{caller}.{rule}", own[rule]
        return f"launchprov.policy.{rule}", getattr(self.default, rule)

    def check(self, caller: str, request: LaunchRequest) -> None:
        """Raise PolicyViolation for the first rule ``request`` breaks."""
        setting, limit = self._rule(caller, "max_count")
        if limit is not None and request.max_count > limit:
            raise PolicyViolation(setting, "max_count", request.max_count, f"at most {limit}")
        for rule, parameter in GLOB_RULES.items():
            setting, globs = self._rule(caller, rule)
            value = getattr(request, parameter)
            if globs and not any(fnmatchcase(value, glob) for glob in globs):
                raise PolicyViolation(setting, parameter, value, " ".join(globs))
