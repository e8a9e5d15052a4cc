"""README is part of the product: what its commands name must exist on a fresh clone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(?:sh|bash|text)\n(.*?)```", README, flags=re.S)


def test_files_uploaded_by_the_examples_are_in_the_repository():
    named = {m for block in BLOCKS for m in re.findall(r"@([\w./-]+\.\w+)", block)}
    assert named, "the README's curl examples name no file"
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert missing == []


def test_every_make_target_in_the_readme_exists():
    help_text = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    targets = set(re.findall(r"^  ([a-z][a-z-]*)\s", help_text, flags=re.M))
    used = {m for block in BLOCKS for m in re.findall(r"\bmake ([a-z][a-z-]*)", block)}
    used |= set(re.findall(r"`make ([a-z][a-z-]*)", README))
    assert {"run", "test"} <= used
    assert sorted(used - targets) == []
