"""The cloud runtime on one machine: the resources template.yaml declares, created in moto, and
Lambda invocations (moto's Step Functions engine calls them) dispatched to our handlers in
process instead of moto's Docker containers (DESIGN.md, "Testing the cloud runtime on one
machine"). A handler is found from its function's ``CodeUri`` and ``Handler`` in the template.
"""

from __future__ import annotations

import importlib
import io
import json
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaFunction

from tests.support.aws import ROOT, resource, template

STAGE = "test"
REGION = "eu-west-1"


@dataclass
class FakeContext:
    """What a handler reads of its Lambda context."""

    function_name: str = "contactsync-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:contactsync-test"
    aws_request_id: str = "req-1"
    timeout_seconds: float = 900.0
    remaining: Callable[[], float] | None = None

    def get_remaining_time_in_millis(self) -> int:
        left = self.remaining() if self.remaining is not None else self.timeout_seconds
        return int(left * 1000)


def functions() -> dict[str, dict[str, Any]]:
    """Every function of the template by logical id."""
    return {
        name: res["Properties"]
        for name, res in template()["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


def function_name(logical_id: str) -> str:
    raw = functions()[logical_id]["FunctionName"]["Fn::Sub"]
    return str(raw).replace("${Stage}", STAGE)


def handler_of(logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
    props = functions()[logical_id]
    module_name, attr = str(props["Handler"]).rsplit(".", 1)
    package = str(props["CodeUri"]).strip("/").replace("/", ".")
    module = importlib.import_module(f"{package}.{module_name}")
    handler: Callable[[dict[str, Any], Any], Any] = getattr(module, attr)
    return handler


@dataclass(frozen=True)
class Invocation:
    logical_id: str
    event: dict[str, Any]
    seconds: float
    error: str | None
    result: Any


@dataclass
class InProcessLambdas:
    """Replaces moto's Docker invocation with a call of our handler, and keeps a record of each
    call. ``fail`` can make chosen invocations fail as a Lambda error (an injected fault) before
    the handler runs."""

    by_name: dict[str, str] = field(default_factory=dict)  # function name -> logical id
    calls: Counter[str] = field(default_factory=Counter)
    invocations: list[Invocation] = field(default_factory=list)
    fail: Callable[[str, dict[str, Any]], Exception | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, function: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        payload = json.loads(event) if isinstance(event, str | bytes) else dict(event or {})
        logical = self.by_name[function.function_name]
        props = functions()[logical]
        context = FakeContext(
            function_name=function.function_name,
            memory_limit_in_mb=int(props.get("MemorySize", 512)),
            invoked_function_arn=function.function_arn,
            timeout_seconds=float(props.get("Timeout", 30)),
        )
        started = time.perf_counter()
        error: str | None = None
        result: Any = None
        try:
            injected = self.fail(logical, payload) if self.fail is not None else None
            if injected is not None:
                raise injected
            result = handler_of(logical)(payload, context)
        except Exception as exc:  # noqa: BLE001 - a Lambda error: the caller sees errorType
            error = type(exc).__name__
            answer = json.dumps({"errorType": error, "errorMessage": str(exc)[:500]})
        else:
            answer = json.dumps(result)
        with self.lock:
            self.calls[logical] += 1
            seconds = time.perf_counter() - started
            self.invocations.append(Invocation(logical, payload, seconds, error, result))
        return answer, error is not None, ""

    @contextmanager
    def installed(self) -> Iterator[InProcessLambdas]:
        original = LambdaFunction._invoke_lambda
        me = self

        def _invoke(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            return me.invoke(function, event)

        LambdaFunction._invoke_lambda = _invoke  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            LambdaFunction._invoke_lambda = original  # type: ignore[method-assign]


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def create_functions(
    lambdas: Any, iam: Any, logical_ids: list[str], dispatch: InProcessLambdas
) -> dict[str, str]:
    """Creates the functions in moto (a role and a small zip are enough: the code that runs is
    ours, in process); returns their ARNs by logical id."""
    role = iam.create_role(RoleName="contactsync-test-functions", AssumeRolePolicyDocument="{}")
    arns = {}
    for logical in logical_ids:
        props = functions()[logical]
        name = function_name(logical)
        created = lambdas.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role["Role"]["Arn"],
            Handler=str(props["Handler"]),
            Code={"ZipFile": _zip()},
            Timeout=int(props.get("Timeout", 30)),
            MemorySize=int(props.get("MemorySize", 512)),
        )
        arns[logical] = created["FunctionArn"]
        dispatch.by_name[name] = logical
    return arns


def state_machine_definition(function_arns: dict[str, str]) -> str:
    """The state machine's definition file as template.yaml deploys it: its
    DefinitionSubstitutions resolved to the functions created in moto."""
    props = resource("BulkSyncStateMachine")["Properties"]
    text = (ROOT / str(props["DefinitionUri"])).read_text()
    for key, value in props["DefinitionSubstitutions"].items():
        logical = value["Fn::GetAtt"][0]
        text = text.replace("${" + key + "}", function_arns[logical])
    return text


def queue_attributes(logical_id: str) -> dict[Any, str]:
    """A queue's attributes as the template declares them (moto ignores the KMS key)."""
    props = resource(logical_id)["Properties"]
    attributes: dict[Any, str] = {}
    for key in (
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "VisibilityTimeout",
        "MessageRetentionPeriod",
    ):
        if key in props:
            value = props[key]
            attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return attributes


def queue_name(logical_id: str) -> str:
    return str(resource(logical_id)["Properties"]["QueueName"]["Fn::Sub"]).replace(
        "${Stage}", STAGE
    )


def events_dir() -> Path:
    return ROOT / "events"


def stream_records(table_name: str, since: int = 0) -> list[dict[str, Any]]:
    """The table's stream records (moto's), from the ``since``-th on, as Lambda delivers them.
    moto serves no DynamoDB Streams API to this boto3, so they are read from its model."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(table_name)
    records = []
    assert table.stream_shard is not None
    for item in table.stream_shard.items[since:]:
        record = json.loads(json.dumps(item.to_json(), default=lambda d: d.timestamp()))
        record["awsRegion"] = REGION
        record["eventSourceARN"] = (
            f"arn:aws:dynamodb:{REGION}:{DEFAULT_ACCOUNT_ID}:table/x/stream/1"
        )
        records.append(record)
    return records


def matches(pattern: Any, value: Any) -> bool:
    """Lambda's event filtering for the rules template.yaml uses: nested objects, and lists of
    exact values (any one matches)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches(rule, value[key]) for key, rule in pattern.items()
        )
    if isinstance(pattern, list):
        return any(value == option for option in pattern)
    raise ValueError(f"no matcher for {pattern!r}")


def filtered(mapping_logical_id: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records an event source mapping of the template lets through its filters."""
    props = resource(mapping_logical_id)["Properties"]
    patterns = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    return [r for r in records if any(matches(p, r) for p in patterns)]
