"""The local cloud over real HTTP (InProcessServer on a free 127.0.0.1 port): gdlab's own
routes, GuardDuty and Security Hub through boto3, and no HTTP 500 for emulator gaps."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from gdlab.local import api, guardduty, lambda_runner, server
from gdlab.local import endpoint as served_at

BUCKET = "gdlab-server-lists"


def get(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def test_status_route(local_server, local_client):
    status, body = get(f"{local_server.endpoint}/_gdlab/status")
    assert status == 200
    assert body["running"] is True and body["findings"] == 0
    assert body["pid"] > 0 and body["started_at"].endswith("Z")
    assert body["cloud_id"] == local_server.cloud_id and body["cloud_id"].startswith("lc-")
    assert body["home"] is None  # in-process: it serves no GDLAB_HOME of its own
    gd = local_client("guardduty")
    detector = gd.create_detector(Enable=True)["DetectorId"]
    gd.create_sample_findings(DetectorId=detector,
                              FindingTypes=["Recon:EC2/PortProbeUnprotectedPort"])
    assert api.fetch(local_server.endpoint, "status")["findings"] == 1


def test_each_start_makes_a_new_cloud_id():
    ids = set()
    for _ in range(2):
        with server.InProcessServer(port=0) as one:  # the system picks a free port
            ids.add(api.fetch(one.endpoint, "status")["cloud_id"])
    assert len(ids) == 2 and all(len(i) == 11 for i in ids)


def test_the_server_records_where_clients_reach_it(monkeypatch):
    monkeypatch.delenv("GDLAB_LOCAL_ENDPOINT", raising=False)
    monkeypatch.setattr(served_at, "_serving", [])
    lambda_runner.set_endpoint(None)
    assert lambda_runner.endpoint() is None  # no server: nothing for a function to call
    with server.InProcessServer(port=0) as outer:  # the system picks the port
        assert lambda_runner.endpoint() == outer.endpoint
        assert api.fetch(lambda_runner.endpoint(), "status")["cloud_id"] == outer.cloud_id
        with server.InProcessServer(port=0) as inner:
            assert lambda_runner.endpoint() == inner.endpoint != outer.endpoint
        assert lambda_runner.endpoint() == outer.endpoint  # the one still running
        monkeypatch.setenv("GDLAB_LOCAL_ENDPOINT", "http://127.0.0.1:4599")
        assert lambda_runner.endpoint() == "http://127.0.0.1:4599"  # the user's word first
        monkeypatch.delenv("GDLAB_LOCAL_ENDPOINT")
    assert lambda_runner.endpoint() is None  # a stopped cloud is not called back


@pytest.mark.parametrize(("address", "url"), [
    (("127.0.0.1", 4724), "http://127.0.0.1:4724"),
    (("0.0.0.0", 4724), "http://127.0.0.1:4724"),  # a wildcard bind is reached on loopback
    (("::", 4724, 0, 0), "http://[::1]:4724"),
    (("::1", 4724, 0, 0), "http://[::1]:4724"),  # IPv6 literals are bracketed in a URL
    (("localhost", 80), "http://localhost:80"),
])
def test_endpoint_url_for_a_bound_address(address, url):
    assert served_at.url_for(address) == url


def test_registered_routes(local_server, monkeypatch):
    monkeypatch.setitem(server._routes, "echo", lambda query: {"query": query})

    def broken(query):
        raise ValueError("no such lab")

    monkeypatch.setitem(server._routes, "broken", broken)
    keys = local_server.credentials
    assert api.fetch(local_server.endpoint, "echo", credentials=keys, lab="gd-1",
                     tag=["a", "b"]) == {"query": {"lab": "gd-1", "tag": ["a", "b"]}}
    with pytest.raises(api.LocalApiError, match="no such lab"):
        api.fetch(local_server.endpoint, "broken", credentials=keys)
    with pytest.raises(api.LocalApiError, match="sign /_gdlab/ requests"):
        api.fetch(local_server.endpoint, "echo")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        get(f"{local_server.endpoint}/_gdlab/nothing-here")
    assert excinfo.value.code == 404


def test_register_route_rejects_bad_names():
    with pytest.raises(ValueError):
        server.register_route("a/b", lambda q: None)


def test_fetch_unreachable_is_one_clear_error(free_port):
    with pytest.raises(api.LocalApiError, match="cannot reach the local cloud"):
        api.fetch(f"http://127.0.0.1:{free_port}", "status", timeout=1)


def test_guardduty_over_http(local_client, wire_check, monkeypatch):
    monkeypatch.setenv("GDLAB_LOCAL_ACTIVATION_SECONDS", "0")
    s3 = local_client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="threats.txt", Body=b"54.80.9.9\n")
    gd = local_client("guardduty")
    recorder = wire_check(gd)
    detector = gd.create_detector(Enable=True)["DetectorId"]
    set_id = gd.create_threat_intel_set(
        DetectorId=detector, Name="Example-Threat-List", Format="TXT", Activate=True,
        Location=f"https://{BUCKET}.s3.amazonaws.com/threats.txt", Tags={"gdlab:lab": "gd-s"},
    )["ThreatIntelSetId"]
    assert gd.get_threat_intel_set(DetectorId=detector,
                                   ThreatIntelSetId=set_id)["Status"] == "ACTIVE"
    arn = f"arn:aws:guardduty:us-east-1:123456789012:detector/{detector}/threatintelset/{set_id}"
    assert gd.tag_resource(ResourceArn=arn, Tags={"b": "2"})["ResponseMetadata"][
        "HTTPStatusCode"] == 204
    assert gd.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"gdlab:lab": "gd-s", "b": "2"}
    gd.create_sample_findings(DetectorId=detector,
                              FindingTypes=["UnauthorizedAccess:EC2/MaliciousIPCaller.Custom"])
    ids = gd.list_findings(DetectorId=detector, FindingCriteria={"Criterion": {
        "resource.instanceDetails.instanceId": {"Eq": ["i-99999999"]}}})["FindingIds"]
    finding = gd.get_findings(DetectorId=detector, FindingIds=ids)["Findings"][0]
    assert finding["Title"].startswith("[SAMPLE] ")
    gd.get_findings_statistics(DetectorId=detector, FindingStatisticTypes=["COUNT_BY_SEVERITY"])
    gd.archive_findings(DetectorId=detector, FindingIds=ids)
    gd.unarchive_findings(DetectorId=detector, FindingIds=ids)
    backend = guardduty.backend("123456789012", "us-east-1")
    assert [str(net) for net, _, _ in backend.threat_entries(detector)] == ["54.80.9.9/32"]
    assert not recorder.problems()
    assert {"CreateThreatIntelSet", "GetFindings", "ListFindings"} <= recorder.operations()


def test_securityhub_over_http(local_client, wire_check):
    hub = local_client("securityhub")
    recorder = wire_check(hub)
    hub.enable_security_hub(EnableDefaultStandards=False)
    with pytest.raises(ClientError) as excinfo:
        hub.enable_security_hub()
    assert excinfo.value.response["Error"]["Code"] == "ResourceConflictException"
    hub.describe_hub()
    hub.get_findings(Filters={"ProductName": [{"Value": "GuardDuty", "Comparison": "EQUALS"}]})
    assert not recorder.problems()


def assert_clear_4xx(excinfo, code):
    response = excinfo.value.response
    assert 400 <= response["ResponseMetadata"]["HTTPStatusCode"] < 500
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert response["Error"]["Code"] == code
    assert "gdlab local cloud" in response["Error"]["Message"]


def test_operation_without_route_is_a_clear_4xx(local_client):
    gd = local_client("guardduty")
    detector = gd.create_detector(Enable=True)["DetectorId"]
    with pytest.raises(ClientError) as excinfo:
        gd.describe_malware_scans(DetectorId=detector)
    assert_clear_4xx(excinfo, "GdlabLocalUnsupported")


def test_unimplemented_action_is_a_clear_4xx(local_client):
    with pytest.raises(ClientError) as excinfo:
        local_client("ec2").describe_fleet_history(FleetId="fleet-1",
                                                   StartTime="2024-01-01T00:00:00Z")
    assert_clear_4xx(excinfo, "GdlabLocalUnsupported")


def test_emulator_crash_is_a_4xx_not_a_500(local_client, monkeypatch):
    gd = local_client("guardduty")
    detector = gd.create_detector(Enable=True)["DetectorId"]

    def crash(*args, **kwargs):
        raise RuntimeError("simulated emulator bug")

    monkeypatch.setattr(guardduty.GdlabGuardDutyBackend, "list_sets", crash)
    with pytest.raises(ClientError) as excinfo:
        gd.list_threat_intel_sets(DetectorId=detector)
    assert_clear_4xx(excinfo, "GdlabLocalError")
    assert "simulated emulator bug" in excinfo.value.response["Error"]["Message"]
