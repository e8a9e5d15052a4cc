"""README and the docs are part of the product: what their commands name must exist on a fresh clone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PAGES = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "examples" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
TEXT = "\n".join(page.read_text() for page in PAGES)
BLOCKS = re.findall(r"```(?:sh|bash|text)\n(.*?)```", TEXT, flags=re.S)
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


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
    used |= set(re.findall(r"`make ([a-z][a-z-]*)", TEXT))
    assert {"run", "test"} <= used
    assert sorted(used - targets) == []


def test_readme_is_a_front_door_that_links_every_docs_page():
    """The manual lives in docs/; README says what this is, how to start, and where to read on."""
    assert len(README.splitlines()) <= 170
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)", README))
    pages = {page.name for page in (ROOT / "docs").glob("*.md")}
    assert sorted(pages - linked) == []


def test_every_relative_link_in_the_docs_points_at_a_file_and_heading_that_exist():
    broken = []
    for page in PAGES:
        for target, anchor in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (page.parent / target).resolve()
            if not path.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and path.suffix == ".md" and anchor[1:] not in _anchors(path):
                broken.append(f"{page.name}: {target}{anchor}")
    assert broken == []


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lowercased, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
