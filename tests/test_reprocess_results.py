"""Summing a reprocess run's results (lambda/imgpipe/reprocess_results.py).

The documents are in the shape AWS writes them (Step Functions developer guide,
"ResultWriter (Map)"): a manifest naming SUCCEEDED_n / FAILED_n / PENDING_n
files, each a JSON array of child executions whose ``Input`` and ``Output`` are
JSON text; FAILED_n holds failed, timed-out and aborted children, PENDING_n
those a failed or aborted map run never started.
"""

from __future__ import annotations

import json

import pytest

from imgpipe import reprocess_results

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:imgpipe-dev-reprocess/reprocess"
RUN = "arn:aws:states:us-east-1:123456789012:mapRun:imgpipe-dev-reprocess/reprocess:ad9b5f27"


def child(status: str, keys: list[str], output: dict | None = None, error: str | None = None) -> dict:
    """One child execution as a result file holds it (AWS's "Transformation NONE" example)."""
    name = f"{status.lower()}-{keys[0] if keys else 'none'}"
    doc = {
        "ExecutionArn": MACHINE.replace(":stateMachine:", ":execution:") + f":{name}",
        "Input": json.dumps(
            {"Items": [{"key": k} for k in keys], "BatchInput": {"all": False, "force": False}}
        ),
        "InputDetails": {"Included": True},
        "Name": name,
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "StartDate": "2026-12-07T01:49:50.099Z",
        "StateMachineArn": MACHINE,
        "Status": status,
        "StopDate": "2026-12-07T01:49:50.163Z",
    }
    if status == "SUCCEEDED":
        doc.update(Output=json.dumps(output), OutputDetails={"Included": True})
    elif status != "PENDING":
        doc.update(Error=error or "States.TaskFailed", Cause="the maintenance function timed out")
    return doc


def counts(listed=0, skipped=0, enqueue=0, failures=(), refused=0) -> dict:
    """A child's output: the machine's Counts state (the plan's counts and SendMessageBatch's answers)."""
    sent = [
        {"Failed": [{"Id": str(i), "Code": "InternalError", "SenderFault": False} for i in range(refused)]}
    ]
    return {
        "listed": listed,
        "skipped_current": skipped,
        "enqueue": enqueue,
        "failed": len(failures),
        "failures": list(failures),
        "sent": sent,
    }


def manifest(**files: list[str]) -> dict:
    return {
        "DestinationBucket": "resized",
        "MapRunArn": RUN,
        "ResultFiles": {
            status: [{"Key": key, "Size": 1} for key in files.get(status, [])]
            for status in ("FAILED", "PENDING", "SUCCEEDED")
        },
    }


def summed(documents: dict[str, list[dict]], **files: list[str]):
    def children(key):
        return reprocess_results.json_values([json.dumps(documents[key]).encode()])

    return reprocess_results.summarize(manifest(**files), children)


def test_succeeded_batches_sum_and_entries_sqs_refused_count_as_failed_not_enqueued():
    poison = {"key": "originals/poison.jpg", "error_code": "not_an_image"}
    documents = {
        "r/SUCCEEDED_0.json": [
            child("SUCCEEDED", ["a"], counts(listed=100, skipped=40, enqueue=59, failures=[poison])),
            child("SUCCEEDED", ["b"], counts(listed=3, enqueue=3, refused=1)),
        ]
    }
    summary = summed(documents, SUCCEEDED=["r/SUCCEEDED_0.json"])
    assert summary.answer() == {
        "listed": 103,
        "skipped_current": 40,
        "enqueued": 61,
        "failed": 2,
        "failed_batches": 0,
        "not_started": 0,
        "failures": [poison, {"key": None, "error_code": "sqs:InternalError"}],
    }


def test_a_failed_batch_counts_every_key_and_a_pending_one_is_listed_but_not_started():
    documents = {
        "r/SUCCEEDED_0.json": [child("SUCCEEDED", ["a"], counts(listed=2, enqueue=2))],
        "r/FAILED_0.json": [
            child("FAILED", ["originals/x.png", "originals/y.png"], error="Lambda.Unknown"),
            child("TIMED_OUT", ["originals/z.png"], error="States.Timeout"),
        ],
        "r/PENDING_0.json": [child("PENDING", ["originals/p1.png", "originals/p2.png"])],
    }
    summary = summed(
        documents,
        SUCCEEDED=["r/SUCCEEDED_0.json"],
        FAILED=["r/FAILED_0.json"],
        PENDING=["r/PENDING_0.json"],
    )
    assert (summary.listed, summary.enqueued, summary.failed) == (2 + 3 + 2, 2, 3)
    assert (summary.failed_batches, summary.not_started) == (2, 2)
    assert summary.failures == [
        {"key": "originals/x.png", "error_code": "batch:Lambda.Unknown"},
        {"key": "originals/y.png", "error_code": "batch:Lambda.Unknown"},
        {"key": "originals/z.png", "error_code": "batch:States.Timeout"},
    ]


def test_only_the_first_20_failures_are_kept_but_all_are_counted():
    gone = [{"key": f"originals/{i}.png", "error_code": "source_not_found"} for i in range(15)]
    documents = {
        "r/SUCCEEDED_0.json": [child("SUCCEEDED", ["a"], counts(listed=15, failures=gone))] * 3,
    }
    summary = summed(documents, SUCCEEDED=["r/SUCCEEDED_0.json"])
    assert summary.failed == 45 and len(summary.failures) == reprocess_results.SHOWN_FAILURES == 20


def test_results_over_several_files_of_each_status_are_all_read():
    """Step Functions starts another file past 5 GB (SUCCEEDED_1.json, ...)."""
    documents = {
        f"r/SUCCEEDED_{n}.json": [child("SUCCEEDED", [str(n)], counts(listed=100, skipped=100))]
        for n in range(3)
    }
    summary = summed(documents, SUCCEEDED=sorted(documents))
    assert (summary.listed, summary.skipped_current) == (300, 300)


def test_a_manifest_without_result_files_is_refused():
    with pytest.raises(ValueError, match="ResultFiles"):
        reprocess_results.summarize({"MapRunArn": RUN}, lambda key: [])


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 4096])
def test_a_result_file_is_read_element_by_element_from_any_chunking_even_inside_utf8(size):
    elements = [{"key": "originals/é ü ñ 日本.png", "n": 12345}, {"key": "b", "n": [1, 2.5, None]}, {}]
    data = json.dumps(elements, ensure_ascii=False, indent=1).encode()
    assert list(reprocess_results.json_values(chunked(data, size))) == elements


def test_json_lines_and_an_empty_array_are_read_too():
    lines = b'{"a": 1}\n{"a": 2}\n'
    assert list(reprocess_results.json_values(chunked(lines, 3))) == [{"a": 1}, {"a": 2}]
    assert list(reprocess_results.json_values([b"[", b"]"])) == []
    assert list(reprocess_results.json_values([])) == []


def test_a_truncated_result_file_is_an_error_not_a_short_count():
    with pytest.raises(ValueError, match="not JSON"):
        list(reprocess_results.json_values([b'[{"a": 1}, {"a": ']))


def test_ten_thousand_children_stream_without_holding_the_file():
    """A million images in batches of 100: 10,000 children (about 50 MB of results). Each
    element is yielded before the chunks after it are read: the file is never held whole."""
    one = json.dumps(child("SUCCEEDED", [f"k{i}" for i in range(100)], counts(listed=100, enqueue=100)))
    read = []

    def file_chunks():
        yield b"["
        for i in range(10_000):
            read.append(i)
            yield (("," if i else "") + one).encode()
        yield b"]"

    summary = reprocess_results.Summary()
    for number, element in enumerate(reprocess_results.json_values(file_chunks())):
        assert len(read) <= number + 2  # this element's chunk and at most one more
        summary.add("SUCCEEDED", element)
    assert (summary.listed, summary.enqueued) == (1_000_000, 1_000_000)
