"""IAM in the emulator as AWS enforces it, where moto 5.2.5 falls short.

moto checks every request against the caller's identity-based policies once
``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served (the local stack
turns this on after creating its administrator: ``local.emulator``), but
(docs/local-stack-iam.md has the details and the sources):

1. DynamoDB requests are checked against the resource ``*``, so a statement
   scoped to a table ARN never matches and every call is denied. Here the
   resource is the table's ARN (an index's for a Query or Scan of one), as in IAM.
   EventBridge's ``PutEvents`` likewise: here it is the event bus's ARN.
2. Batch SQS calls are checked as ``sqs:DeleteMessageBatch`` (and so on);
   IAM authorises them with the single-message action (``sqs:DeleteMessage``).
   A denial of a JSON-protocol call (DynamoDB, SQS, EventBridge) comes as the service's
   JSON error (DynamoDB: HTTP 400 ``AccessDeniedException``), where moto sends
   IAM's XML, which the SDK cannot read.
3. A bodiless request (a REST GET such as Lambda's GetFunction) fails moto's
   signature check: moto hashes its query, or its headers when it has none,
   as the payload. Here the payload is empty, as signed.
4. A presigned URL or POST (no ``Authorization`` header) makes moto fail with
   HTTP 500. Here it is authorised as its signer (the credential in the query
   or form), on the object's ARN for a POST, as S3 does; the signature itself
   is not verified. A request with no credentials at all is denied.
5. A trust policy with a ``Service`` principal makes ``sts:AssumeRole`` fail
   with HTTP 500; here a user or role caller is simply not that principal
   (AccessDenied, as in IAM).
6. Expired temporary credentials keep working; here they are refused
   (``ExpiredToken``), as by AWS.
7. S3 answers 404 for a missing key whatever the caller may do. AWS answers
   403 AccessDenied when the caller lacks ``s3:ListBucket`` on the bucket
   ("If you don't have the s3:ListBucket permission, Amazon S3 returns an
   HTTP status code 403", GetObject and HeadObject API reference).

Lambda itself assumes each function's execution role (the role's trust policy
must name the service ``lambda.amazonaws.com``); customers cannot call that
path, so the emulator offers it on loopback: ``POST /_local/lambda/assume-role``
with ``{"RoleArn", "RoleSessionName", "DurationSeconds"}`` answers the
credentials, or 403 when the trust policy does not let Lambda assume the role.
With ``"Service"`` it does the same for another service that acts with a role
it is given (``scheduler.amazonaws.com``: a schedule's role).
``GET /_local/iam/calls`` lists the authorisations decided so far
(principal, action, resource, allowed), for tests.
"""

from __future__ import annotations

import collections
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlparse

LAMBDA_SERVICE = "lambda.amazonaws.com"
ASSUME_ROLE_PATH = "/_local/lambda/assume-role"
CALLS_PATH = "/_local/iam/calls"
# IAM authorises each batch call with its single-message action.
IAM_ACTIONS = {
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    # Lambda's Invoke operation is authorised as lambda:InvokeFunction (Service Authorization Reference).
    "lambda:Invoke": "lambda:InvokeFunction",
}

# JSON-protocol services: (__type, HTTP status) of their AccessDenied answer. (SQS also sends
# the query-compatible code "AccessDenied" in a header that moto's error path cannot set.)
JSON_DENIALS = {
    "dynamodb": ("com.amazonaws.dynamodb.v20120810#AccessDeniedException", 400),
    "sqs": ("com.amazon.coral.service#AccessDeniedException", 403),
    "events": ("AccessDeniedException", 400),
    "awslambda": ("AccessDeniedException", 403),
}

_calls: collections.deque[dict[str, Any]] = collections.deque(maxlen=20000)
_calls_lock = threading.Lock()


def _record(principal: str, action: str, resource: str, allowed: bool) -> None:
    with _calls_lock:
        _calls.append({"principal": principal, "action": action, "resource": resource, "allowed": allowed})


def calls() -> list[dict[str, Any]]:
    with _calls_lock:
        return list(_calls)


def _presigned(response: Any) -> tuple[str, str | None] | None:
    """The credential scope and token of a query-string or form (presigned POST) signature, if any."""
    fields = {}
    for name, value in response.querystring.items():
        fields[name.lower()] = value[0] if isinstance(value, list) else value
    token = fields.get("x-amz-security-token")
    if "x-amz-credential" in fields:  # SigV4
        return fields["x-amz-credential"], token
    if "awsaccesskeyid" in fields:  # SigV2: only the key; S3 is the service
        return f"{fields['awsaccesskeyid']}/19700101/{response.region}/s3/aws4_request", token
    return None


def _table_arn(response: Any, resource: str) -> str:
    params = getattr(response, "params", None) or {}
    table = params.get("TableName") if isinstance(params, dict) else None
    # BatchGetItem and BatchWriteItem name their tables in RequestItems and are authorised on
    # each table's ARN (DynamoDB API permissions reference): one table, that table's ARN.
    requested = params.get("RequestItems") if isinstance(params, dict) else None
    if not table and isinstance(requested, dict) and len(requested) == 1:
        (table,) = requested
    if not table:
        return resource
    arn = table
    if not table.startswith("arn:"):
        arn = f"arn:{response.partition}:dynamodb:{response.region}:{response.current_account}:table/{table}"
    # A Query or Scan of an index is authorised on the index's ARN.
    index = params.get("IndexName")
    return f"{arn}/index/{index}" if index else arn


def _event_bus_arn(response: Any, resource: str) -> str:
    """PutEvents is authorised on the event bus its entries name (``default`` when none): the
    Service Authorization Reference lists ``event-bus`` as its resource type. Entries naming
    different buses stay on ``*`` (a scoped statement then allows none of them)."""
    if not str(response.headers.get("X-Amz-Target", "")).endswith(".PutEvents"):
        return resource
    try:
        body = response.body.decode() if isinstance(response.body, bytes) else response.body
        entries = json.loads(body or "{}").get("Entries") or []
    except (ValueError, AttributeError):
        return resource
    buses = {entry.get("EventBusName") or "default" for entry in entries}
    if len(buses) != 1:
        return resource
    (bus,) = buses
    if bus.startswith("arn:"):
        return bus
    return f"arn:{response.partition}:events:{response.region}:{response.current_account}:event-bus/{bus}"


def _function_arn(response: Any, resource: str) -> str:
    """Invoke is authorised on the function's ARN (qualified when the call names a version or
    alias), whichever form of name the caller used: Lambda's "Resources and conditions" page."""
    path = unquote(urlparse(response.uri).path)
    match = re.search(r"/functions/(?P<name>[^/]+)/invocations/?$", path)
    if not match:
        return resource
    name = match.group("name")
    qualifier = (response.querystring.get("Qualifier") or [None])[0]
    if name.startswith("arn:"):
        arn = name
    else:
        parts = name.split(":")
        if len(parts) >= 3 and parts[1] == "function":  # partial ARN: account:function:name[:qualifier]
            account, name = parts[0], ":".join(parts[2:])
        else:
            account = response.current_account
        arn = f"arn:{response.partition}:lambda:{response.region}:{account}:function:{name}"
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return arn


def _resource(response: Any, resource: str) -> str:
    if getattr(response, "service_name", None) == "awslambda":
        return _function_arn(response, resource)
    if getattr(response, "service_name", None) == "dynamodb":
        return _table_arn(response, resource)
    if getattr(response, "service_name", None) == "events":
        return _event_bus_arn(response, resource)
    # A presigned POST names its key in the form: S3 authorises the object, not the bucket.
    action = response.data.get("Action") if isinstance(response.data, dict) else None
    if action == "PutObject" and resource.count("/") == 0 and "key" in response.querystring:
        key = response.querystring["key"][0]
        return f"{resource}/{key}"
    return resource


def _authenticate_and_authorize_action(self: Any, iam_request_cls: type, resource: str = "*") -> None:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        return
    if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    headers = {k: v for k, v in self.headers.items()}
    signed = "Authorization" in headers
    if not signed:
        presigned = _presigned(self)
        if presigned is None:
            _record("anonymous", str(self._get_action()), resource, False)
            _deny_anonymous(iam_request_cls, self)
        # Authorised as its signer; the signature over the query or policy is not recomputed here.
        credential, token = presigned
        headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={credential}, Signature="
        if token:
            headers["X-Amz-Security-Token"] = token
    _refuse_expired(iam_request_cls, self.current_account, headers)
    query = urlparse(self.uri).query
    path = self.raw_path + (f"?{query}" if query else "")
    request = iam_request_cls(
        account_id=self.current_account,
        method=self.method,
        path=path,
        # moto re-encodes "data" as the payload when there is no raw body: right for a form
        # POST, wrong for a bodiless GET (its query, or its headers when it has none).
        data=self.data if self.raw_body or self.form_data else {},
        body=self.raw_body,
        headers=headers,
        action=self._get_action(),
    )
    request._action = IAM_ACTIONS.get(request._action, request._action)
    resource = _resource(self, resource)
    if signed:
        request.check_signature()
    try:
        request.check_action_permitted(resource)
    except Exception:
        _record(request._access_key.arn, request._action, resource, False)
        if getattr(self, "service_name", None) in JSON_DENIALS:
            _deny_json(self.service_name, request._access_key.arn, request._action, resource)
        raise
    _record(request._access_key.arn, request._action, resource, True)


def _deny_json(service: str, principal: str, action: str, resource: str) -> None:
    """The service's own JSON-protocol answer, where moto sends IAM's XML (which SDKs cannot parse)."""
    from moto.core.exceptions import JsonRESTError

    error_type, status = JSON_DENIALS[service]
    error = JsonRESTError(
        error_type, f"User: {principal} is not authorized to perform: {action} on resource: {resource}"
    )
    error.code = status
    raise error


def _refuse_expired(iam_request_cls: type, account: str, headers: dict[str, str]) -> None:
    """Temporary credentials past their expiration are refused (ExpiredToken), as by AWS."""
    from moto.core.exceptions import JsonRESTError
    from moto.core.utils import utcnow
    from moto.iam.access_control import S3IAMRequest
    from moto.s3.exceptions import S3ClientError
    from moto.sts.models import sts_backends

    key_id = headers["Authorization"].partition("Credential=")[2].partition("/")[0]
    if not key_id.startswith("ASIA"):
        return
    for partition in sts_backends.get(account, {}):
        for assumed in sts_backends[account][partition].assumed_roles:
            if assumed.access_key_id == key_id and assumed.expiration <= utcnow():
                if iam_request_cls is S3IAMRequest:
                    raise S3ClientError("ExpiredToken", "The provided token has expired.")
                error = JsonRESTError(
                    "ExpiredTokenException", "The security token included in the request is expired"
                )
                error.code = 400
                raise error


def _deny_anonymous(iam_request_cls: type, response: Any) -> None:
    from moto.core.exceptions import AccessDeniedError
    from moto.iam.access_control import S3IAMRequest
    from moto.s3.exceptions import S3AccessDeniedError

    if iam_request_cls is S3IAMRequest:
        raise S3AccessDeniedError()
    raise AccessDeniedError(user_arn="anonymous", action=str(response._get_action()))


def _check_principal(self: Any, principal: str) -> bool:
    """moto's check, with non-AWS principals (Service, Federated) never matching a user or role caller."""
    expected = self._statement.get("Principal")
    if not expected:
        return True
    if expected == "*":
        return True
    aws = expected.get("AWS") if isinstance(expected, dict) else None
    if aws is None:
        return False
    return aws == "*" or principal == aws or (isinstance(aws, list) and principal in aws)


def _listable(response: Any) -> bool:
    """Whether the caller may s3:ListBucket the request's bucket (moto's own check, so off when IAM is)."""
    from moto.s3.exceptions import S3AccessDeniedError

    action = response.data.get("Action")
    response.data["Action"] = "ListBucket"
    try:
        response._authenticate_and_authorize_s3_action(bucket_name=response.bucket_name)
    except S3AccessDeniedError:
        return False
    finally:
        response.data["Action"] = action
    return True


def _patch_s3_missing_key() -> None:
    from moto.s3 import responses
    from moto.s3.exceptions import BucketAccessDeniedError, MissingKey, MissingVersion

    cls = responses.S3Response
    original_get_key = cls._get_key
    original_head = cls.head_object

    def _get_key(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original_get_key(self, *args, **kwargs)
        except (MissingKey, MissingVersion):
            if not _listable(self):
                raise BucketAccessDeniedError(bucket=self.bucket_name) from None
            raise

    def head_object(self: Any, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
        status, headers, body = original_head(self, bucket_name, *args, **kwargs)
        if status == 404 and not _listable(self):
            return 403, {}, ""
        return status, headers, body

    cls._get_key = _get_key
    cls.head_object = head_object


def _statements(document: Any) -> list[dict[str, Any]]:
    doc = json.loads(document) if isinstance(document, str) else document
    statements = doc.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), value) is not None


def service_may_assume(trust_policy: Any, service: str = LAMBDA_SERVICE) -> bool:
    """Whether a role's trust policy lets ``service`` call sts:AssumeRole (an explicit Deny wins)."""
    allowed = False
    for statement in _statements(trust_policy):
        actions = _listed(statement.get("Action"))
        if not any(_matches(a, "sts:AssumeRole") for a in actions):
            continue
        principal = statement.get("Principal") or {}
        services = _listed(principal.get("Service")) if isinstance(principal, dict) else []
        if principal != "*" and service not in services:
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed


def lambda_may_assume(trust_policy: Any) -> bool:
    """Whether a role's trust policy lets the Lambda service call sts:AssumeRole."""
    return service_may_assume(trust_policy, LAMBDA_SERVICE)


def assume_role_as_service(
    role_arn: str, session_name: str, duration: int, service: str = LAMBDA_SERVICE
) -> dict[str, Any]:
    """What an AWS service does before it acts with a role it was given: assume it.

    Lambda assumes a function's execution role; EventBridge Scheduler
    (``scheduler.amazonaws.com``) a schedule's role before each target call.
    """
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    refused = (
        "The role defined for the function cannot be assumed by Lambda."
        if service == LAMBDA_SERVICE
        else f"{service} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    )
    account = role_arn.split(":")[4]
    partition = role_arn.split(":")[1]
    try:
        role = iam_backends[account][partition].get_role_by_arn(role_arn)
    except NotFoundException:
        raise PermissionError(refused) from None
    if not service_may_assume(role.assume_role_policy_document, service):
        raise PermissionError(refused)
    assumed = sts_backends[account][partition].assume_role(
        region_name="us-east-1",
        role_session_name=session_name,
        role_arn=role_arn,
        policy="",
        duration=duration,
        external_id="",
    )
    return {
        "AccessKeyId": assumed.access_key_id,
        "SecretAccessKey": assumed.secret_access_key,
        "SessionToken": assumed.session_token,
        "Expiration": assumed.expiration.timestamp(),
    }


def assume_role_as_lambda(role_arn: str, session_name: str, duration: int) -> dict[str, Any]:
    """What Lambda does before it starts an execution environment: assume the function's role."""
    return assume_role_as_service(role_arn, session_name, duration, LAMBDA_SERVICE)


class LocalIamRoutes:
    """WSGI middleware: the Lambda service's assume-role and the call log here, the rest to ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if path == CALLS_PATH and method == "GET":
            return _json(start_response, "200 OK", {"calls": calls()})
        if path != ASSUME_ROLE_PATH or method != "POST":
            return self.app(environ, start_response)
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(size) or b"{}")
            credentials = assume_role_as_service(
                str(request["RoleArn"]),
                str(request["RoleSessionName"]),
                int(request.get("DurationSeconds", 3600)),
                str(request.get("Service") or LAMBDA_SERVICE),
            )
        except PermissionError as exc:
            return _json(start_response, "403 Forbidden", {"error": str(exc)})
        except (KeyError, ValueError, TypeError) as exc:
            return _json(start_response, "400 Bad Request", {"error": f"{type(exc).__name__}: {exc}"})
        return _json(start_response, "200 OK", credentials)


def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def install(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Patch moto's IAM checks as described above; ``app`` wrapped with the local routes."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMPolicyStatement

    ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize_action
    IAMPolicyStatement._check_principal = _check_principal
    _patch_s3_missing_key()
    return LocalIamRoutes(app)
