"""docs/terraform.md documents every variable and output of the root module."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def deploy_section() -> str:
    text = (ROOT / "docs" / "terraform.md").read_text()
    return text.split("<!-- section:inputs -->", 1)[1].split("<!-- /section:inputs -->", 1)[0]


def declared(kind: str, path: str) -> list[str]:
    return re.findall(rf'^{kind} "([a-z0-9_]+)"', (ROOT / path).read_text(), flags=re.M)


def test_every_variable_is_in_the_configuration_table_with_its_default():
    section = deploy_section()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z0-9_]+)` \| `.*$", section, flags=re.M)}
    variables = declared("variable", "variables.tf")
    assert variables == sorted(variables), "variables.tf is not in alphabetical order"
    for name in variables:
        assert name in rows, f"docs/terraform.md's variables table lacks {name}"
        block = (ROOT / "variables.tf").read_text().split(f'variable "{name}" {{', 1)[1].split("\n}\n", 1)[0]
        default = re.search(r"^  default\s+=\s+(.*)$", block, flags=re.M).group(1).strip()
        assert f"`{default}`" in rows[name], f"docs/terraform.md shows another default for {name}"


def test_every_output_is_listed():
    section = deploy_section()
    outputs = declared("output", "outputs.tf")
    assert outputs == sorted(outputs), "outputs.tf is not in alphabetical order"
    for name in outputs:
        assert f"`{name}`" in section, f"docs/terraform.md's outputs table lacks {name}"


def test_every_variable_and_output_is_described():
    for kind, path in (("variable", "variables.tf"), ("output", "outputs.tf")):
        text = (ROOT / path).read_text()
        for name in declared(kind, path):
            block = text.split(f'{kind} "{name}" {{', 1)[1].split("\n}\n", 1)[0]
            assert re.search(r'^  description\s+=\s+"[^"]{10,}', block, flags=re.M), f"{kind} {name}"
