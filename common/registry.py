"""A name -> builder registry, one per zoo (models, generators, datasets, fault models), with metadata.

Each entry may carry keyword metadata (input size, family, ...) so callers ask the registry what a
name is instead of parsing the name.

Example:
    MODELS = Registry("model")

    @MODELS.register("resnet18", family="resnet", input_size=32)
    def resnet18(num_classes): ...

    MODELS.get("resnet18")(num_classes=10)
    MODELS.meta("resnet18")["input_size"]          # 32
    MODELS.names(input_size=32)                    # every name whose metadata matches
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, TypeVar

T = TypeVar("T", bound=Callable)


class UnknownName(KeyError):
    """Raised for a name that is not registered; its message lists the valid names."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    """Maps names to callables; refuses duplicates and names the valid choices on a miss."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Callable] = {}
        self._meta: Dict[str, Mapping[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        def deco(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"duplicate {self.kind} name {name!r}")
            self._items[name] = fn
            self._meta[name] = MappingProxyType(dict(meta))
            return fn
        return deco

    def get(self, name: str) -> Callable:
        self._check(name)
        return self._items[name]

    def meta(self, name: str) -> Mapping[str, Any]:
        """The read-only metadata registered with `name`."""
        self._check(name)
        return self._meta[name]

    def names(self, **where: Any) -> List[str]:
        """Registered names in registration order; keyword filters keep those whose metadata match."""
        return [n for n in self._items if all(self._meta[n].get(k) == v for k, v in where.items())]

    def _check(self, name: str) -> None:
        if name not in self._items:
            raise UnknownName(f"unknown {self.kind} {name!r}; choose from {', '.join(self.names())}")

    def __contains__(self, name: str) -> bool:
        return name in self._items
