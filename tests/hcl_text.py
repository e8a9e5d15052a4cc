"""Reading the few facts the drift tests need straight from the HCL text.

Enough for this repository's own formatting (``terraform fmt``): a variable's
literal default, the numeric bounds its validation sets, and the environment
each Lambda function is given. Terraform itself checks the HCL; these only
compare it with what the Python code declares.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def variable_block(name: str) -> str:
    text = (ROOT / "variables.tf").read_text()
    match = re.search(rf'^variable "{name}" \{{\n(.*?)^\}}', text, re.M | re.S)
    assert match, f"variables.tf has no variable {name}"
    return match.group(1)


def terraform_default(block: str) -> str:
    return re.search(r"^\s*default\s*=\s*(.+?)\s*$", block, re.M).group(1)


def terraform_bounds(block: str, name: str) -> dict[str, object]:
    """The bounds the validation conditions set, like ``var.x >= 0 && var.x < 0.5`` (None: unbounded)."""
    conditions = " && ".join(re.findall(r"^\s*condition\s*=\s*(.+?)\s*$", block, re.M))
    bounds: dict[str, object] = {"lo": None, "hi": None, "lo_open": False, "hi_open": False}
    for op, number in re.findall(rf"var\.{name}\s*(>=|<=|>|<)\s*(-?[\d.]+)", conditions):
        end = "lo" if op.startswith(">") else "hi"
        bounds[end] = float(number)
        bounds[f"{end}_open"] = len(op) == 1
    return bounds


def python_bounds(declared) -> dict[str, object]:
    """An ``imgpipe.settings`` Integer's or Number's bounds in ``terraform_bounds``' shape."""
    return {
        "lo": float(declared.lo),
        "hi": None if declared.hi is None else float(declared.hi),
        "lo_open": getattr(declared, "lo_open", False),
        "hi_open": getattr(declared, "hi_open", False),
    }


def within(inner: dict[str, object], outer: dict[str, object]) -> bool:
    """Whether every number ``inner`` admits is admitted by ``outer``."""
    lo_in = -math.inf if inner["lo"] is None else inner["lo"]
    lo_out = -math.inf if outer["lo"] is None else outer["lo"]
    hi_in = math.inf if inner["hi"] is None else inner["hi"]
    hi_out = math.inf if outer["hi"] is None else outer["hi"]
    lo_ok = lo_in > lo_out or (lo_in == lo_out and (inner["lo_open"] or not outer["lo_open"]))
    hi_ok = hi_in < hi_out or (hi_in == hi_out and (inner["hi_open"] or not outer["hi_open"]))
    return lo_ok and hi_ok


def function_variables() -> dict[str, str]:
    """Environment variable -> the Terraform variable it comes from, over every
    ``aws_lambda_function`` in the root module, for values set straight from one variable
    (``NAME = var.x`` or ``NAME = tostring(var.x)``)."""
    found: dict[str, str] = {}
    for path in sorted(ROOT.glob("*.tf")):
        for function in re.findall(
            r'^resource "aws_lambda_function" "\w+" \{\n(.*?)^\}', path.read_text(), re.M | re.S
        ):
            setting = r"^\s*([A-Z][A-Z0-9_]*)\s*=\s*(?:tostring\()?var\.(\w+)\)?\s*$"
            pairs = re.findall(setting, function, re.M)
            for env_name, variable in pairs:
                assert found.setdefault(env_name, variable) == variable, f"{env_name} set from two variables"
    return found
