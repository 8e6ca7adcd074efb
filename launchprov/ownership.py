"""Ownership: which instances a caller may see, and which it may act on.

launchprov keeps no records of its own: the ``launchprov:caller`` tag it puts on every instance
it launches says who launched it. Two policy rules, per caller, widen what a caller reaches:

- ``see`` (describe, list): ``own`` (tagged with the caller), ``launchprov`` (tagged by anyone:
  launched through launchprov) or ``all`` (every instance of the account);
- ``act_on`` (stop, start, reboot, terminate, change the expiry): the same scopes, never wider
  than ``see`` (checked at startup).

An instance a caller may not see is answered exactly as an instance that does not exist (404),
so that its existence is not revealed; one it may see but not act on is a 403 naming the rule.
With authentication off (the sandbox) there is no caller to tell apart: everyone sees and acts
on everything.

:meth:`Ownership.admit` is the one check, used by every route about one instance; listings are
scoped by :meth:`Ownership.visible`, a filter the provider applies, so that paging stays right.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from launchprov.launching import CALLER_TAG
from launchprov.policy import Policy, PolicyViolation
from launchprov.providers.interface import Instance, InstanceNotFound, InstanceQuery

log = logging.getLogger(__name__)

#: What each scope lets a caller reach, said in its 403.
MEANING = {
    "own": "only instances it launched",
    "launchprov": "only instances launched through launchprov",
    "all": "every instance",
}

#: The routes that only read an instance; every other action needs ``act_on``.
READ = "describe"


class ActionForbidden(PolicyViolation):
    """The caller may see the instance but not act on it: a 403 naming the rule."""

    location = "path"

    def __init__(self, setting: str, scope: str, caller: str, action: str, instance_id: str):
        super().__init__(setting, "id", instance_id, f"{scope}: {MEANING[scope]}")
        self.args = (
            f"caller {caller} may not {action} instance {instance_id}: {setting} = {scope} "
            f"allows {MEANING[scope]}",
        )
        self.action = action


def wildcard_match(pattern: str, value: str) -> bool:
    """Whether ``value`` passes an EC2 filter value, where ``*`` and ``?`` are wildcards."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value, re.DOTALL) is not None


def within(scope: str, caller: str, instance: Instance) -> bool:
    """Whether ``instance`` is in ``caller``'s ``scope``."""
    owner = instance.tags.get(CALLER_TAG)
    if scope == "all":
        return True
    if scope == "launchprov":
        return owner is not None
    return owner == caller


class Ownership:
    """The ownership rules of one deployment (its policy, and whether callers are known)."""

    def __init__(self, policy: Policy, enabled: bool, metrics=None):
        self.policy = policy
        self.enabled = enabled  # authentication on: callers are told apart
        self.metrics = metrics

    def scopes(self, caller: str) -> tuple[tuple[str, str], tuple[str, str]]:
        """((setting, scope) of see, (setting, scope) of act_on) for ``caller``."""
        if not self.enabled:
            return ("launchprov.auth.enabled", "all"), ("launchprov.auth.enabled", "all")
        return self.policy.rule(caller, "see"), self.policy.rule(caller, "act_on")

    def check(self, caller: str, instance: Instance, action: str, provider_name: str) -> None:
        """Raise InstanceNotFound when ``caller`` may not see ``instance`` -- the very answer
        of ``provider_name`` for an instance that does not exist -- and ActionForbidden when it
        may see it but ``action`` (anything but ``describe``) needs more."""
        (_, see), (act_setting, act_on) = self.scopes(caller)
        if not within(see, caller, instance):
            raise InstanceNotFound(provider_name, instance.id)
        if action != READ and not within(act_on, caller, instance):
            raise ActionForbidden(act_setting, act_on, caller, action, instance.id)

    def admit(self, provider, caller: str, instance_id: str, region: str, action: str):
        """The one check before ``action`` on one instance: its :class:`Instance` as described
        now, or None when no rule of ``caller``'s can refuse (both scopes ``all``), in which
        case nothing was asked of the provider. Raises as :meth:`check`."""
        (_, see), (_, act_on) = self.scopes(caller)
        if see == "all" and (act_on == "all" or action == READ):
            return None
        instance = provider.describe(instance_id, region)
        self.check(caller, instance, action, provider.name)
        return instance

    def record(self, caller: str, instance: Instance, action: str) -> None:
        """Log and count ``action`` done on an instance ``caller`` did not launch."""
        owner = instance.tags.get(CALLER_TAG)
        if not self.enabled or owner == caller:
            return
        log.info(
            "caller %s did %s on instance %s of %s",
            caller,
            action,
            instance.id,
            owner or "no launchprov caller (not launched through launchprov)",
            extra={"owner": owner, "action": action, "instance": instance.id},
        )
        if self.metrics is not None:
            self.metrics.foreign_actions.labels(*self.metrics.caller(caller), action).inc()

    def visible(self, caller: str, query: InstanceQuery) -> InstanceQuery | None:
        """``query`` narrowed to what ``caller`` may see, as filters the provider applies; None
        when nothing can match (the query asks for other callers' instances only)."""
        (_, see), _ = self.scopes(caller)
        if see == "all":
            return query
        if see == "launchprov":
            if CALLER_TAG in query.tag_keys:
                return query
            return dataclasses.replace(query, tag_keys=(*query.tag_keys, CALLER_TAG))
        asked = query.tags.get(CALLER_TAG)
        # A value filter may hold EC2's wildcards: the caller's own name either passes it or not.
        if asked is not None and not any(wildcard_match(value, caller) for value in asked):
            return None
        return dataclasses.replace(query, tags={**query.tags, CALLER_TAG: (caller,)})
