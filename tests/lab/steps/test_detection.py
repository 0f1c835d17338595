"""The detection steps' own edges: what another lab on the same detector does meanwhile."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from gdlab.lab.steps.detection import threat_intel_sets


def _detector_with_lists(cloud, names):
    gd = cloud.client("guardduty")
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="lists")
    s3.put_object(Bucket="lists", Key="l.txt", Body=b"198.51.100.7\n")
    detector = gd.create_detector(Enable=True)["DetectorId"]
    ids = {name: gd.create_threat_intel_set(DetectorId=detector, Name=name, Format="TXT",
                                            Location="s3://lists/l.txt",
                                            Activate=True)["ThreatIntelSetId"]
           for name in names}
    return gd, detector, ids


def test_a_list_deleted_between_listing_and_reading_is_left_out(cloud):
    # Side by side, another lab's teardown deletes its list while this one sweeps.
    gd, detector, ids = _detector_with_lists(cloud, ["mine", "theirs"])

    def delete_theirs_first(params, **_):
        if params.get("ThreatIntelSetId") == ids["theirs"]:
            gd.meta.events.unregister("provide-client-params.guardduty.GetThreatIntelSet",
                                      delete_theirs_first)
            gd.delete_threat_intel_set(DetectorId=detector, ThreatIntelSetId=ids["theirs"])

    gd.meta.events.register("provide-client-params.guardduty.GetThreatIntelSet",
                            delete_theirs_first)
    found = threat_intel_sets(gd, detector)
    assert [(set_id, info["Name"]) for set_id, info in found] == [(ids["mine"], "mine")]


def test_a_refused_read_of_a_list_still_listed_is_raised(cloud):
    gd, detector, ids = _detector_with_lists(cloud, ["mine"])

    def refuse(**_):
        raise ClientError({"Error": {"Code": "BadRequestException",
                                     "Message": "The request is rejected."}},
                          "GetThreatIntelSet")

    gd.meta.events.register("before-call.guardduty.GetThreatIntelSet", refuse)
    with pytest.raises(ClientError, match="BadRequestException"):
        threat_intel_sets(gd, detector)


def test_a_list_being_deleted_is_left_out(cloud):
    # AWS may go on listing a deleted list a while, with the status DELETED.
    gd, detector, ids = _detector_with_lists(cloud, ["mine", "theirs"])

    def being_deleted(parsed, **_):
        if parsed.get("Name") == "theirs":
            parsed["Status"] = "DELETE_PENDING"

    gd.meta.events.register("after-call.guardduty.GetThreatIntelSet", being_deleted)
    assert [set_id for set_id, _ in threat_intel_sets(gd, detector)] == [ids["mine"]]
