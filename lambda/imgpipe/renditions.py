"""Rendition configuration: what sizes and formats to make.

The defaults live in ``default_renditions.json`` beside this module: the one
source of truth read by this code, by Terraform (``file()`` in
``resize_lambda.tf``), by the local stack (through Terraform) and by the tests.
A deployment overrides them with the ``RENDITIONS`` environment variable, a JSON
list of the same shape, validated at cold start.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgpipe.errors import ConfigError

DEFAULTS_PATH = Path(__file__).with_name("default_renditions.json")

FITS = ("contain", "cover")
CROPS = ("centre", "attention")  # where a cover rendition crops (docs/formats.md)
FORMATS = ("jpeg", "webp", "avif")
EXTENSIONS = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}
CONTENT_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
MAX_EDGE = 16383  # WebP's hard limit; larger renditions make no sense for the web


@dataclass(frozen=True)
class Rendition:
    """One output size. Never upscaled: a smaller source keeps its size."""

    name: str
    width: int
    height: int
    fit: str = "contain"
    formats: tuple[str, ...] = ("webp", "jpeg")
    quality: int = 82
    crop: str = "centre"

    def key_suffix(self, fmt: str) -> str:
        return f"{self.name}.{EXTENSIONS[fmt]}"


def _field(where: str, item: dict[str, Any], name: str, default: Any = ...) -> Any:
    if name in item:
        return item[name]
    if default is ...:
        raise ConfigError(f"{where}: missing required field {name!r}")
    return default


def _int_in(where: str, name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where}.{name}: {value!r} is not an integer in {lo}..{hi}")
    return value


def parse_renditions(data: Any, source: str = "RENDITIONS") -> tuple[Rendition, ...]:
    """Validate a decoded JSON list of renditions; errors name the field and value."""
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{source}: expected a non-empty JSON list, got {data!r:.80}")
    out: list[Rendition] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        where = f"{source}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected an object, got {item!r:.80}")
        unknown = set(item) - {"name", "width", "height", "fit", "formats", "quality", "crop"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
        name = _field(where, item, "name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(f"{where}.name: {name!r} must match {NAME_RE.pattern}")
        if name in seen:
            raise ConfigError(f"{where}.name: {name!r} is used twice")
        seen.add(name)
        width = _int_in(where, "width", _field(where, item, "width"), 1, MAX_EDGE)
        height = _int_in(where, "height", _field(where, item, "height"), 1, MAX_EDGE)
        fit = _field(where, item, "fit", "contain")
        if fit not in FITS:
            raise ConfigError(f"{where}.fit: {fit!r} is not one of {list(FITS)}")
        formats = _field(where, item, "formats", ["webp", "jpeg"])
        if not isinstance(formats, list) or not formats:
            raise ConfigError(f"{where}.formats: {formats!r} must be a non-empty list")
        for fmt in formats:
            if fmt not in FORMATS:
                raise ConfigError(f"{where}.formats: {fmt!r} is not one of {list(FORMATS)}")
        if len(set(formats)) != len(formats):
            raise ConfigError(f"{where}.formats: {formats!r} repeats a format")
        quality = _int_in(where, "quality", _field(where, item, "quality", 82), 1, 100)
        crop = _field(where, item, "crop", "centre")
        if crop not in CROPS:
            raise ConfigError(f"{where}.crop: {crop!r} is not one of {list(CROPS)}")
        if crop != "centre" and fit != "cover":
            raise ConfigError(f"{where}.crop: {crop!r} needs fit 'cover' (contain never crops)")
        out.append(Rendition(name, width, height, fit, tuple(formats), quality, crop))
    return tuple(out)


def load_renditions(raw: str | None) -> tuple[Rendition, ...]:
    """Renditions from the ``RENDITIONS`` value, or the defaults when unset/empty."""
    if raw is None or not raw.strip():
        return default_renditions()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"RENDITIONS: not valid JSON ({exc.msg} at {exc.pos})") from None
    return parse_renditions(data)


def default_renditions() -> tuple[Rendition, ...]:
    return parse_renditions(json.loads(DEFAULTS_PATH.read_text()), str(DEFAULTS_PATH.name))
