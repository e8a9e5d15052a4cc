"""The watermark's settings are declared once in Python (``imgpipe.watermark_settings``).

Terraform's ``watermark_*`` variables must repeat the default and the bounds in
HCL (tests/test_settings_drift.py holds every numeric setting to its
declaration), and docs/renditions.md shows them to readers: these tests hold
the position's choices and the documented defaults to the Python declaration. They also keep
the config reader free of Pillow (it loads at cold start before any render).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from imgpipe import watermark_settings as wm
from tests.hcl_text import ROOT, terraform_default, variable_block

NUMERIC = {"opacity": wm.OPACITY, "margin": wm.MARGIN, "scale": wm.SCALE, "min_size": wm.MIN_SIZE}


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
