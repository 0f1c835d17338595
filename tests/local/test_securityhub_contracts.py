"""Contracts for the moto internals the local Security Hub's triage leans on (moto 5.2.5):
action names come from botocore's model by method and URI, greedy URI labels reach the
handler under the model's member name, and a Finding takes the attribute gdlab adds."""

from __future__ import annotations

import inspect


def test_rest_json_actions_and_uri_labels_come_from_the_model():
    from moto.core.responses import BaseResponse

    source = inspect.getsource(BaseResponse)
    assert "_get_action_from_method_and_request_uri" in source
    assert "self.uri_match" in source
    # parse_parameters folds uri_match into params by the model's member names
    assert "uri_match" in inspect.getsource(BaseResponse.parse_parameters) or \
        "uri_match" in inspect.getsource(BaseResponse.setup_class)


def test_finding_accepts_gdlab_attributes():
    from moto.securityhub.models import Finding

    finding = Finding("id", {"Id": "id"})
    finding.customer_fields = {"Workflow"}
    assert finding.data == {"Id": "id"} and not hasattr(Finding, "__slots__")


def test_moto_has_no_triage_routes_of_its_own():
    from moto.securityhub import urls

    from gdlab.local.securityhub_triage import TRIAGE_URL_PATHS

    # Ours are added beside moto's; a moto upgrade adding them needs a look.
    assert not set(TRIAGE_URL_PATHS) & set(urls.url_paths)
