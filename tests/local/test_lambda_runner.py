"""The Lambda runner: real handlers in warm execution environments, Lambda's log format,
Invoke results and errors, EventBridge Lambda targets, calls back into the local cloud, and
environments that follow the function's lifecycle and never outlive the local cloud."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile

import pytest

from gdlab.local import endpoint as served_at
from gdlab.local import lambda_runner

HANDLER = '''
import json, logging, os, time
logger = logging.getLogger()
logger.setLevel(logging.INFO)
CALLS = 0  # module state lives as long as the execution environment

def rendezvous(folder, count, request_id):
    # Every invocation waits for all the others: only concurrent environments get through.
    open(os.path.join(folder, request_id), "w").write(str(os.getpid()))
    deadline = time.time() + 20
    while len(os.listdir(folder)) < count and time.time() < deadline:
        time.sleep(0.02)
    return len(os.listdir(folder))

def lambda_handler(event, context):
    global CALLS
    CALLS += 1
    if event.get("rendezvous"):
        seen = rendezvous(event["rendezvous"], event["count"], context.aws_request_id)
        return {"pid": os.getpid(), "seen": seen, "request": context.aws_request_id}
    print("got", json.dumps(event, sort_keys=True))
    logger.info("working on %s", context.function_name)
    if event.get("fail"):
        raise ValueError("told to fail")
    if event.get("sleep"):
        import time
        time.sleep(event["sleep"])
    if event.get("call"):
        import boto3
        from botocore.exceptions import ClientError
        me = boto3.client("sts").get_caller_identity()["Arn"]
        keys = {k: os.environ.get(k, "")[:4] for k in ("AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN")}
        try:
            topics = [t["TopicArn"] for t in boto3.client("sns").list_topics()["Topics"]]
        except ClientError as exc:
            return {"me": me, "keys": keys, "refused": exc.response["Error"]["Code"],
                    "message": exc.response["Error"]["Message"]}
        return {"me": me, "keys": keys, "topics": topics}
    return {"region": os.environ["AWS_REGION"], "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            "color": os.environ["COLOR"], "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
            "request": context.aws_request_id, "echo": event, "pid": os.getpid(),
            "calls": CALLS, "remaining": context.get_remaining_time_in_millis()}
'''


def code(source: str = HANDLER) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


def make_function(client, name: str = "responder", timeout: int = 10, source: str = HANDLER,
                  allow: tuple[str, ...] = ()) -> str:
    role = client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "lambda.amazonaws.com"}}]}
    ))["Role"]["Arn"]
    # What AWSLambdaBasicExecutionRole grants: Lambda may create the function's log group.
    client("iam").put_role_policy(RoleName=f"{name}-role", PolicyName="logs", PolicyDocument=(
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
                    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                               "logs:PutLogEvents", *allow]}]})))
    return client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.lambda_handler",
        Code={"ZipFile": code(source)}, Timeout=timeout, MemorySize=256,
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
    lambda_runner.clear()
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


def test_handler_calls_back_into_the_local_cloud_as_its_role(local_client, local_server):
    lambda_runner.clear()
    local_client("sns").create_topic(Name="seen-from-lambda")
    make_function(local_client, allow=("sns:ListTopics",))
    answer = local_client("lambda").invoke(FunctionName="responder", Payload=b'{"call": true}')
    result = json.loads(answer["Payload"].read())
    assert [t.rsplit(":", 1)[-1] for t in result["topics"]] == ["seen-from-lambda"]
    # A session of the execution role named after the function, as Lambda's are; nothing of
    # the local cloud's or the test's own keys.
    assert result["me"] == "arn:aws:sts::123456789012:assumed-role/responder-role/responder"
    assert result["keys"]["AWS_ACCESS_KEY_ID"] == "ASIA" and result["keys"]["AWS_SESSION_TOKEN"]
    from gdlab.local.api import fetch

    (record,) = fetch(local_server.endpoint, "invocations",
                      credentials=local_server.credentials, function="responder")
    assert record["status"] == "Success" and record["log_group"] == "/aws/lambda/responder"


def test_functions_call_back_the_server_that_runs_them(local_client, local_server,
                                                       monkeypatch):
    monkeypatch.delenv("GDLAB_LOCAL_ENDPOINT", raising=False)
    lambda_runner.set_endpoint(None)  # nothing explicit: the server's own address
    make_function(local_client)
    seen = call(local_client)
    assert seen["endpoint"] == local_server.endpoint == lambda_runner.endpoint()
    lambda_runner.set_endpoint("http://127.0.0.1:4599/")  # an explicit one still comes first
    try:
        assert lambda_runner.endpoint() == "http://127.0.0.1:4599"
    finally:
        lambda_runner.set_endpoint(None)


def test_the_runner_patches_moto_through_the_registry():
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    from gdlab.local import extensions, patches

    extensions.install()
    mine = {(e.owner, e.attribute) for e in patches.applied()
            if e.module == lambda_runner.__name__}
    # Nothing else: the endpoint comes from the server, not from moto's request handling.
    assert mine == {(LambdaFunction, "_invoke_lambda"), (LambdaFunction, "invoke")} | {
        (LambdaBackend, name) for name in ("create_function", "update_function_code",
                                           "update_function_configuration", "delete_function",
                                           "reset")}
    assert (lambda_runner.__name__, "routes") in {
        (step.module, step.key) for step in patches.registered()}
    lambda_runner.install()  # a second time changes nothing
    assert {(e.owner, e.attribute) for e in patches.applied()
            if e.module == lambda_runner.__name__} == mine


def test_a_call_its_role_does_not_allow_is_refused_as_aws_refuses_it(local_client):
    lambda_runner.clear()
    make_function(local_client)  # logs only: no sns:ListTopics
    answer = local_client("lambda").invoke(FunctionName="responder", Payload=b'{"call": true}')
    result = json.loads(answer["Payload"].read())
    assert result["refused"] == "AuthorizationError"
    assert result["message"].startswith(
        "User: arn:aws:sts::123456789012:assumed-role/responder-role/responder is not "
        "authorized to perform: SNS:ListTopics on resource: ")
    assert result["message"].endswith(
        " because no identity-based policy allows the SNS:ListTopics action")


# --- warm execution environments -------------------------------------------------------
def call(client, name: str = "responder", payload: bytes = b"{}") -> dict:
    answer = client("lambda").invoke(FunctionName=name, Payload=payload)
    body = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, body
    return body


def gone(pid: int) -> bool:
    """No such process, or only a zombie left for a reaper that is not us."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_second_invocation_reuses_the_environment(client):
    arn = make_function(client)
    first = call(client)
    second = call(client, payload=b'{"again": true}')
    assert second["pid"] == first["pid"]
    assert (first["calls"], second["calls"]) == (1, 2)  # the module was imported once
    assert first["request"] != second["request"]
    assert 0 < second["remaining"] <= 10_000
    records = lambda_runner.invocations("responder")
    assert [r["status"] for r in records] == ["Success", "Success"]
    assert records[0]["log_stream"] == records[1]["log_stream"]
    messages = log_messages(client, "responder")  # one stream: both invocations in order
    starts = [m for m in messages if m.startswith("START ")]
    assert starts == [f"START RequestId: {first['request']} Version: $LATEST",
                      f"START RequestId: {second['request']} Version: $LATEST"]
    assert [e.pid for e in lambda_runner.environments(arn)] == [first["pid"]]


def test_a_timeout_kills_the_environment_and_the_next_invocation_starts_afresh(client):
    make_function(client, timeout=1)
    before = call(client)
    answer = client("lambda").invoke(FunctionName="responder", Payload=b'{"sleep": 30}')
    assert answer["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in json.loads(answer["Payload"].read())[
        "errorMessage"]
    assert gone(before["pid"])
    after = call(client)
    assert after["pid"] != before["pid"] and after["calls"] == 1
    statuses = [r["status"] for r in lambda_runner.invocations("responder")]
    assert statuses == ["Success", "Timeout", "Success"]


def test_an_update_gets_a_new_environment(client):
    make_function(client)
    first = call(client)
    client("lambda").update_function_code(FunctionName="responder",
                                          ZipFile=code(HANDLER + "\n# v2\n"))
    assert gone(first["pid"])
    second = call(client)
    assert second["pid"] != first["pid"] and second["calls"] == 1
    client("lambda").update_function_configuration(
        FunctionName="responder", Environment={"Variables": {"COLOR": "red"}})
    assert gone(second["pid"])
    third = call(client)
    assert third["color"] == "red" and third["pid"] != second["pid"]


def test_delete_kills_the_environment(client):
    arn = make_function(client)
    pid = call(client)["pid"]
    client("lambda").delete_function(FunctionName="responder")
    assert gone(pid)
    assert lambda_runner.environments(arn) == []


def test_creating_a_function_starts_its_environment(client):
    arn = make_function(client)
    assert wait_for(lambda: len(lambda_runner.environments(arn)) == 1)
    (warm,) = lambda_runner.environments(arn)
    assert call(client)["pid"] == warm.pid


def test_an_environment_never_talks_to_a_stale_endpoint(aws_client, monkeypatch):
    monkeypatch.delenv("GDLAB_LOCAL_ENDPOINT", raising=False)
    monkeypatch.setattr(served_at, "_serving", [])  # no server in this process: mock_aws mode
    lambda_runner.set_endpoint(None)
    try:
        arn = make_function(aws_client)
        time.sleep(0.2)
        assert lambda_runner.environments(arn) == []  # no pre-warm without an endpoint
        before = call(aws_client)
        assert before["endpoint"] is None
        lambda_runner.set_endpoint("http://127.0.0.1:4598")
        after = call(aws_client)
        assert after["endpoint"] == "http://127.0.0.1:4598" and after["pid"] != before["pid"]
        assert gone(before["pid"])
    finally:
        lambda_runner.set_endpoint(None)


def test_an_import_error_is_reported_on_every_invocation(client):
    make_function(client, source="import not_a_module_anywhere\n")
    for _ in range(2):
        answer = client("lambda").invoke(FunctionName="responder", Payload=b"{}")
        assert answer["FunctionError"] == "Unhandled"
        error = json.loads(answer["Payload"].read())
        assert error["errorType"] == "Runtime.ImportModuleError"
        assert error["errorMessage"].startswith("Unable to import module 'handler': No module")
    assert [r["status"] for r in lambda_runner.invocations("responder")] == ["Error", "Error"]
    assert sum(m.startswith("[ERROR] Runtime.ImportModuleError: Unable to import module")
               for m in log_messages(client, "responder")) == 2
    client("lambda").update_function_code(FunctionName="responder", ZipFile=code())
    assert call(client)["calls"] == 1


def test_concurrent_invocations_scale_out_and_each_run_exactly_once(client, tmp_path):
    from moto.awslambda.utils import get_backend

    arn = make_function(client)
    fn = get_backend("123456789012", "us-east-1").get_function(arn)
    count = 4
    payload = json.dumps({"rendezvous": str(tmp_path), "count": count})
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        lambda_runner.invoke(fn, payload))) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == count and all(inv.status == "Success" for inv in results)
    answers = [json.loads(inv.result) for inv in results]
    assert all(a["seen"] == count for a in answers)  # all ran at the same time
    ran = {path.name: int(path.read_text()) for path in tmp_path.iterdir()}
    assert sorted(ran) == sorted(inv.request_id for inv in results)  # once each
    assert len({a["pid"] for a in answers}) == count
    assert len(lambda_runner.environments(arn)) == count  # kept warm for the next burst


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_no_environment_outlives_the_server(how, free_port, tmp_path):
    import boto3

    server = subprocess.Popen(
        [sys.executable, "-m", "gdlab.local.server", "--port", str(free_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "GDLAB_HOME": str(tmp_path)})
    try:
        endpoint = f"http://127.0.0.1:{free_port}"

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{endpoint}/_gdlab/status", timeout=1) as reply:
                    return json.loads(reply.read())["ready"]
            except OSError:
                return False

        assert wait_for(ready, 60)

        from gdlab.local.credentials import load

        keys = load(tmp_path).boto3_kwargs()  # the server made them at its start

        def remote(service):
            return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **keys)

        make_function(remote)
        seen = call(remote)
        pid = seen["pid"]
        assert seen["endpoint"] == endpoint  # the daemon recorded its own address as it bound
        assert not gone(pid)
        server.send_signal(how)
        server.wait(timeout=30)  # the environments do not keep it alive
        assert wait_for(lambda: gone(pid), 10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_deleted_log_group_stays_gone_without_create_permission(client):
    """gdlab's responder may not create log groups: after teardown deleted its group, an
    invocation still running must not bring it back (Lambda would not either)."""
    make_function(client)
    client("iam").delete_role_policy(RoleName="responder-role", PolicyName="logs")
    client("lambda").invoke(FunctionName="responder", Payload=b"{}")
    groups = client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    assert groups == []
    (record,) = lambda_runner.invocations("responder")
    assert record["status"] == "Success"


LOOK_AROUND = '''
import os, sys

def lambda_handler(event, context):
    heavy = sorted(m for m in sys.modules
                   if m.split(".")[0] in ("moto", "boto3", "botocore", "gdlab"))
    return {"argv": sys.argv, "heavy": heavy, "path": sys.path, "pid": os.getpid()}
'''


def test_the_environment_runs_the_bootstrap_file_and_it_imports_nothing_heavy(client):
    from gdlab.local import lambda_environment

    bootstrap = lambda_environment.BOOTSTRAP
    assert os.path.isfile(bootstrap) and bootstrap.endswith("/gdlab/local/lambda_bootstrap.py")
    make_function(client, source=LOOK_AROUND)
    seen = call(client)
    with open(f"/proc/{seen['pid']}/cmdline", "rb") as cmdline:
        assert cmdline.read().split(b"\0")[:-1] == [sys.executable.encode(), bootstrap.encode()]
    assert seen["argv"] == [bootstrap]
    # Nothing of gdlab, moto or boto3 came in with the runtime: the handler imports its own.
    assert seen["heavy"] == []
    # The runtime's own directory (gdlab's modules) is not where the handler imports from.
    for folder in (os.path.dirname(bootstrap), os.path.dirname(os.path.realpath(bootstrap))):
        assert folder not in seen["path"]
    assert seen["path"][0] == seen["path"][2]  # the task root, then the working directory
    assert seen["path"][1] == ""
