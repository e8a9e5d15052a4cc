"""Step Functions as AWS answers and runs it, where moto 5.2.5 does not.

The local stack turns on moto's ASL interpreter (``execute_state_machine``,
``local.emulator``), which really runs executions. What differs from AWS:

1. ``ValidateStateMachineDefinition`` and ``ListStateMachineVersions`` are not
   implemented (HTTP 500); the aws provider calls the first at plan and the
   second on refresh of an ``aws_sfn_state_machine``. Here the first answers
   ``OK`` or ``FAIL`` with diagnostics (``INVALID_JSON_DESCRIPTION`` for text
   that is not JSON, ``MISSING_DESCRIPTION`` for none,
   ``SCHEMA_VALIDATION_FAILED`` for what the interpreter's parser rejects), the
   second the machine's published versions, newest first (none unless
   published).
2. ``StartExecution`` without a name names the execution ``None``, so a second
   one is refused (``ExecutionAlreadyExists``). Step Functions names it with a
   UUID ("If you don't provide a name for the execution, Step Functions
   automatically generates a universally unique identifier (UUID) as the
   execution name", StartExecution API reference).
3. A Distributed Map's ``ItemReader`` ``arn:aws:states:::s3:listObjectsV2``
   reads only the first page (1,000 keys), fails on an empty listing (no
   ``Contents``) and hands each child the SDK's object, whose ``datetime``
   makes ``DescribeExecution`` fail with HTTP 500. Here it reads every page;
   an empty listing is zero items (the map succeeds with none); each item is
   what AWS shows a child: ``{"Etag", "Key", "LastModified", "Size",
   "StorageClass"}`` with ``LastModified`` in epoch seconds (the ItemReader
   guide's example: ``"LastModified": 1668699881``).

``local.moto_server`` calls ``patch()`` before serving; docs/local-stack.md
("Step Functions") lists what is patched and what is not emulated.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

# ValidateStateMachineDefinition's diagnostic codes (ValidateStateMachineDefinitionDiagnostic).
INVALID_JSON = "INVALID_JSON_DESCRIPTION"
MISSING = "MISSING_DESCRIPTION"
SCHEMA = "SCHEMA_VALIDATION_FAILED"


def _diagnostic(code: str, message: str, location: str | None = None) -> dict[str, str]:
    found = {"severity": "ERROR", "code": code, "message": message}
    if location:
        found["location"] = location
    return found


def validate(definition: str | None) -> list[dict[str, str]]:
    """The ERROR diagnostics AWS would give ``definition`` (none: it can be created)."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

    if not definition or not definition.strip():
        return [_diagnostic(MISSING, "Received a null or empty workflow input.")]
    try:
        json.loads(definition)
    except ValueError as exc:
        line, column = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
        return [
            _diagnostic(INVALID_JSON, f"JSON syntax problem found: {exc}", f"line {line}, column {column}")
        ]
    try:
        AmazonStateLanguageParser.parse(definition)
    except ASLParserException as exc:
        return [_diagnostic(SCHEMA, "; ".join(exc.errors) or "Schema validation reported errors.")]
    except Exception as exc:  # the parser's other failures are definitions it cannot read
        return [_diagnostic(SCHEMA, f"{type(exc).__name__}: {exc}")]
    return []


def _patch_responses() -> None:
    from moto.core.responses import ActionResult
    from moto.stepfunctions.exceptions import StateMachineDoesNotExist
    from moto.stepfunctions.responses import StepFunctionResponse

    def validate_state_machine_definition(self: Any) -> ActionResult:
        diagnostics = validate(self._get_param("definition"))
        max_results = self._get_int_param("maxResults") or 100
        return ActionResult(
            {
                "result": "FAIL" if diagnostics else "OK",
                "diagnostics": diagnostics[:max_results],
                "truncated": len(diagnostics) > max_results,
            }
        )

    def list_state_machine_versions(self: Any) -> ActionResult:
        arn = self._get_param("stateMachineArn")
        try:
            machine = self.stepfunction_backend.describe_state_machine(arn)
        except StateMachineDoesNotExist:
            versions = []
        else:
            versions = sorted(
                getattr(machine, "versions", {}).values(), key=lambda v: v.version, reverse=True
            )
        items = [{"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for v in versions]
        return ActionResult({"stateMachineVersions": items})

    StepFunctionResponse.validate_state_machine_definition = validate_state_machine_definition
    StepFunctionResponse.list_state_machine_versions = list_state_machine_versions


def _patch_execution_names() -> None:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(
        self: Any, state_machine_arn: str, name: str | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution


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


def patch() -> None:
    """Make moto's Step Functions answer and run as described above."""
    _patch_responses()
    _patch_execution_names()
    _patch_item_reader()
