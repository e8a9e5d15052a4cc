"""The watermark's settings are declared once in Python (``imgpipe.watermark_settings``).

Terraform's ``watermark_*`` variables must repeat the default and the bounds in
HCL, and docs/renditions.md shows them to readers: these tests read both and
compare them with the Python declaration, so neither can drift. They also keep
the config reader free of Pillow (it loads at cold start before any render).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from imgpipe import watermark_settings as wm
from imgpipe.settings import Integer, Number

ROOT = Path(__file__).resolve().parent.parent
NUMERIC = {"opacity": wm.OPACITY, "margin": wm.MARGIN, "scale": wm.SCALE, "min_size": wm.MIN_SIZE}


def variable_block(name: str) -> str:
    text = (ROOT / "variables.tf").read_text()
    match = re.search(rf'^variable "{name}" \{{\n(.*?)^\}}', text, re.M | re.S)
    assert match, f"variables.tf has no variable {name}"
    return match.group(1)


def terraform_default(block: str) -> str:
    return re.search(r"^\s*default\s*=\s*(.+?)\s*$", block, re.M).group(1)


def terraform_bounds(block: str, name: str) -> dict[str, object]:
    """The bounds a validation condition like ``var.x >= 0 && var.x < 0.5`` sets."""
    condition = re.search(r"^\s*condition\s*=\s*(.+?)\s*$", block, re.M).group(1)
    bounds: dict[str, object] = {"lo": None, "hi": None, "lo_open": False, "hi_open": False}
    for op, number in re.findall(rf"var\.{name}\s*(>=|<=|>|<)\s*(-?[\d.]+)", condition):
        end = "lo" if op.startswith(">") else "hi"
        bounds[end] = float(number)
        bounds[f"{end}_open"] = len(op) == 1
    return bounds


def python_bounds(declared: Integer | Number) -> dict[str, object]:
    return {
        "lo": float(declared.lo),
        "hi": None if declared.hi is None else float(declared.hi),
        "lo_open": getattr(declared, "lo_open", False),
        "hi_open": getattr(declared, "hi_open", False),
    }


@pytest.mark.parametrize("setting", sorted(NUMERIC))
def test_terraform_variable_default_and_validation_equal_the_python_declaration(setting):
    declared = NUMERIC[setting]
    block = variable_block(f"watermark_{setting}")
    assert float(terraform_default(block)) == declared.default
    assert terraform_bounds(block, f"watermark_{setting}") == python_bounds(declared)


def test_terraform_watermark_position_default_and_choices_equal_the_python_declaration():
    block = variable_block("watermark_position")
    assert terraform_default(block) == f'"{wm.DEFAULT_POSITION}"'
    listed = re.search(r"contains\(\[(.*?)\],\s*var\.watermark_position\)", block).group(1)
    assert tuple(re.findall(r'"([^"]+)"', listed)) == wm.POSITIONS


@pytest.mark.parametrize("setting", sorted(NUMERIC))
def test_docs_show_the_python_default(setting):
    declared = NUMERIC[setting]
    row = re.search(
        rf"^\| `{declared.name}` \| `([^`]+)` \|", (ROOT / "docs/renditions.md").read_text(), re.M
    )
    assert row, f"docs/renditions.md has no row for {declared.name}"
    assert float(row.group(1)) == declared.default


def test_watermark_and_config_reader_take_their_defaults_from_the_declaration():
    from imgpipe.resize_config import ResizeConfig
    from imgpipe.watermark import Watermark

    mark = Watermark(text="x")
    config = ResizeConfig(resized_bucket="r", uploads_bucket=None, table_name=None, renditions=())
    for setting, declared in NUMERIC.items():
        assert getattr(mark, setting) == getattr(config, f"watermark_{setting}") == declared.default
    assert mark.position == config.watermark_position == wm.DEFAULT_POSITION


def test_reading_the_resize_settings_does_not_load_pillow():
    code = "import sys, imgpipe.resize_config; assert 'PIL' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "lambda")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
