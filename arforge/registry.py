"""Name -> factory registries (timm style) for tokenizers, generators, samplers and orders."""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of factories. ``@registry.register("name")`` adds one; ``registry.get`` finds it.

    Looking up an unknown name raises ``KeyError`` listing every registered name, so a typo in a
    config tells the user what they could have written.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False) -> Any:
        """Register ``obj`` under ``name``; used bare as a decorator when ``obj`` is omitted."""

        def add(o: T) -> T:
            if name in self._entries and not overwrite and self._entries[name] is not o:
                raise KeyError(f"{self.kind} '{name}' is already registered; pass overwrite=True to replace it")
            self._entries[name] = o
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} '{name}'; registered {self.kind}s: {', '.join(sorted(self._entries)) or '(none)'}"
            ) from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        factory: Callable[..., Any] = self.get(name)  # type: ignore[assignment]
        return factory(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
