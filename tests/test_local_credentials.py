"""Each local function runs with its own role's temporary credentials, never expired ones.

Lambda puts the execution role's temporary credentials in AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (Lambda developer guide, "Defined
runtime environment variables"). The local runtime starts each environment
with the credentials its provider gives (in the local stack: the role assumed
as Lambda assumes it) and never runs an invocation on credentials that could
expire before the function's timeout.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from local.functions import FunctionConfig, LocalFunction

pytestmark = pytest.mark.slow

FAKE_ROOT = Path(__file__).parent / "fixtures" / "fake_lambda"


def test_environments_get_fresh_role_credentials_before_the_old_ones_expire():
    issued = itertools.count(1)
    lifetime = 3.0  # seconds: outlasts a 1 s timeout now, no longer after 1.5 s

    def assume() -> dict[str, str]:
        n = next(issued)
        return {
            "AWS_ACCESS_KEY_ID": f"ASIAKEY{n}",
            "AWS_SECRET_ACCESS_KEY": f"secret{n}",
            "AWS_SESSION_TOKEN": f"token{n}",
            "expiration": str(time.time() + lifetime),
        }

    config = FunctionConfig(
        name="fake-echo",
        arn="arn:aws:lambda:us-east-1:123456789012:function:fake-echo",
        handler="fake_handler.echo",
        role="arn:aws:iam::123456789012:role/fake-echo",
        timeout=1,
    )
    fn = LocalFunction(config, "http://127.0.0.1:9", max_workers=1, task_root=FAKE_ROOT, credentials=assume)
    try:
        first = fn.invoke({})
        again = fn.invoke({})
        time.sleep(1.6)
        later = fn.invoke({})
    finally:
        fn.close()
    assert first.ok and again.ok and later.ok
    env = first.payload["env"]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]) == (
        "ASIAKEY1",
        "secret1",
        "token1",
    )
    assert again.payload["pid"] == first.payload["pid"]  # still valid: the same warm environment
    assert later.payload["env"]["AWS_ACCESS_KEY_ID"] == "ASIAKEY2"  # assumed again
    assert later.payload["pid"] != first.payload["pid"]  # in a new environment
