"""Reading settings from a function's environment: one reader for every function.

A numeric setting is declared once, as an ``Integer`` or a ``Number`` holding
its variable's name, its default and its bounds; the config dataclasses take
their defaults from the declaration, and ``read`` validates against its bounds.
Empty or blank values count as unset (Terraform passes ``""`` for optional
values). A bad value raises ``ConfigError`` naming the variable and the value,
so a misconfigured function fails its first invocation loudly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from imgpipe.errors import ConfigError


def text(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value without surrounding blanks, or ``None`` when unset or blank."""
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def required(env: Mapping[str, str], name: str) -> str:
    """The variable's value; ``ConfigError`` when unset or blank."""
    value = text(env, name)
    if value is None:
        raise ConfigError(f"{name}: required, not set")
    return value


def choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``; ``default`` when unset."""
    value = text(env, name) or default
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class Integer:
    """A whole-number setting: the variable, its default, and its bounds ``lo..hi`` (``hi`` None: none)."""

    name: str
    default: int
    lo: int
    hi: int | None = None

    @property
    def bounds(self) -> str:
        return f"{self.lo}..{self.hi}" if self.hi is not None else f">= {self.lo}"

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, (int, float)):
            return False
        return self.lo <= value and (self.hi is None or value <= self.hi)

    def read(self, env: Mapping[str, str]) -> int:
        raw = text(env, self.name)
        return self.default if raw is None else self.parse(raw)

    def read_optional(self, env: Mapping[str, str]) -> int | None:
        """The value, or ``None`` when unset (the default plays no part)."""
        raw = text(env, self.name)
        return None if raw is None else self.parse(raw)

    def parse(self, raw: str) -> int:
        try:
            number = int(raw, 10)
        except ValueError:
            number = _integral(raw)
        if number is None:
            raise ConfigError(f"{self.name}: {raw!r} is not an integer")
        if number not in self:
            raise ConfigError(f"{self.name}: {raw!r} is out of range ({self.bounds})")
        return number


def _integral(raw: str) -> int | None:
    """``raw`` as a float with no fractional part (``1e8``, ``1536.0``), else ``None``."""
    try:
        value = float(raw)
        return int(value) if value.is_integer() else None
    except (ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class Number:
    """A real-valued setting: the variable, its default, and its bounds (open at an end when so marked)."""

    name: str
    default: float
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    @property
    def bounds(self) -> str:
        return f"{'(' if self.lo_open else '['}{self.lo}, {self.hi}{')' if self.hi_open else ']'}"

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def read(self, env: Mapping[str, str]) -> float:
        raw = text(env, self.name)
        if raw is None:
            return self.default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{self.name}: {raw!r} is not a number") from None
        if value not in self:
            raise ConfigError(f"{self.name}: {raw!r} is out of range ({self.bounds})")
        return value
