"""A Distributed Map in moto 5.2.5's ASL interpreter, run as Step Functions runs it.

Part of ``local.moto_sfn`` (which calls ``patch()``); what differs from AWS and what is done here:

1. ``ItemReader`` ``arn:aws:states:::s3:listObjectsV2`` reads only the first
   page (1,000 keys), fails on an empty listing (no ``Contents``) and hands
   each child the SDK's object, whose ``datetime`` makes ``DescribeExecution``
   fail with HTTP 500. Here it reads every page; an empty listing is zero
   items (the map succeeds with none); each item is what AWS shows a child:
   ``{"Etag", "Key", "LastModified", "Size", "StorageClass"}`` with
   ``LastModified`` in epoch seconds (the ItemReader guide's example:
   ``"LastModified": 1668699881``).
2. ``ItemBatcher`` is not in moto's grammar: a definition with one is refused
   at creation. Here it is taken out before moto parses the definition and
   applied when the map runs, as the ItemBatcher guide describes: the items
   (after ``ItemSelector``) are grouped by ``MaxItemsPerBatch`` and
   ``MaxInputBytesPerBatch`` (or their ``...Path`` forms; at most 256 KiB a
   batch) and each child gets ``{"Items": [...], "BatchInput": {...}}``
   (``BatchInput`` only when the definition has one; its ``.$`` fields are
   JSONPaths on the state input or, with ``$$``, the context object).
3. A failed child never fails the map in moto. Here the Map Run fails with
   ``States.ExceedToleratedFailureThreshold`` once the failed items exceed
   ``ToleratedFailureCount`` or ``ToleratedFailurePercentage`` (any failure
   when neither is set, both default to 0); a failed batch counts every item
   in it. Decided when every child has finished (AWS may stop earlier).
   moto's grammar also refuses an integer ``ToleratedFailurePercentage``
   (``10``; AWS takes any number from 0 to 100, and Terraform's ``jsonencode``
   writes integers so): it is given to moto as ``10.0``.
4. DescribeMapRun's item and execution counts count items (a batch counts
   each of its items) and show every item as pending from the start, so
   progress is (succeeded + failed) / total. ``MaxConcurrency`` is honoured;
   with 0 (AWS: up to 10,000 children at once) at most
   ``LOCAL_MAX_CHILDREN`` run at once here, each a thread. moto also
   ran each worker's children by recursion, which overflows the stack past a
   few hundred children a worker; here it loops.
5. ``ResultWriter`` wrote an empty manifest. Here it writes what the
   ResultWriter guide describes under ``<Prefix>/<map run id>/``:
   ``manifest.json`` (``DestinationBucket``, ``MapRunArn``, ``ResultFiles``
   with ``FAILED``, ``PENDING`` and ``SUCCEEDED`` lists of ``{"Key", "Size"}``)
   and ``SUCCEEDED_0.json`` / ``FAILED_0.json``, each a JSON array of the
   children's executions (``ExecutionArn``, ``Input``, ``Output`` or ``Error``
   and ``Cause``, ``Status``, ...), written when the map run ends, succeeded
   or failed past its tolerated failures (AWS writes a failed run's results
   too: ``PENDING_n`` holds "child workflow executions that weren't started
   because the Map Run failed"; here every child has run by then, so
   ``PENDING`` stays empty). The map's output is
   ``{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}``, the map run ARN
   ``...:mapRun:<machine>/<label>:<id>`` and the key ``<Prefix>/<id>/manifest.json``.
"""

from __future__ import annotations

import copy
import datetime
import json
import threading
import uuid
from typing import Any

LOCAL_MAX_CHILDREN = 32  # children running at once when MaxConcurrency is 0 (threads in the emulator)
MAX_BATCH_BYTES = 256 * 1024  # ItemBatcher: "no limits on the batch size under the 256KB limit"
BATCHER_FIELDS = {
    "MaxItemsPerBatch",
    "MaxItemsPerBatchPath",
    "MaxInputBytesPerBatch",
    "MaxInputBytesPerBatchPath",
    "BatchInput",
}
THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"

_parsing = threading.local()  # the ItemBatchers of the definition being parsed, by Map state name


# -- ItemReader: listObjectsV2 ---------------------------------------------------------------------


def listed_item(obj: dict[str, Any]) -> dict[str, Any]:
    """One ListObjectsV2 ``Contents`` entry as the item a Distributed Map child receives on AWS."""
    return {
        "Etag": obj["ETag"],
        "Key": obj["Key"],
        "LastModified": int(obj["LastModified"].timestamp()),
        "Size": obj["Size"],
        "StorageClass": obj.get("StorageClass", "STANDARD"),
    }


def _patch_item_reader() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3

    def _handle_list_objects_v2(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        s3 = resource_eval_s3.ResourceEvalS3._get_s3_client(
            resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
        )
        parameters = dict(env.stack.pop())
        items: list[dict[str, Any]] = []
        while True:
            page = s3.list_objects_v2(**parameters)
            items.extend(listed_item(obj) for obj in page.get("Contents", []))
            if not page.get("IsTruncated"):
                break
            parameters["ContinuationToken"] = page["NextContinuationToken"]
        env.stack.append(items)

    resource_eval_s3.ResourceEvalS3._handle_list_objects_v2 = staticmethod(_handle_list_objects_v2)


# -- ItemBatcher: taken out of the definition, kept on the Map state --------------------------------


def batcher_errors(name: str, spec: Any, distributed: bool) -> list[str]:
    """What Step Functions refuses in an ItemBatcher (the ItemBatcher guide's fields and limits)."""
    where = f"/States/{name}/ItemBatcher"
    if not isinstance(spec, dict):
        return [f"{where}: must be an object"]
    errors = [
        f"{where}/{field}: is not a field of ItemBatcher" for field in spec if field not in BATCHER_FIELDS
    ]
    if not distributed:
        errors.append(
            f"{where}: ItemBatcher is allowed only in a Map whose ProcessorConfig Mode is DISTRIBUTED"
        )
    for field in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
        if field in spec and f"{field}Path" in spec:
            errors.append(f"{where}: give {field} or {field}Path, not both")
    items, size = spec.get("MaxItemsPerBatch"), spec.get("MaxInputBytesPerBatch")
    if items is not None and (not isinstance(items, int) or isinstance(items, bool) or items < 1):
        errors.append(f"{where}/MaxItemsPerBatch: must be a positive integer")
    if size is not None and (
        not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH_BYTES
    ):
        errors.append(f"{where}/MaxInputBytesPerBatch: must be an integer from 1 to {MAX_BATCH_BYTES}")
    if not any(f in spec for f in ("MaxItemsPerBatch", "MaxItemsPerBatchPath", "MaxInputBytesPerBatch")) and (
        "MaxInputBytesPerBatchPath" not in spec
    ):
        errors.append(f"{where}: give MaxItemsPerBatch or MaxInputBytesPerBatch (or a ...Path)")
    if "BatchInput" in spec and not isinstance(spec["BatchInput"], dict):
        errors.append(f"{where}/BatchInput: must be an object")
    return errors


def strip_batchers(definition: str) -> tuple[str, dict[str, dict[str, Any]], list[str]]:
    """The definition as moto's grammar takes it, the ItemBatchers by Map state name, and errors.

    ItemBatcher fields are taken out; an integer ToleratedFailurePercentage becomes a decimal."""
    try:
        document = json.loads(definition)
    except ValueError:
        return definition, {}, []  # moto's parser reports it
    found: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    changed = False

    def walk(states: Any) -> None:
        for name, state in (states or {}).items() if isinstance(states, dict) else ():
            if not isinstance(state, dict):
                continue
            percentage = state.get("ToleratedFailurePercentage")
            if (
                state.get("Type") == "Map"
                and isinstance(percentage, int)
                and not isinstance(percentage, bool)
            ):
                # A number from 0 to 100; moto's grammar takes only a decimal point (10.0, not 10).
                state["ToleratedFailurePercentage"] = float(percentage)
                nonlocal changed
                changed = True
            if state.get("Type") == "Map" and "ItemBatcher" in state:
                spec = state.pop("ItemBatcher")
                processor = state.get("ItemProcessor") or {}
                mode = (processor.get("ProcessorConfig") or {}).get("Mode")
                errors.extend(batcher_errors(name, spec, mode == "DISTRIBUTED"))
                found[name] = spec
            for field in ("ItemProcessor", "Iterator"):
                if isinstance(state.get(field), dict):
                    walk(state[field].get("States"))
            for branch in state.get("Branches") or []:
                if isinstance(branch, dict):
                    walk(branch.get("States"))

    if isinstance(document, dict):
        walk(document.get("States"))
    return (json.dumps(document) if found or changed else definition), found, errors


def _patch_parser() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
        ToleratedFailureCountDecl,
        ToleratedFailurePercentageDecl,
    )
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

    original_parse = AmazonStateLanguageParser.parse
    original_props = StateMap.from_state_props

    def parse(definition: str) -> Any:
        stripped, batchers, errors = strip_batchers(definition)
        if errors:
            raise ASLParserException(errors=errors)
        _parsing.batchers = batchers
        try:
            return original_parse(stripped)
        finally:
            _parsing.batchers = {}

    def from_state_props(self: Any, state_props: Any) -> None:
        original_props(self, state_props)
        component = self.iteration_component
        component.item_batcher = getattr(_parsing, "batchers", {}).get(self.name)
        component.local_result_writer = self.result_writer  # written even when the map run fails
        component.tolerance_given = (
            state_props.get(ToleratedFailureCountDecl) is not None,
            state_props.get(ToleratedFailurePercentageDecl) is not None,
        )

    AmazonStateLanguageParser.parse = staticmethod(parse)
    StateMap.from_state_props = from_state_props


# -- Running the map: batches, concurrency, failures ------------------------------------------------


def _path_value(path: str, state_input: Any, context: Any) -> Any:
    from moto.stepfunctions.parser.asl.utils.json_path import extract_json

    if path.startswith("$$"):
        return extract_json("$" + path[2:], context)
    if path.startswith("$"):
        return extract_json(path, state_input)
    raise ValueError(f"ItemBatcher: {path!r} is not a JSONPath (intrinsic functions are not emulated here)")


def payload(template: Any, state_input: Any, context: Any) -> Any:
    """A payload template (``BatchInput``): fields ending in ``.$`` take the value at their path."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _path_value(value, state_input, context)
            else:
                out[key] = payload(value, state_input, context)
        return out
    if isinstance(template, list):
        return [payload(value, state_input, context) for value in template]
    return template


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def batches(
    items: list[Any], batch_input: Any, max_items: int | None, max_bytes: int
) -> list[dict[str, Any]]:
    """Each child's input: ``{"Items": [...]}`` (plus ``BatchInput``), within both limits.

    An item too big for a batch on its own goes alone (Step Functions would fail the map run)."""

    def envelope(group: list[Any]) -> dict[str, Any]:
        return {"Items": group} if batch_input is None else {"Items": group, "BatchInput": batch_input}

    empty = _size(envelope([]))
    out: list[dict[str, Any]] = []
    group: list[Any] = []
    used = empty
    for item in items:
        grown = used + _size(item) + (1 if group else 0)
        if group and ((max_items is not None and len(group) >= max_items) or grown > max_bytes):
            out.append(envelope(group))
            group, grown = [], empty + _size(item)
        group.append(item)
        used = grown
    if group:
        out.append(envelope(group))
    return out


def _selected(env: Any, eval_input: Any, items: list[Any], map_input: Any) -> list[Any]:
    """The items after ItemSelector, evaluated per item as moto's worker does (``$$.Map.Item``)."""
    from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData

    if eval_input.item_selector is None:
        return list(items)
    out = []
    for index, item in enumerate(items):
        frame = env.open_inner_frame()
        try:
            frame.states.context_object.context_object_data["Map"] = MapData(
                Item=ItemData(Index=index, Value=item)
            )
            frame.states.reset(input_value=map_input)
            frame.stack.append(map_input)
            eval_input.item_selector.eval(frame)
            out.append(frame.stack.pop())
        finally:
            env.delete_frame(frame)
    return out


def _batched(component: Any, env: Any, eval_input: Any, items: list[Any]) -> tuple[list[Any], list[int], Any]:
    """The children's inputs, the number of items each holds, and the worker's eval input."""
    spec = getattr(component, "item_batcher", None)
    if spec is None:
        return items, [1] * len(items), eval_input
    map_input = env.stack[-1] if env.stack else env.states.get_input()
    context = env.states.context_object.context_object_data
    selected = _selected(env, eval_input, items, map_input)
    max_items = spec.get("MaxItemsPerBatch")
    if "MaxItemsPerBatchPath" in spec:
        max_items = int(_path_value(spec["MaxItemsPerBatchPath"], map_input, context))
    max_bytes = spec.get("MaxInputBytesPerBatch", MAX_BATCH_BYTES)
    if "MaxInputBytesPerBatchPath" in spec:
        max_bytes = min(
            int(_path_value(spec["MaxInputBytesPerBatchPath"], map_input, context)), MAX_BATCH_BYTES
        )
    batch_input = payload(spec["BatchInput"], map_input, context) if "BatchInput" in spec else None
    inputs = batches(selected, batch_input, max_items, max_bytes)
    worker_input = copy.copy(eval_input)
    worker_input.item_selector = None  # already applied to each item
    worker_input.parameters = None
    return inputs, [len(batch["Items"]) for batch in inputs], worker_input


def exceeds_tolerance(
    given: tuple[bool, bool], count: int, percentage: float, failed: int, total: int
) -> bool:
    """Whether the failed items make the Map Run fail (ToleratedFailureCount / ...Percentage)."""
    if failed == 0:
        return False
    count_given, percentage_given = given
    if not count_given and not percentage_given:
        return True
    if count_given and failed > count:
        return True
    return bool(percentage_given and total and failed * 100.0 / total > percentage)


def _threshold_failure(env: Any) -> Exception:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    error = StatesErrorNameType.StatesExceedToleratedFailureThreshold
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error),
            event_type=HistoryEventType.MapRunFailed,
            event_details=EventDetails(
                executionFailedEventDetails=ExecutionFailedEventDetails(
                    error=error.to_name(), cause=THRESHOLD_CAUSE
                )
            ),
        )
    )


def _patch_map_run() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (  # noqa: E501
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.job import JobPool

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        items: list[Any] = env.stack.pop()
        inputs, sizes, worker_input = _batched(self, env, eval_input, items)
        job_pool = JobPool(job_program=self._get_iteration_program(), job_inputs=inputs)
        job_pool.local_sizes = sizes
        job_pool.local_results = {}
        job_pool.local_lock = threading.Lock()
        record = eval_input.map_run_record
        # DescribeMapRun's counts from the start: every item (and child) pending until its child runs.
        for counter, number in ((record.item_counter, sum(sizes)), (record.execution_counter, len(inputs))):
            counter.total.count(number)
            counter.pending.count(number)
        limit = record.max_concurrency or LOCAL_MAX_CHILDREN
        for _ in range(min(len(inputs), limit, LOCAL_MAX_CHILDREN)):
            self._launch_worker(env=env, eval_input=worker_input, job_pool=job_pool)
        job_pool.await_jobs()
        worker_exception = job_pool.get_worker_exception()
        if worker_exception is not None:
            raise worker_exception
        results = [job_pool.local_results[i] for i in sorted(job_pool.local_results)]
        record.local_results = results
        failed = sum(
            sizes[i] for i, result in job_pool.local_results.items() if result["Status"] != "SUCCEEDED"
        )
        given = getattr(self, "tolerance_given", (False, False))
        tolerated = (record.tolerated_failure_count, record.tolerated_failure_percentage)
        if exceeds_tolerance(given, *tolerated, failed, sum(sizes)):
            writer = getattr(self, "local_result_writer", None)
            if writer is not None:  # AWS exports a failed map run's results too (FAILED_n, PENDING_n)
                env.stack.append([])
                writer.eval(env)
                env.stack.pop()
            raise _threshold_failure(env)
        env.stack.append([closed.job_output for closed in job_pool.get_closed_jobs()])

    DistributedIterationComponent._map_run = _map_run


def _timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


COUNTERS = {"SUCCEEDED": "succeeded", "ABORTED": "aborted", "TIMED_OUT": "timed_out"}  # else "failed"


def _count_started(record: Any, size: int) -> None:
    """A child starts: its items and its execution move from pending to running."""
    record.item_counter.pending.offset(-size)
    record.item_counter.running.count(size)
    record.execution_counter.pending.offset(-1)
    record.execution_counter.running.count()


def _count_ended(record: Any, status: str, size: int) -> None:
    """A child ends: its items and its execution move from running to their final counter."""
    counter = COUNTERS.get(status, "failed")
    getattr(record.item_counter, counter).count(size)
    getattr(record.execution_counter, counter).count()
    if status == "SUCCEEDED":
        record.item_counter.results_written.count(size)
        record.execution_counter.results_written.count()
    record.item_counter.running.offset(-size)
    record.execution_counter.running.offset(-1)


def _run_child(worker: Any, env: Any, job: Any) -> tuple[str, Any, Any, Any]:
    """One child execution of the map run: its status, output, error and cause."""
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped
    from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData

    try:
        env.states.context_object.context_object_data["Map"] = MapData(
            Item=ItemData(Index=job.job_index, Value=job.job_input)
        )
        env.states.reset(job.job_input)
        env.stack.append(env.states.get_input())
        worker._eval_input(env_frame=env)
        job.job_program.eval(env)
        end = env.program_state()
    except EvalTimeoutError:
        return "TIMED_OUT", None, None, None
    except FailureEventException as failure:
        return ("FAILED", None, *(failure.extract_error_cause_pair() or (None, None)))
    except Exception as exc:  # a child's failure is the map's to count, as on AWS
        return "FAILED", None, type(exc).__name__, str(exc)
    if isinstance(end, ProgramError):
        details = end.error or {}
        return "FAILED", None, details.get("error"), details.get("cause")
    if isinstance(end, ProgramStopped):
        return "ABORTED", None, None, None
    return "SUCCEEDED", env.states.get_input(), None, None


def child_result(state_machine: str, run_id: str, job_input: Any, outcome: tuple, started: str) -> dict:
    """A child execution as the ResultWriter's SUCCEEDED_n/FAILED_n files list it; ``outcome`` is
    what ``_run_child`` answers (status, output, error, cause)."""
    status, output, error, cause = outcome
    name = str(uuid.uuid4())
    result: dict[str, Any] = {
        "ExecutionArn": f"{state_machine.replace(':stateMachine:', ':execution:')}/{run_id}:{name}",
        "Input": json.dumps(job_input),
        "InputDetails": {"Included": True},
        "Name": name,
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "StartDate": started,
        "StateMachineArn": state_machine,
        "Status": status,
        "StopDate": _timestamp(),
    }
    if status == "SUCCEEDED":
        # As the ResultWriter guide's "Transformation NONE" example shows a succeeded child.
        result.update(
            Output=json.dumps(output),
            OutputDetails={"Included": True},
            RedriveStatusReason="Execution is SUCCEEDED and cannot be redriven",
        )
    else:
        result.update(Error=error or "States.TaskFailed", Cause=cause or "")
    return result


def _eval_job(self: Any, env: Any, job: Any) -> None:
    """moto's worker runs one child: counted as AWS counts it, its result kept for the ResultWriter."""
    record = self._map_run_record
    sizes = getattr(self._job_pool, "local_sizes", None)
    size = sizes[job.job_index] if sizes else 1
    _count_started(record, size)
    started = _timestamp()
    outcome: tuple = ("FAILED", None, None, None)
    try:
        outcome = _run_child(self, env, job)
    finally:
        _count_ended(record, outcome[0], size)
        job.job_output = outcome[1]
        pool = self._job_pool
        if hasattr(pool, "local_results"):
            run_id = record.map_run_arn.split(":")[-1]
            result = child_result(record.map_state_machine_arn, run_id, job.job_input, outcome, started)
            with pool.local_lock:
                pool.local_results[job.job_index] = result


def _eval_pool(self: Any, job: Any, worker_frame: Any) -> None:
    """moto's loop over the pool's jobs, without recursing once per child."""
    while job is not None:
        job_frame = worker_frame.open_inner_frame()
        self._eval_job(env=job_frame, job=job)
        worker_frame.delete_frame(job_frame)
        if isinstance(job.job_output, Exception) or self.stopped():
            break
        next_job = self._job_pool.next_job()
        if next_job is None:
            break
        self._job_pool.close_job(job)
        job = next_job
    self._env.delete_frame(worker_frame)
    if job is not None:
        self._job_pool.close_job(job)


def _patch_worker() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (  # noqa: E501
        DistributedItemProcessorWorker,
    )

    DistributedItemProcessorWorker._eval_job = _eval_job
    DistributedItemProcessorWorker._eval_pool = _eval_pool


# -- ResultWriter ------------------------------------------------------------------------------------


def _patch_result_writer() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3,
    )

    def _handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = dict(env.stack.pop())
        env.stack.pop()  # the children's outputs: written from the map run's results below
        s3 = resource_eval_s3.ResourceEvalS3._get_s3_client(
            resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
        )
        record = env.map_run_record_pool_manager.get_all().pop()
        results = getattr(record, "local_results", [])
        prefix = parameters.get("Prefix", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        base = f"{prefix}{record.map_run_arn.split(':')[-1]}/"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status, chosen in (
            ("SUCCEEDED", [r for r in results if r["Status"] == "SUCCEEDED"]),
            ("FAILED", [r for r in results if r["Status"] != "SUCCEEDED"]),
        ):
            if not chosen:
                continue
            body = json.dumps(chosen).encode()
            key = f"{base}{status}_0.json"
            s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=body)
            files[status].append({"Key": key, "Size": len(body)})
        manifest = {
            "DestinationBucket": parameters["Bucket"],
            "MapRunArn": record.map_run_arn,
            "ResultFiles": files,
        }
        key = f"{base}manifest.json"
        s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=json.dumps(manifest).encode())
        env.stack.append(
            {
                "MapRunArn": record.map_run_arn,
                "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": key},
            }
        )

    resource_eval_s3.ResourceEvalS3._handle_put_object = staticmethod(_handle_put_object)


def patch() -> None:
    """Run a Distributed Map as described above."""
    _patch_item_reader()
    _patch_parser()
    _patch_map_run()
    _patch_worker()
    _patch_result_writer()
