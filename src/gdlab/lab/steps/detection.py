"""What lets GuardDuty know the malicious IP: the private bucket holding the threat list,
the detector (adopted when the region has one), the ThreatIntelSet, and Security Hub."""

from __future__ import annotations

from typing import Any

from gdlab.errors import PreflightError, StepFailed
from gdlab.lab import sharing
from gdlab.lab.awsutil import error_code, error_message, ignore_not_found, is_not_found
from gdlab.lab.state import Resource
from gdlab.lab.steps import LAB_TAG, Found, LabContext, Step

THREAT_LIST_KEY = "threat-list.txt"
MAX_THREAT_LISTS = 6  # GuardDuty's quota per detector
GOING = ("DELETE_PENDING", "DELETED")  # a threat list's statuses once it is being deleted


def bucket_name(ctx: LabContext) -> str:
    # Bucket names are global: the account and region make the lab's name unique.
    return f"gdlab-{ctx.lab}-{ctx.cloud.account}-{ctx.cloud.region}"


def threat_list_location(ctx: LabContext) -> str:
    # The s3:// form is one GuardDuty documents, and it holds in every partition.
    return f"s3://{bucket_name(ctx)}/{THREAT_LIST_KEY}"


class Bucket(Step):
    key, type, label = "bucket", "AWS::S3::Bucket", "Private, encrypted threat-list bucket"

    def name_of(self, ctx: LabContext) -> str:
        """The bucket's name: the only one this step ever empties and deletes."""
        return bucket_name(ctx)

    def display_name(self, ctx: LabContext) -> str:
        return self.name_of(ctx)

    def create(self, ctx: LabContext) -> None:
        name = self.name_of(ctx)
        create_bucket(ctx.cloud.client("s3"), name, ctx.cloud.region)
        ctx.created(self, name)

    def configure(self, ctx: LabContext, res: Resource) -> None:
        secure_bucket(ctx.cloud.client("s3"), res.id, ctx.tags(res.id))

    def find(self, ctx: LabContext) -> list[Found]:
        from botocore.exceptions import ClientError

        s3 = ctx.cloud.client("s3")
        try:
            tags = s3.get_bucket_tagging(Bucket=self.name_of(ctx))["TagSet"]
        except ClientError as exc:
            if error_code(exc) in ("NoSuchBucket", "NoSuchTagSet", "AccessDenied", "404"):
                # An untagged bucket of our exact name is a half-made lab bucket.
                return [Found(self.name_of(ctx))] if error_code(exc) == "NoSuchTagSet" else []
            raise
        return [Found(self.name_of(ctx))] if any(t["Key"] == LAB_TAG for t in tags) else []

    def delete(self, ctx: LabContext, res: Resource) -> None:
        if res.id != self.name_of(ctx):
            # Emptying a bucket destroys data: only the lab's own name is ever emptied,
            # whatever a (damaged or hostile) journal says.
            raise StepFailed(
                f"the journal names bucket {res.id}, not this lab's {self.name_of(ctx)}: "
                "not deleted",
                "check the state file; the lab's own bucket is found by the sweep",
            )
        empty_and_delete_bucket(ctx.cloud.client("s3"), res.id)


def create_bucket(s3: Any, name: str, region: str) -> None:
    kwargs: dict[str, Any] = {}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(Bucket=name, ObjectOwnership="BucketOwnerEnforced", **kwargs)


def secure_bucket(s3: Any, name: str, tags: dict[str, str]) -> None:
    """Block every public access, encrypt by default, tag."""
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_bucket_tagging(
        Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})


def empty_and_delete_bucket(s3: Any, name: str) -> None:
    """Every version and delete marker, then the bucket; one already gone is fine."""
    from botocore.exceptions import ClientError

    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            objects = [
                {"Key": o["Key"], "VersionId": o["VersionId"]}
                for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if objects:
                s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
        s3.delete_bucket(Bucket=name)
    except ClientError as exc:
        if not is_not_found(exc):
            raise


class ThreatListFile(Step):
    key, type, label = "threat-list-file", "AWS::S3::Object", "Threat list (TXT) with the EIP"
    needs = ("bucket", "eip")

    def create(self, ctx: LabContext) -> None:
        eip = ctx.attr("eip", "public_ip")
        body = f"# gdlab lab {ctx.lab}: the malicious instance's Elastic IP\n{eip}\n"
        ctx.cloud.client("s3").put_object(
            Bucket=ctx.id_of("bucket"),
            Key=THREAT_LIST_KEY,
            Body=body.encode(),
            ContentType="text/plain",
        )
        ctx.created(self, threat_list_location(ctx), entries=[eip])

    def delete(self, ctx: LabContext, res: Resource) -> None:
        bucket = (res.id or f"s3://{bucket_name(ctx)}/").split("/")[2]
        ignore_not_found(ctx.cloud.client("s3").delete_object, Bucket=bucket, Key=THREAT_LIST_KEY)


class Detector(Step):
    key, type, label = "detector", "AWS::GuardDuty::Detector", "GuardDuty detector"

    def create(self, ctx: LabContext) -> None:
        # Under the place's lock: no other lab of this home deletes the detector between
        # our look and our journal entry (lab/sharing.py).
        with sharing.guarded(ctx.state._store, ctx.state, self.key):
            self._create(ctx)

    def _create(self, ctx: LabContext) -> None:
        guardduty = ctx.cloud.client("guardduty")
        existing = guardduty.list_detectors()["DetectorIds"]
        if existing:
            self._adopt(ctx, guardduty, existing[0])
            return
        from botocore.exceptions import ClientError

        try:
            detector_id = guardduty.create_detector(
                Enable=True,
                FindingPublishingFrequency="FIFTEEN_MINUTES",
                # S3 Protection (on by default for new detectors): GuardDuty reads S3 data
                # events, such as a leaked key listing a bucket.
                Features=[{"Name": "S3_DATA_EVENTS", "Status": "ENABLED"}],
                Tags=ctx.tags(),
            )["DetectorId"]
        except ClientError:
            # A setup elsewhere (another home or machine) created the one detector AWS
            # allows between our look and our create (GuardDuty says so with a bare
            # BadRequestException): if one exists now, this lab adopts it.
            existing = guardduty.list_detectors()["DetectorIds"]
            if not existing:
                raise
            self._adopt(ctx, guardduty, existing[0])
            return
        ctx.created(self, detector_id)

    def _adopt(self, ctx: LabContext, guardduty: Any, detector_id: str) -> None:
        detector = guardduty.get_detector(DetectorId=detector_id)
        if detector.get("Status") != "ENABLED":
            raise PreflightError(
                f"the GuardDuty detector {detector_id} in {ctx.cloud.region} is suspended",
                "enable it (aws guardduty update-detector --enable) and rerun gdlab setup",
            )
        made_by = (detector.get("Tags") or {}).get(LAB_TAG)
        ownership = sharing.ownership_to_adopt(ctx.state, self.key, detector_id, made_by)
        ctx.created(self, detector_id, ownership=ownership)

    def find(self, ctx: LabContext) -> list[Found]:
        guardduty = ctx.cloud.client("guardduty")
        found = []
        for detector_id in guardduty.list_detectors()["DetectorIds"]:
            tags = guardduty.get_detector(DetectorId=detector_id).get("Tags", {})
            if tags.get(LAB_TAG) == ctx.lab:
                found.append(Found(detector_id))
        return found

    def delete(self, ctx: LabContext, res: Resource) -> None:
        # GuardDuty has no not-found error code: gone is what ListDetectors no longer shows.
        guardduty = ctx.cloud.client("guardduty")
        if res.id in guardduty.list_detectors()["DetectorIds"]:
            guardduty.delete_detector(DetectorId=res.id)


class ThreatIntelSet(Step):
    key, type, label = "threat-intel-set", "AWS::GuardDuty::ThreatIntelSet", "Custom threat list"
    needs = ("detector", "threat-list-file", "eip")
    typical_seconds = 5.0  # ACTIVATING until GuardDuty has read the list

    def display_name(self, ctx: LabContext) -> str:
        return ctx.name("threat_list")

    def create(self, ctx: LabContext) -> None:
        from gdlab.lab import class_admin

        administrator = class_admin.serving(ctx.state.options.get("class"))
        if administrator is not None and administrator.account != ctx.cloud.account:
            # A GuardDuty member: only its administrator manages lists, and they apply to
            # the member. The class writes one list per region with every lab's address.
            name = administrator.enlist(ctx.cloud.region, ctx.lab, ctx.attr("eip", "public_ip"))
            ctx.created(self, f"{administrator.account}/{name}", list_name=name,
                        admin_account=administrator.account)
            return
        guardduty = ctx.cloud.client("guardduty")
        detector_id = ctx.id_of("detector")
        existing = guardduty.list_threat_intel_sets(DetectorId=detector_id)["ThreatIntelSetIds"]
        if len(existing) >= MAX_THREAT_LISTS:
            raise PreflightError(
                f"the GuardDuty detector {detector_id} already has {len(existing)} threat lists, "
                f"the most GuardDuty allows",
                "delete one you no longer need (aws guardduty delete-threat-intel-set) and rerun",
            )
        from botocore.exceptions import ClientError

        try:
            set_id = guardduty.create_threat_intel_set(
                DetectorId=detector_id,
                Name=self.display_name(ctx),
                Format="TXT",
                Location=threat_list_location(ctx),
                Activate=True,
                Tags=ctx.tags(),
            )["ThreatIntelSetId"]
        except ClientError as exc:
            code = error_code(exc)
            if code in ("AccessDeniedException", "AccessDenied"):
                raise PreflightError(
                    "GuardDuty refused the threat list: access denied",
                    "threat lists need iam:PutRolePolicy and iam:DeleteRolePolicy on the role "
                    "AWSServiceRoleForAmazonGuardDuty (not in AmazonGuardDutyFullAccess), and "
                    "s3:GetObject on the list",
                ) from exc
            if code == "BadRequestException" and "administrator" in error_message(exc).lower():
                raise PreflightError(
                    f"GuardDuty refused the threat list: {error_message(exc)}",
                    "in a GuardDuty member account only the administrator account manages "
                    "threat lists; run the lab in a standalone or administrator account",
                ) from exc
            raise
        ctx.created(self, set_id, detector_id=detector_id, list_name=self.display_name(ctx))

    def find(self, ctx: LabContext) -> list[Found]:
        guardduty = ctx.cloud.client("guardduty")
        found = []
        for detector_id in guardduty.list_detectors()["DetectorIds"]:
            for set_id, info in threat_intel_sets(guardduty, detector_id):
                if info["Name"] == self.display_name(ctx):
                    found.append(Found(set_id, attrs={"detector_id": detector_id}))
        return found

    def delete(self, ctx: LabContext, res: Resource) -> None:
        if res.attrs.get("admin_account"):
            # The administrator's list is the class's: its teardown deletes it once every
            # lab is gone (an update now would re-read the list under the others' watch).
            return
        detector = ctx.state.live("detector")
        detector_id = res.attrs.get("detector_id") or (detector.id if detector else None)
        if not detector_id or not res.id:
            return
        # GuardDuty has no not-found error code: look before deleting (a set goes with its
        # detector, and a detector that is gone is not listed).
        guardduty = ctx.cloud.client("guardduty")
        if detector_id not in guardduty.list_detectors()["DetectorIds"]:
            return
        sets = guardduty.get_paginator("list_threat_intel_sets").paginate(DetectorId=detector_id)
        if any(res.id in page["ThreatIntelSetIds"] for page in sets):
            guardduty.delete_threat_intel_set(DetectorId=detector_id, ThreatIntelSetId=res.id)


def threat_intel_sets(guardduty: Any, detector_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every threat list of a detector with its description, but those being deleted
    (DELETE_PENDING, DELETED: AWS may list them a while). A list that another lab of the
    same detector deletes between the listing and the read is left out too: GuardDuty then
    answers BadRequestException (it has no not-found code), so the id is listed again to
    tell "gone meanwhile" from a real refusal."""
    from botocore.exceptions import ClientError

    def listed() -> list[str]:
        pages = guardduty.get_paginator("list_threat_intel_sets").paginate(
            DetectorId=detector_id)
        return [set_id for page in pages for set_id in page["ThreatIntelSetIds"]]

    sets = []
    for set_id in listed():
        try:
            info = guardduty.get_threat_intel_set(DetectorId=detector_id,
                                                  ThreatIntelSetId=set_id)
        except ClientError as exc:
            if error_code(exc) == "BadRequestException" and set_id not in listed():
                continue
            raise
        if info.get("Status") not in GOING:
            sets.append((set_id, info))
    return sets


class SecurityHub(Step):
    key, type, label = "securityhub", "AWS::SecurityHub::Hub", "Security Hub"

    def create(self, ctx: LabContext) -> None:
        # As the detector: under the place's lock (lab/sharing.py).
        with sharing.guarded(ctx.state._store, ctx.state, self.key):
            self._create(ctx)

    def _create(self, ctx: LabContext) -> None:
        from botocore.exceptions import ClientError

        hub = ctx.cloud.client("securityhub")
        current = _describe_hub(hub)
        if current:
            self._adopt(ctx, hub, current["HubArn"])
            return
        try:
            hub.enable_security_hub(EnableDefaultStandards=False, Tags=ctx.tags())
        except ClientError as exc:
            if error_code(exc) != "ResourceConflictException":
                raise
            self._adopt(ctx, hub, _describe_hub(hub)["HubArn"])
            return
        ctx.created(self, _describe_hub(hub)["HubArn"])

    def _adopt(self, ctx: LabContext, hub: Any, hub_arn: str) -> None:
        tags = hub.list_tags_for_resource(ResourceArn=hub_arn).get("Tags", {})
        ownership = sharing.ownership_to_adopt(ctx.state, self.key, hub_arn, tags.get(LAB_TAG))
        ctx.created(self, hub_arn, ownership=ownership)

    def find(self, ctx: LabContext) -> list[Found]:
        hub = ctx.cloud.client("securityhub")
        current = _describe_hub(hub)
        if not current:
            return []
        tags = hub.list_tags_for_resource(ResourceArn=current["HubArn"]).get("Tags", {})
        return [Found(current["HubArn"])] if tags.get(LAB_TAG) == ctx.lab else []

    def delete(self, ctx: LabContext, res: Resource) -> None:
        from botocore.exceptions import ClientError

        try:
            ctx.cloud.client("securityhub").disable_security_hub()
        except ClientError as exc:
            if error_code(exc) not in ("InvalidAccessException", "ResourceNotFoundException"):
                raise


def _describe_hub(hub: Any) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return hub.describe_hub()
    except ClientError as exc:
        if error_code(exc) in ("InvalidAccessException", "ResourceNotFoundException"):
            return None
        raise
