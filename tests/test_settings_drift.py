"""Each numeric setting is declared once in Python (``imgpipe.settings``: name, default, bounds).

Terraform repeats the default and the bounds in ``variables.tf`` (it must: a
plan refuses a bad value before anything is deployed). These tests read the
HCL and hold the two together: one declaration per environment variable, the
same default on both sides, and nothing Terraform accepts that the function
would refuse at its first invocation.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import imgpipe
from imgpipe import resize_config
from imgpipe.settings import Integer, Number
from tests.hcl_text import (
    function_variables,
    python_bounds,
    terraform_bounds,
    terraform_default,
    variable_block,
    within,
)


def declarations() -> dict[str, list[Integer | Number]]:
    """Environment variable -> the distinct declarations of it found in any imgpipe module."""
    found: dict[str, list[Integer | Number]] = {}
    for module in pkgutil.iter_modules(imgpipe.__path__):
        namespace = vars(importlib.import_module(f"imgpipe.{module.name}"))
        for value in namespace.values():
            if isinstance(value, (Integer, Number)):
                same = found.setdefault(value.name, [])
                if all(value is not other for other in same):
                    same.append(value)
    return found


DECLARED = declarations()
MAPPED = {env: variable for env, variable in function_variables().items() if env in DECLARED}


def test_each_environment_variable_is_declared_once():
    twice = {name: found for name, found in DECLARED.items() if len(found) > 1}
    assert not twice, f"declared in more than one place: {twice}"


def test_every_numeric_value_terraform_passes_has_a_python_declaration():
    # A value passed through tostring() is a number or a bool: numbers are read by a declaration.
    numeric = {
        env: variable
        for env, variable in function_variables().items()
        if terraform_default(variable_block(variable)).lstrip("-").replace(".", "", 1).isdigit()
    }
    assert set(numeric) <= set(DECLARED), sorted(set(numeric) - set(DECLARED))
    assert MAPPED, "no setting mapped: the HCL reader found nothing"


@pytest.mark.parametrize("env_name", sorted(MAPPED))
def test_terraform_default_equals_the_python_default(env_name):
    (declared,) = DECLARED[env_name]
    default = terraform_default(variable_block(MAPPED[env_name]))
    assert float(default) == declared.default, (MAPPED[env_name], default, declared.default)


@pytest.mark.parametrize("env_name", sorted(MAPPED))
def test_every_value_terraform_accepts_the_function_accepts(env_name):
    (declared,) = DECLARED[env_name]
    variable = MAPPED[env_name]
    accepted = terraform_bounds(variable_block(variable), variable)
    assert within(accepted, python_bounds(declared)), (variable, accepted, python_bounds(declared))


def test_the_resize_memory_the_engine_assumes_is_terraforms_default():
    # Lambda sets AWS_LAMBDA_FUNCTION_MEMORY_SIZE from the function's MemorySize; the default
    # matters where the variable is unset (tests, the bench), and must be what is deployed.
    block = variable_block("resize_memory_mb")
    assert float(terraform_default(block)) == resize_config.MEMORY_MB.default
    assert within(terraform_bounds(block, "resize_memory_mb"), python_bounds(resize_config.MEMORY_MB))


def test_the_bounds_reader_sees_open_and_closed_ends():
    block = "default = 1\n  validation {\n    condition     = var.x > 0 && var.x <= 2\n  }\n"
    bounds = terraform_bounds(block, "x")
    assert bounds == {"lo": 0.0, "hi": 2.0, "lo_open": True, "hi_open": False}
    assert within(bounds, {"lo": 0.0, "hi": None, "lo_open": False, "hi_open": False})
    assert not within({"lo": None, "hi": 2.0, "lo_open": False, "hi_open": False}, bounds)
    assert not within({"lo": 0.0, "hi": 2.0, "lo_open": False, "hi_open": False}, bounds)
