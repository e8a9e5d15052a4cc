"""Save and restore everything the emulator holds, so a second ``make run`` need not wait.

A ``terraform apply`` from nothing takes about 70 s against the emulator, and
none of it is work: hashicorp/aws 5.100.0 waits for fixed times on every
create (``waitQueueAttributesPropagated``: six identical reads five seconds
apart per queue; ``waitLifecycleConfigEquals``: a 10 s delay, then matching
reads 5 s apart per lifecycle configuration), as it does on AWS. So after a
successful apply the local stack saves the emulator's whole state next to
Terraform's state; the next run restores both before ``terraform apply``,
which then reads every resource back, finds it as declared and has nothing to
wait for. Terraform still decides: whatever changed in the module since (or
is missing from the snapshot) it creates or updates as usual.

The snapshot is a pickle of moto's backends (``BackendDict`` per service, per
account, per region), taken in one piece so references between services stay
shared. A few members cannot be pickled as they are and are rebuilt instead:
locks and conditions (new and unlocked: the snapshot is taken while no
request is in flight), weak-value dictionaries (refilled with the same
entries, which the snapshot holds strongly elsewhere), ``defaultdict(lambda:
{})`` (as ``defaultdict(dict)``) and KMS private keys
(as PKCS#8 DER). The file records the moto and Python versions it came from
and is ignored when they differ.

The pickle is read only from the local stack's own state directory, which this
repository's tooling writes; like ``terraform.tfstate`` beside it, it is
trusted local data, never something downloaded.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import sys
import threading
import weakref
from importlib.metadata import version
from pathlib import Path
from typing import Any

FORMAT = 2  # 2: Step Functions' interpreter backend kept apart from the plain one
_LOCK = type(threading.Lock())
_RLOCK = type(threading.RLock())


def _fingerprint() -> dict[str, Any]:
    return {"format": FORMAT, "moto": version("moto"), "python": sys.version_info[:2]}


def _new_condition() -> threading.Condition:
    return threading.Condition()


def _new_lock() -> Any:
    return threading.Lock()


def _new_rlock() -> Any:
    return threading.RLock()


def _weak_values(items: dict[Any, Any]) -> weakref.WeakValueDictionary:
    return weakref.WeakValueDictionary(items)


def _defaultdict(factory: Any, items: dict[Any, Any]) -> collections.defaultdict:
    return collections.defaultdict(factory, items)


def _load_private_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    return load_der_private_key(der, password=None)


class _Pickler(pickle.Pickler):
    """A pickler that rebuilds what moto keeps but pickle cannot carry."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, threading.Condition):
            return _new_condition, ()
        if isinstance(obj, _RLOCK):
            return _new_rlock, ()
        if isinstance(obj, _LOCK):
            return _new_lock, ()
        if isinstance(obj, weakref.WeakValueDictionary):
            return _weak_values, (dict(obj.items()),)
        if isinstance(obj, collections.defaultdict):
            factory = obj.default_factory
            if getattr(factory, "__name__", "") == "<lambda>":
                empty = factory()  # moto's `defaultdict(lambda: {})`: the same as `dict`
                if type(empty) in (dict, list, set) and not empty:
                    return _defaultdict, (type(empty), dict(obj))
        private_bytes = getattr(obj, "private_bytes", None)
        if private_bytes is not None and type(obj).__module__.startswith("cryptography."):
            from cryptography.hazmat.primitives import serialization

            der = private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return _load_private_key, (der,)
        return NotImplemented


# moto keeps Step Functions in two BackendDicts, both named "stepfunctions": the plain one and the
# ASL interpreter's, which holds every state machine once execute_state_machine is on (local.moto_sfn).
SFN_INTERPRETER = "stepfunctions (interpreter)"


def _backends() -> list[Any]:
    from moto.core.base_backend import BackendDict

    return list(BackendDict._instances)


def _name(backend_dict: Any) -> str:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    return SFN_INTERPRETER if backend_dict is stepfunctions_parser_backends else backend_dict.service_name


def _backend_dict(name: str) -> Any:
    from moto.backends import get_backend

    if name == SFN_INTERPRETER:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        return stepfunctions_parser_backends
    return get_backend(name)  # type: ignore[call-overload]


def dumps() -> bytes:
    """Every backend in use, as bytes ``loads`` takes back (call while no request is served)."""
    state = {_name(bd): {acct: dict(by_region) for acct, by_region in bd.items()} for bd in _backends()}
    buf = io.BytesIO()
    # Two pickles: the fingerprint is read first, so a snapshot from another moto is never unpickled.
    pickle.dump(_fingerprint(), buf, protocol=pickle.HIGHEST_PROTOCOL)
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return buf.getvalue()


def loads(blob: bytes) -> bool:
    """Put a ``dumps`` snapshot in place of the emulator's (empty) state; False if it does not fit."""
    buf = io.BytesIO(blob)
    try:
        # Trusted local data, written by this module into the stack's own directory (see above).
        if pickle.load(buf) != _fingerprint():  # noqa: S301
            return False
        state = pickle.load(buf)  # noqa: S301
    except Exception:  # an unreadable snapshot is simply not used
        return False
    for service, accounts in state.items():
        backends = _backend_dict(service)
        for account, regions in accounts.items():
            specific = backends[account]  # creates and registers the account's backend
            for region, backend in regions.items():
                dict.__setitem__(specific, region, backend)
    return True


def save(path: Path) -> None:
    """``dumps`` to ``path`` atomically (a reader never sees half a snapshot)."""
    blob = dumps()  # first: a state that cannot be pickled leaves any older file alone
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)


def load(path: Path) -> bool:
    """``loads`` from ``path``; False when there is no usable snapshot there."""
    try:
        blob = path.read_bytes()
    except OSError:
        return False
    return loads(blob)
