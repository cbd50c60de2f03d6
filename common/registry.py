"""A name -> builder registry, one per zoo (models, generators, fault models, run modes).

Example:
    MODELS = Registry("model")

    @MODELS.register("resnet18")
    def resnet18(num_classes): ...

    MODELS.get("resnet18")(num_classes=10)
"""
from __future__ import annotations

from typing import Callable, Dict, List, TypeVar

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

    def register(self, name: str) -> Callable[[T], T]:
        def deco(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"duplicate {self.kind} name {name!r}")
            self._items[name] = fn
            return fn
        return deco

    def get(self, name: str) -> Callable:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(f"unknown {self.kind} {name!r}; choose from {', '.join(self.names())}") from None

    def names(self) -> List[str]:
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
