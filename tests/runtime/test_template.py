"""template.yaml's runtime, read as CloudFormation will: least-privilege IAM, reserved
concurrency from the providers' limits, a dead-letter queue and an alarm behind every queue,
encryption, the state machine's definition and substitutions, the outputs, and a sample event
for every function that its handler accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contactsync.domain.accounts import Provider
from contactsync.runtime.bulk import BulkTask, ShardTask, StaleRun, SyncGone
from contactsync.runtime.limits import LIMITS
from tests.runtime.cloud import FakeContext, events_dir, functions, handler_of
from tests.runtime.harness import World
from tests.support.aws import ROOT, resource, template

PROVIDERS = ("Google", "Microsoft", "Salesforce", "Aircall")

# Actions that take no resource-level permission: "*" is the narrowest resource there is.
NO_RESOURCE_LEVEL = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}
# Wildcards inside ARNs, each as narrow as the names allow (they are made at run time).
NARROW_WILDCARDS = {
    # every account's secret (contactsync/{org}/{account}): the API and bulk functions
    r"secret:contactsync/\*$",
    # one provider's account secrets (account ids start acc-{provider}-): its pull and push
    r"secret:contactsync/\*/acc-(google|microsoft|salesforce|aircall)-\*$",
    # the schedules in this stack's group
    r"schedule/contactsync-\$\{Stage\}/\*$",
    # the state machine's own executions (Distributed Map child runs)
    r"execution:contactsync-\$\{Stage\}-bulk-sync/\*$",
}

# Each function's sample event, for `sam local invoke FUNCTION -e events/<file>` (the runtime's
# under events/runtime/).
FUNCTION_EVENTS = {
    **{f"{p}PullFunction": f"runtime/pull_{p.lower()}.json" for p in PROVIDERS},
    **{f"{p}PushFunction": f"runtime/push_{p.lower()}.json" for p in PROVIDERS},
    "PullRouterFunction": "runtime/pull_router.json",
    "FanOutFunction": "runtime/fanout_outbox_entry.json",
    "ScheduleFunction": "runtime/schedule_sync_created.json",
    "BulkPlanFunction": "runtime/bulk_plan.json",
    "BulkShardFunction": "runtime/bulk_shard.json",
    "BulkFinaliseFunction": "runtime/bulk_finalise.json",
    "ApiFunction": "api_get_me.json",
    "WebhooksFunction": "webhook_aircall_contact_updated.json",
}


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template()["Resources"].items() if r["Type"] == kind}


def identity_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy the template writes itself (SAM's named policy
    templates, like DynamoDBCrudPolicy, are AWS's own narrow templates)."""
    for name, res in template()["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            for policy in props.get("Policies", []):
                if isinstance(policy, dict) and "Statement" in policy:
                    for statement in policy["Statement"]:
                        yield name, statement
        if res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def arn_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    return json.dumps(value)  # !GetAtt / !Ref: a resource of this stack


def test_no_action_or_resource_is_wider_than_it_needs_to_be() -> None:
    checked = 0
    for name, statement in identity_statements():
        actions = as_list(statement["Action"])
        assert not [a for a in actions if "*" in a], f"{name}: wildcard action in {actions}"
        for value in as_list(statement["Resource"]):
            text = arn_text(value)
            if text == "*":
                assert set(actions) <= NO_RESOURCE_LEVEL, f"{name}: '*' for {actions}"
            elif "*" in text:
                assert any(re.search(p, text) for p in NARROW_WILDCARDS), f"{name}: {text}"
        checked += 1
    assert checked > 60


def test_no_function_gets_sams_event_source_policies() -> None:
    # SAM's SQS and DynamoDB events attach AWS managed policies on every queue and stream
    # ("*"); the runtime declares its event source mappings and their permissions itself.
    for name, props in functions().items():
        for event in props.get("Events", {}).values():
            assert event["Type"] == "HttpApi", f"{name} uses a {event['Type']} event"


def test_each_providers_functions_read_only_its_own_accounts_secrets() -> None:
    for provider in PROVIDERS:
        for kind in ("Pull", "Push"):
            name = f"{provider}{kind}Function"
            secrets = [
                arn_text(r)
                for n, s in identity_statements()
                if n == name and any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
                for r in as_list(s["Resource"])
            ]
            assert secrets == [
                "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:"
                f"secret:contactsync/*/acc-{provider.lower()}-*"
            ]


def test_reserved_concurrency_comes_from_the_providers_limits() -> None:
    for provider in PROVIDERS:
        limits = LIMITS[Provider(provider.lower())]
        pull = resource(f"{provider}PullFunction")["Properties"]["ReservedConcurrentExecutions"]
        push = resource(f"{provider}PushFunction")["Properties"]["ReservedConcurrentExecutions"]
        assert (pull, push) == (limits.pull_concurrency, limits.push_concurrency)


def test_every_queue_has_a_dead_letter_queue_with_an_alarm_and_is_encrypted() -> None:
    queues = resources("AWS::SQS::Queue")
    alarmed = {
        r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for r in resources("AWS::CloudWatch::Alarm").values()
        if r["Properties"]["Namespace"] == "AWS/SQS"
    }
    for name, queue in queues.items():
        props = queue["Properties"]
        assert "KmsMasterKeyId" in props, name
        if name.endswith("DeadLetterQueue"):
            assert name in alarmed, f"no alarm on {name}"
        else:
            target = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            assert target.endswith("DeadLetterQueue"), name
            assert props.get("FifoQueue") == queues[target]["Properties"].get("FifoQueue")
    for mapping in resources("AWS::Lambda::EventSourceMapping").values():
        failures = mapping["Properties"].get("DestinationConfig", {}).get("OnFailure")
        if failures:
            assert failures["Destination"]["Fn::GetAtt"][0] in alarmed
    for name, secret in resources("AWS::SecretsManager::Secret").items():
        assert "KmsKeyId" in secret["Properties"], name


def test_queues_stay_invisible_while_their_consumer_may_still_run() -> None:
    timeout_default = template()["Globals"]["Function"]["Timeout"]
    for mapping in resources("AWS::Lambda::EventSourceMapping").values():
        props = mapping["Properties"]
        source = props["EventSourceArn"]["Fn::GetAtt"]
        if source[0] == "Table":
            continue
        function = functions()[props["FunctionName"]["Ref"]]
        queue = resource(source[0])["Properties"]
        assert queue["VisibilityTimeout"] >= 6 * function.get("Timeout", timeout_default)
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_state_machine_definition_is_complete_and_bounded() -> None:
    props = resource("BulkSyncStateMachine")["Properties"]
    path = ROOT / props["DefinitionUri"]
    text = path.read_text()
    definition = json.loads(text)
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(props["DefinitionSubstitutions"])
    shards = definition["States"]["Shards"]
    assert shards["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert shards["MaxConcurrencyPath"] == "$.plan.max_concurrency"
    retry = shards["ItemProcessor"]["States"]["RunShard"]["Retry"][-1]
    assert retry["ErrorEquals"] == ["States.ALL"]
    assert retry["BackoffRate"] > 1
    assert retry["MaxAttempts"] >= 3
    assert definition["States"]["Finalise"]["End"] is True
    # every provider's bulk concurrency is what the plan hands the map
    assert all(1 <= limit.bulk_concurrency <= 10 for limit in LIMITS.values())


def test_outputs_name_the_api_the_table_and_the_state_machine() -> None:
    outputs = template()["Outputs"]
    assert {"ApiUrl", "TableName", "BulkSyncStateMachineArn"} <= set(outputs)
    assert outputs["BulkSyncStateMachineArn"]["Value"] == {"Ref": "BulkSyncStateMachine"}


def test_every_function_has_a_sample_event() -> None:
    assert set(FUNCTION_EVENTS) == set(functions())
    for name, file in FUNCTION_EVENTS.items():
        assert (events_dir() / file).is_file(), f"{name}: events/{file}"


def load(file: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(events_dir() / file).read_text())
    return data


@pytest.mark.parametrize(
    "name",
    [n for n in FUNCTION_EVENTS if not n.startswith(("Api", "Webhooks", "Bulk"))],
)
def test_the_queue_and_stream_events_run_through_their_handlers(
    name: str, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The events name an organisation this deployment does not have: every handler answers
    # without failing and without doing anything.
    props = functions()[name]
    for key, value in props.get("Environment", {}).get("Variables", {}).items():
        if isinstance(value, str):
            monkeypatch.setenv(key, value)
    from functions.schedule import app as schedule_app

    schedule_app.worker.cache_clear()
    response = handler_of(name)(load(FUNCTION_EVENTS[name]), FakeContext())
    assert response == {"batchItemFailures": []}
    schedule_app.worker.cache_clear()


def test_the_bulk_events_are_tasks_of_the_state_machine(world: World) -> None:
    plan, shard, finalise = (
        load(FUNCTION_EVENTS[f"Bulk{step}Function"]) for step in ("Plan", "Shard", "Finalise")
    )
    BulkTask.model_validate(plan)
    ShardTask.model_validate(shard)
    BulkTask.model_validate(finalise)
    # Without that sync here, each stops the run with an error the state machine does not retry
    with pytest.raises(SyncGone):
        handler_of("BulkPlanFunction")(plan, FakeContext())
    with pytest.raises(StaleRun):
        handler_of("BulkShardFunction")(shard, FakeContext())
    with pytest.raises(StaleRun):
        handler_of("BulkFinaliseFunction")(finalise, FakeContext())
