"""Security Hub's delegated administrator undone over the local cloud's HTTP server: the
management account lists and removes the administrator, the administrator disassociates
its organization members (and cannot delete them), and stops seeing their findings. Raw
answers are held to botocore's shapes."""

from __future__ import annotations

import boto3
from local.test_securityhub_aggregator import HOME, Hubs, error, session_keys


def organization(server) -> dict[str, str]:
    org = boto3.client("organizations", region_name=HOME, endpoint_url=server.endpoint,
                       **server.credentials.boto3_kwargs())
    org.create_organization(FeatureSet="ALL")
    return {name: org.create_account(Email=f"{name}@example.com", AccountName=name)[
        "CreateAccountStatus"]["AccountId"] for name in ("security", "student1")}


def test_the_administrator_is_listed_removed_and_its_members_disassociated(local_server):
    accounts = organization(local_server)
    management = Hubs(local_server)
    admin = Hubs(local_server, session_keys(local_server, accounts["security"]))
    student = Hubs(local_server, session_keys(local_server, accounts["student1"]))
    student.with_findings(accounts["student1"])
    admin(HOME).enable_security_hub(EnableDefaultStandards=False)
    assert management(HOME).list_organization_admin_accounts()["AdminAccounts"] == []
    management(HOME).enable_organization_admin_account(AdminAccountId=accounts["security"])
    assert management(HOME).list_organization_admin_accounts()["AdminAccounts"] == [
        {"AccountId": accounts["security"], "Status": "ENABLED"}]
    # Only the management account designates, lists and removes.
    code, _ = error(lambda: admin(HOME).list_organization_admin_accounts())
    assert code == "AccessDeniedException"
    admin(HOME).create_members(AccountDetails=[{"AccountId": accounts["student1"]}])
    assert admin.ids(HOME) == {f"{HOME}-1"}
    # An organization member cannot be deleted, only disassociated.
    unprocessed = admin(HOME).delete_members(AccountIds=[accounts["student1"]])[
        "UnprocessedAccounts"]
    assert [u["AccountId"] for u in unprocessed] == [accounts["student1"]]
    assert "organization" in unprocessed[0]["ProcessingResult"]
    admin(HOME).disassociate_members(AccountIds=[accounts["student1"]])
    assert admin(HOME).list_members()["Members"] == []
    assert admin.ids(HOME) == set()  # its findings are the member's own again
    assert student.ids(HOME) == {f"{HOME}-1"}
    code, message = error(lambda: management(HOME).disable_organization_admin_account(
        AdminAccountId=accounts["student1"]))
    assert code == "InvalidInputException" and accounts["student1"] in message
    management(HOME).disable_organization_admin_account(AdminAccountId=accounts["security"])
    assert management(HOME).list_organization_admin_accounts()["AdminAccounts"] == []
    # Organizations still names it Security Hub's delegated administrator, as on AWS.
    organizations = boto3.client("organizations", region_name=HOME,
                                 endpoint_url=local_server.endpoint,
                                 **local_server.credentials.boto3_kwargs())
    assert [a["Id"] for a in organizations.list_delegated_administrators(
        ServicePrincipal="securityhub.amazonaws.com")["DelegatedAdministrators"]] == [
        accounts["security"]]
    for hubs in (management, admin, student):
        hubs.check_shapes()
