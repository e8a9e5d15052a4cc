"""Guard for pytest-terraform, loaded before any plugin's pytest_configure.

pytest-terraform raises in its pytest_configure when no terraform binary is on
PATH, which aborts the whole session (exit 3) before a single test runs. On a
machine without terraform, unregister the plugin here (this hook runs while the
initial conftests load, after entry-point plugins are registered and before
any pytest_configure): the rest of the suite runs, and the tests that need
terraform skip with the reason given in tests/test_terraform.py.
"""

from __future__ import annotations

import os
import shutil


def pytest_addoption(parser, pluginmanager):
    explicit = os.environ.get("TERRAFORM")
    if not (shutil.which(explicit) if explicit else shutil.which("terraform") or shutil.which("tofu")):
        pluginmanager.set_blocked("terraform")
