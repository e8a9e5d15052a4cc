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
3. The interpreter's errors (``InvalidDefinition`` for a definition it cannot
   parse, ``InvalidExecutionInput``, ...) reach the client with an empty error
   code: they name it in ``code``, moto's JSON errors read ``TYPE``. Here they
   carry their name, as Step Functions' API reference lists them.
4. A path through a literal index, such as ``$.Items[0].key``, selects a list
   (``["poison"]``) where Step Functions selects the value: a reference path
   "can identify only a single node in a JSON structure" (Amazon States
   Language, Reference Paths), so a Choice rule on it never matched. Here only
   a wildcard, slice, filter or descendant path gives a list.
5. A Distributed Map (``ItemReader`` over ``s3:listObjectsV2``, ``ItemBatcher``,
   tolerated failures, ``MaxConcurrency``, ``ResultWriter``): see
   ``local.moto_sfn_map``.

``local.moto_server`` calls ``patch()`` before serving; docs/local-stack.md
("Step Functions") lists what is patched and what is not emulated.
"""

from __future__ import annotations

import importlib
import json
import re
import uuid
from typing import Any

from local import moto_sfn_map

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


def _patch_error_codes() -> None:
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser import api

    for value in vars(api).values():
        if isinstance(value, type) and issubclass(value, AWSError) and value is not AWSError:
            name = value.__dict__.get("code")
            if isinstance(name, str) and not value.__dict__.get("TYPE"):
                value.TYPE = name


# Paths that may select several nodes: a wildcard, a slice, a filter or a descendant.
MANY_NODES = re.compile(r"\[\s*(\*|\?|-?\d*\s*:)|\.\.|\.\*")
JSON_PATH_USERS = (
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
    "moto.stepfunctions.parser.asl.component.intrinsic.argument.argument",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.timestamp_operators",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.boolean_equals",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.numeric",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.string_operators",
    "moto.stepfunctions.parser.asl.eval.states",
)


def _patch_json_path() -> None:
    from jsonpath_ng.ext import parse
    from jsonpath_ng.jsonpath import Index
    from moto.stepfunctions.parser.asl.utils import json_path

    original = json_path.extract_json

    def extract_json(path: str, data: Any) -> Any:
        if not MANY_NODES.search(path):
            matches = parse(path).find(data)
            if len(matches) == 1 and not isinstance(matches[0].path, Index):
                return matches[0].value
        return original(path, data)

    json_path.extract_json = extract_json
    for name in JSON_PATH_USERS:
        module = importlib.import_module(name)
        if getattr(module, "extract_json", None) is original:
            module.extract_json = extract_json


def patch() -> None:
    """Make moto's Step Functions answer and run as described above."""
    _patch_responses()
    _patch_execution_names()
    _patch_error_codes()
    _patch_json_path()
    moto_sfn_map.patch()
