"""The AWS code paths, exercised offline: `gdlab run --target aws` against the local cloud's
endpoint takes AWS's waiters, SSM readiness, flow-log wait and deadlines (nothing branches
on the local cloud), and passes only because the endpoint answers fast."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_run_on_the_aws_path_passes_against_the_local_endpoint(module_cloud):
    cloud = module_cloud
    # As a user would: eval "$(gdlab local env)", then the AWS path against that endpoint.
    local = cloud.local_env()
    done = cloud.run("run", "--target", "aws", "--endpoint-url", local["AWS_ENDPOINT_URL"],
                     "--region", "us-east-1", "--yes", "--json", "--lab", "aws-path1",
                     timeout=900, env=local)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["passed"] is True and report["target"] == "aws"
    verify = report["verify"]
    assert all(p["proven"] for p in verify["properties"]), verify
    statuses = {c["name"]: c["status"] for c in verify["checks"]}
    assert statuses["flows-rejected"] == "pass"
    assert cloud.inventory("aws-path1") == {}
