"""Wrappers of a provider, generated from the interface.

The bulkhead and the deadline (:class:`launchprov.bulkhead.GuardedProvider`), the metrics
(:class:`launchprov.metrics.MeteredProvider`) and the spans
(:class:`launchprov.tracing.TracedProvider`) each stand for every method of
:class:`~launchprov.providers.interface.IProvider`: :class:`ProviderWrapper` makes one method
per operation of the interface when the wrapper class is made, so a method added to the
interface is guarded, metered and traced without anyone remembering to. Nothing else of the
wrapped provider is reachable: its interface attributes and :data:`DESCRIPTION` are copied at
construction, and there is no ``__getattr__`` to forward a call around the guards.

What differs per operation is declared here or beside the wrapper as data
(:data:`LAUNCHING`, :data:`~launchprov.providers.interface.READING_OPERATIONS`,
:data:`launchprov.bulkhead.OUTSIDE_SLOTS`), read once when the class is made, not per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from zope.interface import classImplements
from zope.interface.interface import InterfaceClass, Method

from launchprov.providers.interface import IProvider

#: What an adapter may say of itself beyond the interface's attributes, and what a wrapper
#: assumes when it says nothing: every wrapper passes it on (the schemas and the error views
#: read ``placement_is_zone``, the bulkhead ``attempt_seconds``, the metrics ``batchers``).
DESCRIPTION: Mapping[str, Any] = MappingProxyType(
    {"placement_is_zone": True, "attempt_seconds": None, "batchers": ()}
)

#: The operations whose result is the instances launched (the metrics count them, a span names
#: them, a 408 at the deadline says which were created).
LAUNCHING = frozenset({"launch"})


def operations(interface: InterfaceClass) -> tuple[str, ...]:
    """The methods of ``interface`` (its bases' included), in its order."""
    return tuple(
        name
        for name, description in interface.namesAndDescriptions(all=True)
        if isinstance(description, Method)
    )


def attributes(interface: InterfaceClass) -> tuple[str, ...]:
    """The attributes of ``interface`` that are not methods (``name``, ``can_tag``...)."""
    return tuple(
        name
        for name, description in interface.namesAndDescriptions(all=True)
        if not isinstance(description, Method)
    )


def launched_ids(result) -> list[str]:
    """The ids a launch returned: a list of ids, or what has them as ``ids`` (``Launched``)."""
    return list(getattr(result, "ids", result))


class ProviderWrapper:
    """A provider around another (``provider``) that stands for every operation of
    ``interface``.

    A subclass says once, in :meth:`wrap`, what the method of one operation does; the methods
    are made when the class is made (writing one by hand is refused), the class declares the
    interface, and :meth:`for_interface` derives the same wrapper for another interface (a
    copy of IProvider with one more method).
    """

    interface: ClassVar[InterfaceClass] = IProvider

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for operation in operations(cls.interface):
            if operation in vars(cls):
                raise TypeError(
                    f"{cls.__name__}.{operation} is written by hand: {cls.__name__}.wrap makes "
                    f"the method of every operation of {cls.interface.__name__}"
                )
            method = cls.wrap(operation)
            method.__name__ = operation
            method.__qualname__ = f"{cls.__qualname__}.{operation}"
            method.__doc__ = f"{operation} of the wrapped provider ({cls.__name__}.wrap)."
            setattr(cls, operation, method)
        classImplements(cls, cls.interface)

    @classmethod
    def wrap(cls, operation: str) -> Callable[..., Any]:
        """The method that stands for ``operation``: ``method(self, *args)``, calling
        ``getattr(self.provider, operation)`` as it sees fit."""
        raise NotImplementedError

    @classmethod
    def for_interface(cls, interface: InterfaceClass) -> type:
        """This wrapper made for ``interface`` instead (one that extends IProvider)."""
        return type(cls.__name__, (cls,), {"interface": interface, "__module__": cls.__module__})

    def __init__(self, provider):
        self.provider = provider
        for name in attributes(self.interface):
            setattr(self, name, getattr(provider, name))
        for name, assumed in DESCRIPTION.items():
            setattr(self, name, getattr(provider, name, assumed))
