"""What a reprocess run did: its Distributed Map's results (``ResultWriter``) summed into counts.

The reprocess state machine's map writes its children's executions to S3
(AWS, Step Functions developer guide, "ResultWriter (Map)"): under
``<Prefix>/<map run id>/`` a ``manifest.json`` (``DestinationBucket``,
``MapRunArn``, ``ResultFiles`` with ``SUCCEEDED``, ``FAILED`` and ``PENDING``
lists of ``{"Key", "Size"}``) and result files ``SUCCEEDED_n.json``,
``FAILED_n.json`` (failed, timed out and aborted children) and
``PENDING_n.json`` (children never started because the map run failed or was
aborted), each a JSON array of executions: ``Input`` and, when succeeded,
``Output`` as JSON text, ``Status``, ``Error`` and ``Cause`` when not.
A file may be up to 5 GB: result files are read as a stream (``json_values``),
never whole.

A succeeded child's output is the machine's ``Counts`` state: the plan's
counts (``imgpipe.reprocess``) and SendMessageBatch's ``Failed`` entries
(``sent``). The sum (``Summary``):

- ``listed``: every key the map handed to a child;
- ``skipped_current``, ``enqueued`` (planned minus the entries SQS refused);
- ``failed``: keys the plan reported (gone, or a recorded content failure),
  entries SQS refused, and every key of a failed child;
- ``failed_batches`` (failed children) and ``not_started`` (keys of children
  that never ran);
- ``failures``: the first ``SHOWN_FAILURES``, each ``{"key", "error_code"}``
  (``sqs:<code>`` for a refused entry, ``batch:<error>`` for a failed child's keys).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from imgpipe.aws import classified_call

SHOWN_FAILURES = 20
STATUSES = ("SUCCEEDED", "FAILED", "PENDING")
_SEPARATORS = " \t\r\n,"
_COMPACT_AT = 1 << 20  # characters already decoded before the buffer is cut


@dataclass
class Summary:
    """The run's counts, summed over its children."""

    listed: int = 0
    skipped_current: int = 0
    enqueued: int = 0
    failed: int = 0
    failed_batches: int = 0
    not_started: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def _note(self, failures: Iterable[Mapping[str, Any]]) -> None:
        room = SHOWN_FAILURES - len(self.failures)
        for failure in failures:
            if room <= 0:
                return
            self.failures.append({"key": failure.get("key"), "error_code": failure.get("error_code")})
            room -= 1

    def add(self, status: str, child: Mapping[str, Any]) -> None:
        """One child execution, as a result file holds it, listed under ``status``."""
        if status == "SUCCEEDED":
            counts = json.loads(child.get("Output") or "{}") or {}
            refused = [entry for sent in counts.get("sent") or [] for entry in sent.get("Failed") or []]
            self.listed += counts.get("listed", 0)
            self.skipped_current += counts.get("skipped_current", 0)
            self.enqueued += counts.get("enqueue", 0) - len(refused)
            self.failed += counts.get("failed", 0) + len(refused)
            self._note(counts.get("failures") or [])
            self._note({"key": None, "error_code": f"sqs:{entry.get('Code', 'Failed')}"} for entry in refused)
            return
        items = (json.loads(child.get("Input") or "{}") or {}).get("Items") or []
        self.listed += len(items)
        if status == "PENDING":
            self.not_started += len(items)
            return
        self.failed_batches += 1
        self.failed += len(items)
        error = child.get("Error") or str(child.get("Status") or status).lower()
        self._note({"key": item.get("key"), "error_code": f"batch:{error}"} for item in items)

    def answer(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "skipped_current": self.skipped_current,
            "enqueued": self.enqueued,
            "failed": self.failed,
            "failed_batches": self.failed_batches,
            "not_started": self.not_started,
            "failures": self.failures,
        }


def result_files(manifest: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(status, key)`` of every result file the manifest names, succeeded first."""
    files = manifest.get("ResultFiles")
    if not isinstance(files, Mapping):
        raise ValueError("the manifest has no ResultFiles object")
    for status in STATUSES:
        for entry in files.get(status) or []:
            yield status, str(entry["Key"])


def summarize(manifest: Mapping[str, Any], children: Callable[[str], Iterable[Mapping[str, Any]]]) -> Summary:
    """Sum every child of every result file; ``children(key)`` yields a result file's executions."""
    summary = Summary()
    for status, key in result_files(manifest):
        for child in children(key):
            summary.add(status, child)
    return summary


def read_run(s3: Any, bucket: str, manifest_key: str) -> Summary:
    """The run's summary from its results in S3: the manifest, then each result file as a stream
    (1 MiB chunks). A missing manifest is ``SourceNotFound``; throttling and 5xx ``TransientError``."""

    def manifest_body() -> bytes:
        return s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()

    def children(key: str) -> Iterator[Any]:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        return json_values(body.iter_chunks(chunk_size=1 << 20))

    manifest = json.loads(classified_call(f"read s3://{bucket}/{manifest_key}", manifest_body))
    return classified_call("read the run's results", summarize, manifest, children)


def json_values(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The elements of a JSON array (or the values of JSON Lines) read from ``chunks`` of UTF-8,
    one at a time: memory holds one chunk and one element, whatever the file's size."""
    decoder, text = json.JSONDecoder(), codecs.getincrementaldecoder("utf-8")()
    source = iter(chunks)
    buffer, pos, ended, opened = "", 0, False, False

    def more() -> None:
        nonlocal buffer, pos, ended
        chunk = next(source, None)
        if pos > _COMPACT_AT or chunk is None:
            buffer, pos = buffer[pos:], 0
        if chunk is None:
            buffer += text.decode(b"", final=True)
            ended = True
        else:
            buffer += text.decode(chunk)

    while True:
        while pos < len(buffer) and buffer[pos] in _SEPARATORS:
            pos += 1
        if pos == len(buffer):
            if ended:
                return
            more()
            continue
        if not opened:
            opened = True
            if buffer[pos] == "[":  # a JSON array: its elements are the values
                pos += 1
                continue
        if buffer[pos] == "]" and buffer[pos + 1 :].strip(_SEPARATORS) == "" and ended:
            return
        try:
            value, end = decoder.raw_decode(buffer, pos)
        except json.JSONDecodeError:
            if ended:
                raise ValueError(f"a result file is not JSON near character {pos}") from None
            more()
            continue
        if end == len(buffer) and not ended:  # a number or word may go on in the next chunk
            more()
            continue
        yield value
        pos = end
