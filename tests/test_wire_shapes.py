"""The raw-response validator itself: good bodies pass, each kind of mismatch is named with
its path."""

from __future__ import annotations

import base64
from xml.etree import ElementTree

import pytest
from wire_shapes import _json_value, _service_model, assert_wire_shape, wire_mismatches


def _fails(service: str, operation: str, body, *fragments: str) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_wire_shape(service, operation, body)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_a_good_json_body_passes():
    assert_wire_shape("events", "TestEventPattern", {"Result": True})
    assert_wire_shape("events", "PutEvents", {
        "FailedEntryCount": 1,
        "Entries": [{"EventId": "1"}, {"ErrorCode": "NotAuthorizedForSourceException",
                                       "ErrorMessage": "Not authorized for the source."}]})


def test_raw_bytes_are_parsed_per_protocol():
    assert_wire_shape("events", "TestEventPattern", b'{"Result": false}')
    _fails("events", "TestEventPattern", b'{"Result": "false"}', "$.Result", "boolean")


def test_unknown_member_is_named_with_its_path():
    _fails("events", "PutEvents", {"Entries": [{"EventId": "1", "Id": "x"}]},
           "$.Entries[0]", "unknown member 'Id'")


def test_null_is_refused():
    _fails("events", "PutEvents", {"FailedEntryCount": 0, "Entries": [{"EventId": None}]},
           "$.Entries[0].EventId: null")


def test_wrong_types_are_each_reported():
    problems = wire_mismatches("events", "PutEvents",
                               {"FailedEntryCount": True, "Entries": {"EventId": "1"}})
    assert any("$.FailedEntryCount: expected an integer" in p for p in problems), problems
    assert any("$.Entries: expected a list" in p for p in problems), problems


def test_rest_json_uses_location_names_and_required_members():
    good = {"serviceRole": "arn:aws:iam::123456789012:role/x", "status": "ENABLED",
            "createdAt": "2026-01-01T00:00:00.000Z", "tags": {}}
    assert_wire_shape("guardduty", "GetDetector", good)
    _fails("guardduty", "GetDetector", {"ServiceRole": "r", "status": "ENABLED"},
           "unknown member 'ServiceRole'", "missing required member 'serviceRole'")


def test_enum_values_are_checked():
    _fails("guardduty", "GetDetector", {"serviceRole": "r", "status": "enabled"},
           "$.status", "'enabled' is not one of")


def test_json_timestamps_are_epoch_seconds_by_default():
    assert_wire_shape("events", "DescribeEventBus", {"Name": "default", "CreationTime": 1.7e9})
    _fails("events", "DescribeEventBus", {"CreationTime": "2026-01-01T00:00:00Z"},
           "$.CreationTime", "epoch seconds")


def test_blob_must_be_base64():
    assert_wire_shape("kms", "Encrypt", {"CiphertextBlob": base64.b64encode(b"x").decode()})
    _fails("kms", "Encrypt", {"CiphertextBlob": "not base64!"}, "$.CiphertextBlob", "base64")


def test_header_and_status_members_are_not_expected_in_the_body():
    # lambda Invoke's body is its blob Payload; StatusCode and FunctionError live elsewhere.
    assert_wire_shape("lambda", "Invoke", b'{"anything": 1}')


def test_a_union_needs_exactly_one_member():
    union = _service_model("guardduty").shape_for("SupportingData")
    names = [m.serialization.get("name", n) for n, m in union.members.items()]
    problems: list[str] = []
    _json_value(union, {}, "$", "rest-json", problems)
    assert any("exactly one member" in p for p in problems), problems
    assert len(names) >= 1


def test_a_good_ec2_body_passes():
    body = (b'<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            b"<requestId>r</requestId><securityGroupInfo><item><groupId>sg-1</groupId>"
            b"<groupName>g</groupName><tagSet/></item></securityGroupInfo>"
            b"</DescribeSecurityGroupsResponse>")
    assert_wire_shape("ec2", "DescribeSecurityGroups", body)
    assert_wire_shape("ec2", "DescribeSecurityGroups", ElementTree.fromstring(body))


def test_ec2_element_names_and_list_entries_are_checked():
    body = (b"<DescribeSecurityGroupsResponse><requestId>r</requestId>"
            b"<securityGroupInfo><member><GroupId>sg-1</GroupId></member></securityGroupInfo>"
            b"<bogus/></DescribeSecurityGroupsResponse>")
    problems = wire_mismatches("ec2", "DescribeSecurityGroups", body)
    assert any("unknown element <bogus>" in p for p in problems), problems
    assert any("list entries must be <item>" in p for p in problems), problems


def test_ec2_root_element_must_name_the_operation():
    _fails("ec2", "ModifyNetworkInterfaceAttribute", b"<Response><return>true</return></Response>",
           "expected <ModifyNetworkInterfaceAttributeResponse>")


def test_query_result_wrapper_is_required():
    good = (b"<GetCallerIdentityResponse><GetCallerIdentityResult><Account>1</Account>"
            b"</GetCallerIdentityResult><ResponseMetadata><RequestId>x</RequestId>"
            b"</ResponseMetadata></GetCallerIdentityResponse>")
    assert_wire_shape("sts", "GetCallerIdentity", good)
    _fails("sts", "GetCallerIdentity",
           b"<GetCallerIdentityResponse><Account>1</Account></GetCallerIdentityResponse>",
           "missing <GetCallerIdentityResult>")


def test_capture_raw_records_raw_bodies_from_a_real_client(aws_client):
    from wire_shapes import capture_raw

    client = aws_client("events")
    calls = capture_raw(client)
    client.put_events(Entries=[{"Source": "gdlab.test", "DetailType": "t", "Detail": "{}"}])
    operation, status, body = calls[-1]
    assert (operation, status) == ("PutEvents", 200)
    assert body["FailedEntryCount"] == 0
    assert_wire_shape("events", operation, body)
