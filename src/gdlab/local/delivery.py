"""EventBridge delivery inside the local cloud, as AWS does it.

moto's ``Rule.send_to_targets`` raises NotImplementedError for SNS and Lambda targets, fires
disabled rules and rules that only have a schedule. Here:

- a rule fires only when ENABLED and its event pattern matches (moto's ``EventPattern``
  follows AWS's matching rules for exact values, prefixes, ``anything-but``, numeric and
  ``exists`` filters; a schedule-only rule matches no event);
- every target gets exactly one delivery per event, shaped by ``Input``, ``InputPath`` or
  ``InputTransformer`` (see ``transform.py``);
- SNS targets publish through moto's SNS backend; Lambda targets run asynchronously, in a
  thread, through the Lambda runner — both only if the resource policy lets
  ``events.amazonaws.com`` in for this rule, as AWS requires;
- the other targets moto already knows (SQS, logs, archives, buses) keep moto's code;
- ``AWS/Events`` metrics (``TriggeredRules``, ``MatchedEvents``, ``Invocations``,
  ``FailedInvocations``; dimension ``RuleName``) are counted in moto's CloudWatch.

PutEvents from a client with an ``aws.*`` source is refused (see ``events.py``); the local
GuardDuty publishes its findings straight onto the default bus instead.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import logging
import threading
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("gdlab.local.delivery")

EVENTS_PRINCIPAL = "events.amazonaws.com"

_original_send_to_targets: Any = None


# --- CloudWatch metrics ------------------------------------------------------------------
def put_metric(account: str, region: str, namespace: str, name: str,
               dimensions: dict[str, str], value: float = 1.0) -> None:
    """Count one data point in moto's CloudWatch, as the AWS service would."""
    from moto.cloudwatch.models import cloudwatch_backends

    try:
        cloudwatch_backends[account][region].put_metric_data(namespace, [{
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            "Value": value,
            "Unit": "Count",
        }])
    except Exception:  # a metric must never break a delivery
        log.exception("could not record %s/%s", namespace, name)


# --- resource policies -------------------------------------------------------------------
def _arn_parts(arn: str) -> dict[str, str]:
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn}")
    return {"partition": parts[1], "service": parts[2], "region": parts[3],
            "account": parts[4], "resource": parts[5]}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        if "*" in _as_list(principal.get("AWS")):
            return True
        return service in _as_list(principal.get("Service"))
    return False


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    """The few condition operators and keys a service-to-service grant uses; any other key
    is absent from the request context, so its condition fails, as in IAM."""
    ctx = {k.lower(): v for k, v in context.items()}
    for operator, tests in (condition or {}).items():
        op = operator.replace("ForAnyValue:", "").replace("IfExists", "")
        for key, expected in tests.items():
            actual = ctx.get(key.lower())
            if actual is None:
                if operator.endswith("IfExists"):
                    continue
                return False
            wanted = [str(v) for v in _as_list(expected)]
            if op in ("StringEquals", "ArnEquals"):
                ok = actual in wanted
            elif op in ("StringLike", "ArnLike"):
                ok = any(fnmatch.fnmatchcase(actual, w) for w in wanted)
            elif op == "StringNotEquals":
                ok = actual not in wanted
            else:
                return False
            if not ok:
                return False
    return True


def allowed_by_policy(policy: dict[str, Any] | None, action: str, resource: str,
                      context: dict[str, str], principal: str = EVENTS_PRINCIPAL) -> bool:
    """Does this resource policy let ``principal`` call ``action`` on ``resource``?"""
    allow = False
    for stmt in (policy or {}).get("Statement", []):
        if not _principal_matches(stmt.get("Principal"), principal):
            continue
        actions = _as_list(stmt.get("Action"))
        service = action.split(":")[0]
        if not any(a in ("*", action, f"{service}:*") or fnmatch.fnmatchcase(action, a)
                   for a in actions):
            continue
        resources = _as_list(stmt.get("Resource")) or ["*"]
        if not any(fnmatch.fnmatchcase(resource, r) or r == f"{resource}:*"
                   or fnmatch.fnmatchcase(resource + ":$LATEST", r) for r in resources):
            continue
        if not _condition_holds(stmt.get("Condition", {}), context):
            continue
        if stmt.get("Effect") == "Deny":
            return False
        allow = True
    return allow


# --- the event as targets see it -------------------------------------------------------
def _iso(value: Any) -> str:
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(float(value), tz=timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def target_event(event: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The event in AWS's wire shape (ISO time, no internal fields) and its ingestion time."""
    shaped = {k: v for k, v in event.items() if k != "ingestion-time"}
    shaped["time"] = _iso(event.get("time", ""))
    ingestion = event.get("ingestion-time", event.get("time", ""))
    return shaped, _iso(ingestion)


def target_input(rule: Any, target: dict[str, Any], event: dict[str, Any]) -> str:
    """The text delivered to one target: Input, InputPath, InputTransformer or the event."""
    from gdlab.local import transform

    shaped, ingestion = target_event(event)
    if target.get("Input") is not None:
        return target["Input"]
    if target.get("InputPath"):
        value = transform.extract(target["InputPath"], shaped)
        return json.dumps(None if value is transform._MISSING else value)
    spec = target.get("InputTransformer")
    if spec:
        return transform.render(spec.get("InputTemplate", ""), spec.get("InputPathsMap", {}),
                                shaped, rule.name, rule.arn, ingestion)
    return json.dumps(shaped)


# --- deliveries --------------------------------------------------------------------------
def _deliver_sns(rule: Any, arn: str, message: str) -> bool:
    from moto.sns.models import sns_backends

    parts = _arn_parts(arn)
    backend = sns_backends[parts["account"]][parts["region"]]
    topic = backend.topics.get(arn)
    if topic is None:
        log.warning("rule %s: SNS topic %s does not exist", rule.name, arn)
        return False
    context = {"aws:SourceArn": rule.arn, "aws:SourceAccount": rule.account_id}
    if not allowed_by_policy(topic._policy_json, "sns:Publish", arn, context):
        log.warning("rule %s: the policy of %s does not let EventBridge publish", rule.name, arn)
        return False
    backend.publish(message, arn=arn)
    return True


def _deliver_lambda(rule: Any, arn: str, payload: str) -> bool:
    from moto.awslambda.utils import get_backend

    parts = _arn_parts(arn)
    try:
        fn = get_backend(parts["account"], parts["region"]).get_function(arn)
    except Exception:
        log.warning("rule %s: Lambda function %s does not exist", rule.name, arn)
        return False
    policy = {"Statement": list(fn.policy.statements)}
    context = {"aws:SourceArn": rule.arn, "aws:SourceAccount": rule.account_id}
    if not allowed_by_policy(policy, "lambda:InvokeFunction", fn.function_arn, context):
        log.warning("rule %s: %s has no permission for EventBridge", rule.name, arn)
        return False
    from gdlab.local.lambda_runner import invoke

    thread = threading.Thread(
        target=invoke, args=(fn, payload), kwargs={"trigger": f"events:{rule.name}"},
        name=f"gdlab-lambda-{fn.function_name}", daemon=True,
    )
    thread.start()
    return True


def _deliver_with_moto(rule: Any, target: dict[str, Any], event: dict[str, Any],
                       transform_input: bool) -> bool:
    clone = copy.copy(rule)
    clone.targets = [target]
    _original_send_to_targets(clone, copy.deepcopy(event), transform_input)
    return True


def send_to_targets(rule: Any, original_event: dict[str, Any],
                    transform_input: bool = True) -> None:
    """Replacement for ``moto.events.models.Rule.send_to_targets``."""
    if rule.state == "DISABLED":
        return
    if not rule.event_pattern.get_pattern() and rule.scheduled_expression:
        return
    if not rule.event_pattern.matches_event(original_event):
        return
    dims = {"RuleName": rule.name}
    put_metric(rule.account_id, rule.region_name, "AWS/Events", "TriggeredRules", dims)
    put_metric(rule.account_id, rule.region_name, "AWS/Events", "MatchedEvents", dims)
    for target in list(rule.targets):
        try:
            service = _arn_parts(target["Arn"])["service"]
            if service == "sns":
                ok = _deliver_sns(rule, target["Arn"], target_input(rule, target, original_event))
            elif service == "lambda":
                ok = _deliver_lambda(rule, target["Arn"],
                                     target_input(rule, target, original_event))
            else:
                ok = _deliver_with_moto(rule, target, original_event, transform_input)
        except Exception:
            # A failed delivery is a FailedInvocation in AWS, never an error for the caller.
            log.exception("rule %s: delivery to %s failed", rule.name, target.get("Arn"))
            ok = False
        put_metric(rule.account_id, rule.region_name, "AWS/Events", "Invocations", dims)
        if not ok:
            put_metric(rule.account_id, rule.region_name, "AWS/Events", "FailedInvocations",
                       dims)


# --- publishing AWS service events ---------------------------------------------------------
def put_service_event(account: str, region: str, event: dict[str, Any],
                      bus: str = "default") -> None:
    """Put an event from an AWS service (e.g. ``aws.guardduty``) on a bus of the account."""
    from moto.core.utils import unix_time
    from moto.events.models import events_backends

    backend = events_backends[account][region]
    try:
        event_bus = backend.describe_event_bus(bus)
    except Exception:
        return
    moto_event = dict(event)
    # moto's own targets (SQS, logs) expect epoch seconds in "time".
    if isinstance(moto_event.get("time"), str):
        moment = datetime.strptime(moto_event["time"][:19], "%Y-%m-%dT%H:%M:%S")
        moto_event["time"] = moment.replace(tzinfo=timezone.utc).timestamp()
    moto_event["ingestion-time"] = unix_time()
    for rule in list(event_bus.rules.values()):
        rule.send_to_targets(moto_event)


def publish_finding(backend: Any, detector_id: str, finding: dict[str, Any]) -> None:
    """``on_new_finding`` hook: the finding goes to EventBridge as GuardDuty sends it."""
    from gdlab.local.analyzer import to_event

    try:
        event = to_event(finding, backend.region_name, backend.account_id)
        put_service_event(backend.account_id, backend.region_name, event)
    except Exception:
        log.exception("could not publish finding %s to EventBridge", finding.get("Id"))


def install() -> None:
    global _original_send_to_targets
    from moto.events.models import Rule

    from gdlab.local import patches

    patches.patch(Rule, "send_to_targets", send_to_targets,
                  "rules deliver to SNS, Lambda and the rest as EventBridge does")
    _original_send_to_targets = patches.original(Rule, "send_to_targets")

    from gdlab.local.guardduty import on_new_finding

    patches.once("on_new_finding", "GuardDuty findings go to EventBridge",
                 lambda: on_new_finding.append(publish_finding))
