"""The Lambda runner: real handlers in a subprocess, Lambda's log format, Invoke results and
errors, EventBridge Lambda targets, and calls back into the local cloud."""

import io
import json
import re
import time
import urllib.request
import zipfile

import pytest

from gdlab.local import lambda_runner

HANDLER = '''
import json, logging, os
logger = logging.getLogger()
logger.setLevel(logging.INFO)

def lambda_handler(event, context):
    print("got", json.dumps(event, sort_keys=True))
    logger.info("working on %s", context.function_name)
    if event.get("fail"):
        raise ValueError("told to fail")
    if event.get("sleep"):
        import time
        time.sleep(event["sleep"])
    if event.get("call"):
        import boto3
        return {"topics": [t["TopicArn"] for t in boto3.client("sns").list_topics()["Topics"]]}
    return {"region": os.environ["AWS_REGION"], "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            "color": os.environ["COLOR"], "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
            "request": context.aws_request_id, "echo": event}
'''


def code() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", HANDLER)
    return buffer.getvalue()


def make_function(client, name: str = "responder", timeout: int = 10) -> str:
    role = client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "lambda.amazonaws.com"}}]}
    ))["Role"]["Arn"]
    return client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.lambda_handler",
        Code={"ZipFile": code()}, Timeout=timeout, MemorySize=256,
        Environment={"Variables": {"COLOR": "blue"}})["FunctionArn"]


def log_messages(client, name: str) -> list[str]:
    logs = client("logs")
    group = f"/aws/lambda/{name}"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    messages = []
    for stream in streams:
        assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", stream["logStreamName"])
        events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])
        messages += [e["message"] for e in events["events"]]
    return messages


@pytest.fixture
def client(aws_client):
    lambda_runner.set_endpoint("http://127.0.0.1:4599")
    yield aws_client
    lambda_runner.set_endpoint(None)


def test_invoke_runs_the_handler_and_logs_like_lambda(client):
    make_function(client)
    answer = client("lambda").invoke(FunctionName="responder", Payload=json.dumps({"a": 1}))
    assert "FunctionError" not in answer
    result = json.loads(answer["Payload"].read())
    assert result["region"] == "us-east-1" and result["name"] == "responder"
    assert result["color"] == "blue" and result["echo"] == {"a": 1}
    assert result["endpoint"] == "http://127.0.0.1:4599"
    request_id = result["request"]
    messages = log_messages(client, "responder")
    assert messages[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert messages[1] == 'got {"a": 1}'
    assert re.fullmatch(rf"\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{request_id}"
                        r"\tworking on responder", messages[2])
    assert messages[-2] == f"END RequestId: {request_id}"
    assert re.fullmatch(rf"REPORT RequestId: {request_id}\tDuration: \d+\.\d\d ms\t"
                        r"Billed Duration: \d+ ms\tMemory Size: 256 MB\tMax Memory Used: "
                        r"\d+ MB\t", messages[-1])
    (record,) = lambda_runner.invocations("responder")
    assert record["status"] == "Success" and record["request_id"] == request_id


def test_unhandled_error(client):
    make_function(client)
    answer = client("lambda").invoke(FunctionName="responder", Payload=b'{"fail": true}')
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "told to fail")
    assert any("in lambda_handler" in frame for frame in error["stackTrace"])
    messages = log_messages(client, "responder")
    assert any(m.startswith("[ERROR] ValueError: told to fail\rTraceback") for m in messages)
    assert messages[-2].startswith("END RequestId: ")


def test_timeout(client):
    make_function(client, timeout=1)
    answer = client("lambda").invoke(FunctionName="responder", Payload=b'{"sleep": 30}')
    assert answer["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in json.loads(answer["Payload"].read())[
        "errorMessage"]
    assert log_messages(client, "responder")[-1].endswith("Status: timeout")


def wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_rule_with_lambda_target_runs_it_once(client):
    arn = make_function(client)
    events = client("events")
    rule = events.put_rule(Name="to-lambda", EventPattern=json.dumps({"source": ["gdlab.test"]}))
    events.put_targets(Rule="to-lambda", Targets=[{"Id": "fn", "Arn": arn}])
    lambda_runner.clear()
    events.put_events(Entries=[{"Source": "gdlab.test", "DetailType": "t", "Detail": "{}"}])
    time.sleep(0.2)
    assert lambda_runner.invocations("responder") == []  # no permission for EventBridge
    client("lambda").add_permission(
        FunctionName="responder", StatementId="events", Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com", SourceArn=rule["RuleArn"])
    events.put_events(Entries=[{"Source": "gdlab.test", "DetailType": "t", "Detail": "{}"}])
    assert wait_for(lambda: [i["status"] for i in lambda_runner.invocations("responder")]
                    == ["Success"])
    (record,) = lambda_runner.invocations("responder")
    assert record["trigger"] == "events:to-lambda"
    assert record["result"]["echo"]["source"] == "gdlab.test"


def test_handler_calls_back_into_the_local_cloud(local_client, local_server):
    lambda_runner.clear()
    local_client("sns").create_topic(Name="seen-from-lambda")
    make_function(local_client)
    answer = local_client("lambda").invoke(FunctionName="responder", Payload=b'{"call": true}')
    result = json.loads(answer["Payload"].read())
    assert [t.rsplit(":", 1)[-1] for t in result["topics"]] == ["seen-from-lambda"]
    with urllib.request.urlopen(f"{local_server.endpoint}/_gdlab/invocations?function=responder"
                                ) as reply:
        (record,) = json.loads(reply.read())
    assert record["status"] == "Success" and record["log_group"] == "/aws/lambda/responder"
