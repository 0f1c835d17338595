"""Contracts with moto's internals that gdlab/local hooks. A moto upgrade that moves any of
them fails here, loudly, instead of silently turning the local cloud back into plain moto."""

from __future__ import annotations

import inspect

import moto
import pytest

from gdlab.local import extensions


@pytest.fixture(scope="module", autouse=True)
def installed():
    extensions.install()


def params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_moto_is_the_pinned_version():
    assert moto.__version__ == "5.2.5"


def test_routes_come_from_the_backend_url_module():
    from moto.core.base_backend import BaseBackend

    assert isinstance(inspect.getattr_static(BaseBackend, "_url_module"), property)
    for name in ("urls", "url_paths", "flask_paths"):
        assert "_url_module" in inspect.getsource(getattr(BaseBackend, name).fget) or \
            "url_paths" in inspect.getsource(getattr(BaseBackend, name).fget)
    assert "self._url_module.url_paths" in inspect.getsource(BaseBackend.urls.fget)
    assert "self._url_module.url_bases" in inspect.getsource(BaseBackend.url_bases.fget)


def test_backends_are_looked_up_per_request_through_the_package():
    import moto.guardduty
    import moto.securityhub
    from moto.backends import get_backend
    from moto.core import botocore_stubber
    from moto.moto_server import werkzeug_app

    from gdlab.local import guardduty, securityhub

    assert get_backend("guardduty") is guardduty.guardduty_backends
    assert get_backend("securityhub") is securityhub.securityhub_backends
    assert moto.guardduty.models.guardduty_backends is guardduty.guardduty_backends
    assert moto.guardduty.responses.guardduty_backends is guardduty.guardduty_backends
    assert moto.securityhub.responses.securityhub_backends is securityhub.securityhub_backends
    # in-process (mock_aws) and server both resolve the backend and its urls on demand
    assert "backends.get_backend(service)" in inspect.getsource(
        botocore_stubber.BotocoreStubber.process_request)
    assert "backend.urls.items()" in inspect.getsource(
        botocore_stubber.BotocoreStubber.process_request)
    assert "backends.get_backend(service)" in inspect.getsource(werkzeug_app.create_backend_app)
    assert "backend.flask_paths.items()" in inspect.getsource(werkzeug_app.create_backend_app)


def test_backend_dict_shape():
    from moto.core.base_backend import BackendDict

    assert params(BackendDict.__init__)[:3] == ["self", "backend", "service_name"]
    assert hasattr(BackendDict, "iter_backends") and hasattr(BackendDict, "reset")
    assert "self.__init__(region_name, account_id)" in inspect.getsource(
        BackendDict.reset.__func__.__globals__["BaseBackend"].reset)


def test_guardduty_backend_and_response_shape():
    from moto.guardduty import urls
    from moto.guardduty.models import Detector, GuardDutyBackend
    from moto.guardduty.responses import GuardDutyResponse

    assert params(GuardDutyBackend.create_detector) == [
        "self", "enable", "finding_publishing_frequency", "data_sources", "tags", "features"]
    assert params(GuardDutyBackend.delete_detector) == ["self", "detector_id"]
    # GdlabDetector builds on moto's detector: its constructor, update and JSON view
    assert params(Detector.__init__) == [
        "self", "account_id", "region_name", "created_at", "finding_publish_freq", "enabled",
        "datasources", "tags", "features"]
    assert params(Detector.update) == [
        "self", "enable", "finding_publishing_frequency", "data_sources", "features"]
    assert params(GuardDutyBackend.update_detector) == [
        "self", "detector_id", "enable", "finding_publishing_frequency", "data_sources",
        "features"]
    assert params(Detector.to_json) == ["self"]
    assert "detectors" in inspect.getsource(GuardDutyBackend.__init__)
    assert "self.tags" in inspect.getsource(Detector.__init__)
    assert isinstance(inspect.getattr_static(GuardDutyResponse, "guardduty_backend"), property)
    assert urls.url_bases and all(p.startswith("{0}") for p in urls.url_paths)


def test_response_machinery():
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult, BaseResponse, EmptyResult

    assert params(BaseResponse.parse_parameters) == ["self", "request"]
    import moto.core.responses

    # the module's text: other gdlab extensions wrap setup_class itself
    setup = inspect.getsource(moto.core.responses)
    assert "self.normalized_request = request" in setup
    assert "self.uri_match" in setup
    assert "self.params = " in inspect.getsource(BaseResponse.parse_parameters)
    call = inspect.getsource(BaseResponse.call_action)
    assert "except ServiceException" in call and "NotImplementedError" in call
    assert ActionResult and EmptyResult
    assert ServiceException("Code", "message").code == "Code"


def test_server_machinery():
    from moto.moto_server import werkzeug_app

    assert params(werkzeug_app.DomainDispatcherApplication.__init__) == ["self", "create_app"]
    assert "backend_app.debug = True" in inspect.getsource(werkzeug_app.create_backend_app)
    assert issubclass(werkzeug_app.MotoRequestHandler,
                      __import__("werkzeug.serving").serving.WSGIRequestHandler)


def test_securityhub_backend_shape():
    from moto.securityhub import urls
    from moto.securityhub.models import Finding, SecurityHubBackend
    from moto.securityhub.responses import SecurityHubResponse

    init = inspect.getsource(SecurityHubBackend.__init__)
    for attribute in ("self.findings", "self.enabled_at", "self.enabled"):
        assert attribute in init
    assert params(Finding.__init__) == ["self", "finding_id", "finding_data"]
    assert "self.data = finding_data" in inspect.getsource(Finding.__init__)
    assert params(SecurityHubBackend.batch_import_findings) == ["self", "findings"]
    assert params(SecurityHubBackend.enable_security_hub) == [
        "self", "enable_default_standards", "tags"]
    assert isinstance(inspect.getattr_static(SecurityHubResponse, "securityhub_backend"),
                      property)
    assert "{0}/accounts$" in urls.url_paths


def test_s3_backend_shape():
    from moto.s3.models import FakeKey, S3Backend, s3_backends

    assert params(S3Backend.get_object)[:3] == ["self", "bucket_name", "key_name"]
    assert "self.buckets" in inspect.getsource(S3Backend.__init__)
    assert isinstance(inspect.getattr_static(FakeKey, "value"), property)
    assert "aws" in s3_backends["123456789012"]


def test_ec2_shapes():
    from moto.ec2.models.elastic_ip_addresses import ElasticAddress, ElasticAddressBackend
    from moto.ec2.models.elastic_network_interfaces import (
        NetworkInterface,
        NetworkInterfaceBackend,
    )
    from moto.ec2.models.instances import Instance, InstanceBackend
    from moto.ec2.models.security_groups import SecurityGroupBackend
    from moto.ec2.responses import elastic_network_interfaces, instances

    from gdlab.local import ec2

    assert params(ec2._orig_prep_nics)[:2] == ["self", "nic_spec"]
    assert "self.nics" in inspect.getsource(ec2._orig_prep_nics)
    assert params(ec2._orig_run_instances)[:5] == [
        "self", "image_id", "count", "user_data", "security_group_names"]
    assert 'tags = kwargs.pop("tags", {})' in inspect.getsource(ec2._orig_run_instances)
    assert "Reservation" in inspect.getsource(ec2._orig_run_instances)
    assert "self.security_groups = security_groups" in inspect.getsource(Instance.__init__)
    assert "nic.delete_on_termination" in inspect.getsource(ec2._orig_terminate)
    assert 'self._state.name = "terminated"' in inspect.getsource(ec2._orig_terminate)
    assert "self._group_set" in inspect.getsource(NetworkInterface.__init__)
    assert "eni._group_set = groups" in inspect.getsource(ec2._orig_modify_eni_attribute)
    assert "eni.group_set" in inspect.getsource(elastic_network_interfaces)
    assert "modify_instance_security_groups" in inspect.getsource(instances)
    assert params(ec2._orig_allocate_address) == ["self", "domain", "address", "tags"]
    assert "self.public_ip = address" in inspect.getsource(ElasticAddress.__init__)
    assert params(ec2._orig_delete_security_group) == ["self", "name", "group_id"]
    assert "self.enis" in inspect.getsource(NetworkInterfaceBackend.__init__)
    # installed: the patched functions are what moto calls
    assert InstanceBackend.modify_instance_security_groups is ec2._modify_instance_security_groups
    assert SecurityGroupBackend.delete_security_group is ec2._delete_security_group
    assert ElasticAddressBackend.allocate_address is ec2._allocate_address
    assert Instance.terminate is ec2._terminate
    from moto.ec2.models.subnets import Subnet

    assert "_subnet_ip_generator" in inspect.getsource(ec2._orig_get_available_subnet_ip)
    assert "self.cidr.hosts()" in inspect.getsource(Subnet._base_avail_ip_iterator)
    assert Subnet.get_available_subnet_ip is ec2._get_available_subnet_ip
    assert isinstance(inspect.getattr_static(Instance, "security_groups"), property)


def test_lambda_lifecycle_seams():
    from moto.awslambda.models import LambdaBackend, LambdaStorage
    from moto.core.base_backend import BaseBackend

    hooked = {name: inspect.unwrap(getattr(LambdaBackend, name)) for name in (
        "create_function", "update_function_code", "update_function_configuration",
        "delete_function", "reset")}
    assert params(hooked["create_function"]) == ["self", "spec"]
    assert params(hooked["update_function_code"]) == ["self", "function_name", "qualifier", "body"]
    assert params(hooked["update_function_configuration"]) == [
        "self", "function_name", "qualifier", "body"]
    assert params(hooked["delete_function"]) == ["self", "function_name", "qualifier"]
    assert hooked["reset"] is BaseBackend.reset  # re-runs __init__: functions vanish unseen
    assert "self._arns" in inspect.getsource(LambdaStorage.__init__)
    assert "self._lambdas = LambdaStorage" in inspect.getsource(LambdaBackend.__init__)
    assert LambdaBackend.create_function is not hooked["create_function"]  # installed


def test_flow_log_shapes():
    from moto.ec2.models.flow_logs import FlowLogs, FlowLogsBackend
    from moto.logs.models import LogsBackend
    from moto.logs.utils import EventMessageFilter

    from gdlab.local import flowlogs

    init = inspect.getsource(FlowLogs.__init__)
    for attribute in ("resource_id", "traffic_type", "log_group_name", "log_format",
                      "max_aggregation_interval", "log_destination_type", "flow_log_status",
                      "deliver_logs_status", "deliver_logs_error_message"):
        assert f"self.{attribute} =" in init
    assert "self.flow_logs: dict[str, FlowLogs] = {}" in inspect.getsource(
        FlowLogsBackend.__init__)
    # what the correction replaces: moto answers SUCCESS whatever the status
    assert 'return "SUCCESS"' in inspect.getsource(flowlogs._orig_get_filter_value)
    assert FlowLogs.get_filter_value is flowlogs._get_filter_value
    assert params(flowlogs._orig_get_filter_value) == ["self", "filter_name", "method_name"]
    assert "self.groups" in inspect.getsource(LogsBackend.__init__)
    assert params(LogsBackend.ensure_log_stream) == ["self", "log_group_name",
                                                     "log_stream_name"]
    assert params(LogsBackend.put_log_events) == ["self", "log_group_name", "log_stream_name",
                                                  "log_events"]
    # FilterLogEvents with a plain word, as `--filter-pattern REJECT`, is a term match
    assert EventMessageFilter("REJECT").matches("2 1 eni-1 a b 0 0 1 1 84 1 2 REJECT OK")
    assert not EventMessageFilter("REJECT").matches("2 1 eni-1 a b 0 0 1 1 84 1 2 ACCEPT OK")
    # what the pattern correction replaces: moto matches everything for these
    from moto.logs.models import LogStream

    assert "EventMessageFilter(filter_pattern).matches(" in inspect.getsource(
        LogStream.filter_log_events)
    for pattern in ("[version, action=REJECT]", "?REJECT ?NODATA", "-ACCEPT"):
        bare = EventMessageFilter.__new__(EventMessageFilter)
        flowlogs._orig_filter_init(bare, pattern)
        assert type(bare.filter_type).__name__ == "UnsupportedFilterPattern"
    assert EventMessageFilter.matches is flowlogs._filter_matches


def test_ssm_shapes():
    from moto.ec2.models.iam_instance_profile import IamInstanceProfileAssociationBackend
    from moto.ec2.models.security_groups import SecurityGroupRule
    from moto.ec2.responses import instances
    from moto.ssm.models import Command, SimpleSystemManagerBackend

    from gdlab.local import ssm

    assert params(ssm._orig["send_command"])[:1] == ["self"]
    assert params(ssm._orig["list_commands"]) == ["self", "command_id", "instance_id"]
    assert params(ssm._orig["get_command_invocation"]) == [
        "self", "command_id", "instance_id", "plugin_name"]
    assert params(ssm._orig["associate"]) == [
        "self", "instance_id", "iam_instance_profile_name", "iam_instance_profile_arn"]
    # RunInstances associates the profile after launching, through that method
    assert "self.ec2_backend.associate_iam_instance_profile(" in inspect.getsource(instances)
    init = inspect.getsource(Command.__init__)
    for attribute in ("timeout_seconds", "requested_date_time", "parameters", "invocations",
                      "account_id", "backend_region", "status", "status_details",
                      "error_count", "completed_count"):
        assert f"self.{attribute}" in init
    assert '"DeliveryTimedOutCount": 0' in inspect.getsource(ssm._orig["response_object"])
    rule = inspect.getsource(SecurityGroupRule.__init__)
    for attribute in ("ip_protocol", "ip_range", "from_port", "to_port"):
        assert f"self.{attribute}" in rule
    # installed
    assert SimpleSystemManagerBackend.send_command is not ssm._orig["send_command"]
    assert SimpleSystemManagerBackend.list_commands is not ssm._orig["list_commands"]
    assert Command.response_object is not ssm._orig["response_object"]
    assert IamInstanceProfileAssociationBackend.associate_iam_instance_profile is not \
        ssm._orig["associate"]


def _wrapped(patched, name: str):
    """The moto original a gdlab wrapper closes over (named `name` in its install())."""
    original = inspect.getclosurevars(patched).nonlocals.get(name)
    assert original is not None, f"{patched.__qualname__} no longer wraps {name}"
    return original


def test_ec2_group_checks_wrap_moto():
    from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend
    from moto.ec2.models.instances import Instance
    from moto.ec2.models.security_groups import SecurityGroup, SecurityGroupBackend
    from moto.ec2.responses import elastic_network_interfaces

    from gdlab.local import ec2

    assert params(ec2._orig_modify_eni_attribute)[:3] == ["self", "eni_id", "group_ids"]
    assert NetworkInterfaceBackend.modify_network_interface_attribute is \
        ec2._modify_network_interface_attribute
    # the handler passes the group ids positionally, second
    assert "eni_id, group_ids, source_dest_check, description" in inspect.getsource(
        elastic_network_interfaces.ElasticNetworkInterfaces.modify_network_interface_attribute)
    assert params(SecurityGroupBackend.get_security_group_from_id) == ["self", "group_id"]
    assert "self.vpc_id" in inspect.getsource(SecurityGroup.__init__)
    assert isinstance(inspect.getattr_static(Instance, "vpc_id"), property)
    assert "self.subnet = subnet" in inspect.getsource(
        __import__("moto.ec2.models.elastic_network_interfaces", fromlist=["x"])
        .NetworkInterface.__init__)
    from moto.ec2.exceptions import EC2ClientError, InvalidSecurityGroupNotFoundError

    assert InvalidSecurityGroupNotFoundError("sg-1").code == "InvalidGroup.NotFound"
    assert EC2ClientError("InvalidGroup.NotFound", "m").code == "InvalidGroup.NotFound"


def test_sns_outbox_wraps_topic_and_subscription_publish():
    from moto.sns.models import Subscription, Topic

    topic_original = _wrapped(Topic.publish, "original_topic_publish")
    sub_original = _wrapped(Subscription.publish, "original_sub_publish")
    assert params(topic_original)[:3] == ["self", "message", "subject"]
    assert "return message_id" in inspect.getsource(topic_original)
    assert params(sub_original)[:5] == [
        "self", "message", "message_id", "subject", "message_attributes"]
    assert "message_structure" in params(sub_original)
    # what sub_publish reads of a Subscription and its Topic
    sub_init = inspect.getsource(Subscription.__init__)
    for attribute in ("self.topic", "self.endpoint", "self.protocol", "self.arn",
                      "self._filter_policy_matcher"):
        assert f"{attribute} =" in sub_init or f"{attribute}:" in sub_init, attribute
    assert params(Subscription._parse_message_structure) == ["self", "message", "protocol"]
    assert params(Subscription.get_post_data)[:4] == [
        "self", "message", "message_id", "subject"]
    from moto.sns.utils import FilterPolicyMatcher

    assert params(FilterPolicyMatcher.matches) == ["self", "message_attributes", "message"]
    topic_init = inspect.getsource(Topic.__init__)
    for attribute in ("self.name", "self.sns_backend", "self.account_id", "self._policy_json",
                      "self.display_name"):
        assert attribute in topic_init or attribute in inspect.getsource(Topic), attribute


def test_eventbridge_delivery_replaces_send_to_targets():
    from moto.events.models import EventBus, EventPattern, EventsBackend, Rule, events_backends

    from gdlab.local import delivery

    assert Rule.send_to_targets is delivery.send_to_targets
    original = delivery._original_send_to_targets
    assert params(original) == ["self", "original_event", "transform_input"]
    assert "for target in self.targets" in inspect.getsource(original)
    init = inspect.getsource(Rule.__init__)
    for attribute in ("name", "account_id", "region_name", "state", "event_pattern",
                      "scheduled_expression", "targets"):
        assert f"self.{attribute}" in init, attribute
    assert isinstance(inspect.getattr_static(Rule, "arn"), property) or \
        "self.arn" in init
    assert "EventPattern.load(" in init
    assert params(EventPattern.matches_event) == ["self", "event"]
    assert params(EventPattern.get_pattern) == ["self"]
    assert params(EventsBackend.describe_event_bus) == ["self", "name"]
    assert "self.rules" in inspect.getsource(EventBus.__init__)
    assert "us-east-1" in events_backends["123456789012"]
    # PutEvents delivers through Rule.send_to_targets, so the replacement sees every event
    assert ".send_to_targets(" in inspect.getsource(EventsBackend.put_events)
    from moto.cloudwatch.models import CloudWatchBackend

    assert params(CloudWatchBackend.put_metric_data) == ["self", "namespace", "metric_data"]


def test_eventbridge_delivery_reads_sns_and_lambda_state():
    from moto.awslambda.models import LambdaFunction
    from moto.awslambda.policy import Policy
    from moto.awslambda.utils import get_backend
    from moto.sns.models import SNSBackend

    assert params(get_backend) == ["account_id", "region"]
    assert "self.topics" in inspect.getsource(SNSBackend.__init__)
    assert params(SNSBackend.publish)[:3] == ["self", "message", "arn"]
    assert "self.policy = Policy(self)" in inspect.getsource(LambdaFunction.__init__)
    assert "self.statements" in inspect.getsource(Policy.__init__)


def test_eventbridge_api_corrections_patch_the_handler():
    from moto.events.exceptions import InvalidEventPatternException
    from moto.events.models import EventPattern, EventsBackend
    from moto.events.responses import EventsHandler

    from gdlab.local import events

    assert EventsHandler.test_event_pattern is events.test_event_pattern
    refusing = _wrapped(EventsHandler.put_events, "original")
    assert "self.events_backend.put_events(events)" in inspect.getsource(refusing)
    assert params(EventsBackend.put_events) == ["self", "events"]
    assert isinstance(inspect.getattr_static(EventsHandler, "events_backend"), property)
    assert params(EventPattern.load) == ["raw_pattern"]
    # moto raises this for an invalid pattern; TestEventPattern passes it on
    assert InvalidEventPatternException("x").error_type == "InvalidEventPatternException"
    with pytest.raises(InvalidEventPatternException):
        EventPattern.load('{"source": "aws.guardduty"}')
    # the null-free reads wrap handlers that answer (JSON text, headers)
    for name in events.NULL_FREE:
        original = inspect.unwrap(getattr(EventsHandler, name))
        assert params(original) == ["self"], name
        assert "json.dumps" in inspect.getsource(original) or "_create_response" in \
            inspect.getsource(original), name


def test_iam_managed_policies_seam():
    from moto.iam import models

    original = _wrapped(models.IAMBackend._init_aws_policies, "original")
    assert params(original) == ["self"]
    assert "self._init_aws_policies()" in inspect.getsource(models.IAMBackend.__init__)
    assert params(models.AWSManagedPolicy.from_data) == [
        "name", "account_id", "region_name", "data"]
    assert isinstance(models.aws_managed_policies_data, str)
    assert "AmazonSSMManagedInstanceCore" in models.aws_managed_policies_data


def test_lambda_invoke_seams():
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    from gdlab.local import lambda_runner

    patched_invoke = inspect.getattr_static(LambdaFunction, "invoke")
    assert patched_invoke.__module__ == lambda_runner.__name__
    assert inspect.getattr_static(LambdaFunction, "_invoke_lambda").__module__ == \
        lambda_runner.__name__
    # moto's own callers: the API passes (body, headers, response_headers); event sources
    # call _invoke_lambda(event=...) or invoke(json, {}, {})
    assert "fn.invoke(body, headers, response_headers)" in inspect.getsource(
        LambdaBackend.invoke)
    assert "func.invoke(json.dumps(event), {}, {})" in inspect.getsource(LambdaBackend)
    init = inspect.getsource(LambdaFunction.__init__)
    for attribute in ("function_name", "handler", "run_time", "timeout", "memory_size",
                      "environment_vars", "role", "code_bytes", "account_id", "region",
                      "policy"):
        assert f"self.{attribute}" in init, attribute
    assert "self.function_arn" in inspect.getsource(LambdaFunction)


def test_traffic_wraps_run_and_terminate():
    from moto.ec2.models.instances import InstanceBackend

    from gdlab.local import ec2

    run_original = _wrapped(InstanceBackend.run_instances, "original_run")
    assert run_original is ec2._run_instances  # traffic wraps the EC2 correction
    terminate_original = _wrapped(InstanceBackend.terminate_instances, "original_terminate")
    assert params(terminate_original) == ["self", "instance_ids"]
    assert "Reservation" in inspect.getsource(ec2._orig_run_instances)


def test_authorization_seams():
    """enforce.py authorizes at BaseResponse.call_action and at S3's own hook, which moto
    calls with the IAM action set in data["Action"] (s3_actions corrects it for bucket
    sub-resources from the request's URL and method); lambda_session and auth read moto's STS
    sessions and IAM users' keys."""
    from moto.core.responses import BaseResponse
    from moto.s3.responses import S3Response
    from moto.sts.models import AssumedRole, STSBackend

    call = inspect.getsource(BaseResponse.call_action)
    assert "self._authenticate_and_authorize_normal_action" in call
    assert params(S3Response._authenticate_and_authorize_s3_action) == [
        "self", "bucket_name", "key_name"]
    assert 'self.data["Action"] = "ListAllMyBuckets"' in inspect.getsource(S3Response)
    # s3_actions reads the request's own URL query and method at that hook
    setup = inspect.getsource(BaseResponse.setup_class)
    assert "self.parsed_url = urlparse(full_url)" in setup and \
        "self.method = request.method" in setup
    assert params(STSBackend.assume_role) == [
        "self", "region_name", "role_session_name", "role_arn", "policy", "duration",
        "external_id"]
    assert params(inspect.unwrap(STSBackend.get_caller_identity)) == [
        "self", "access_key_id", "region"]
    role = inspect.getsource(AssumedRole.__init__)
    for attribute in ("self.access_key_id", "self.secret_access_key", "self.session_token",
                      "self.expiration", "self.role_arn", "self.session_name"):
        assert attribute in role
    from moto.iam.models import AccessKey, User

    assert "self.status" in inspect.getsource(AccessKey.__init__)
    assert "self.access_keys" in inspect.getsource(User.__init__)


def _defined_in(value, package) -> bool:
    """Whether moto's (or gdlab's) code defines this function, property or object: by its
    source file, which functools.wraps does not rewrite as it does __module__."""
    import os

    if isinstance(value, property):
        value = value.fget
    if isinstance(value, staticmethod):
        value = value.__func__
    if inspect.isfunction(value):
        source = inspect.getsourcefile(value) or ""
        return source.startswith(os.path.dirname(package.__file__) + os.sep)
    return type(value).__module__.startswith(package.__name__ + ".")


def test_every_registered_patch_still_fits_moto():
    """Every attribute gdlab patches (gdlab.local.patches) is still moto's: the original is
    moto's code of that name on the owner, the installed value is gdlab's replacement, and
    patches of one attribute stack in the order applied. A moto upgrade that renames or moves
    a patched method fails here (or in install(), which refuses a missing attribute)."""
    import gdlab
    from gdlab.local import patches

    entries = patches.applied()
    stacks: dict[tuple[int, str], list[patches.Patch]] = {}
    for entry in entries:
        stacks.setdefault((id(entry.owner), entry.attribute), []).append(entry)
    names = {f"{patches.name_of(e.owner)}.{e.attribute}" for e in entries}
    # the walk covers every converted module's seams, not a few of them
    for expected in ("moto.events.models.Rule.send_to_targets",
                     "moto.core.responses.BaseResponse.call_action",
                     "moto.guardduty.responses.guardduty_backends",
                     "moto.ec2.models.instances.Instance.security_groups",
                     "moto.ssm.models.Command.response_object",
                     "moto.logs.utils.EventMessageFilter.matches"):
        assert expected in names, expected
    assert {e.module for e in entries} >= {
        f"gdlab.local.{name}" for name in ("guardduty", "securityhub", "ec2", "iam", "outbox",
                                           "delivery", "events", "traffic", "flowlogs", "ssm",
                                           "enforce")}
    for stack in stacks.values():
        first, last = stack[0], stack[-1]
        where = str(last)
        assert patches.name_of(first.owner).startswith("moto."), where
        assert last.module.startswith("gdlab.local") and all(e.why for e in stack), where
        current = inspect.getattr_static(first.owner, first.attribute)
        assert current is last.replacement, f"{where}: something replaced gdlab's patch"
        if inspect.isfunction(current) or isinstance(current, property):
            assert _defined_in(current, gdlab), f"{where}: the installed value is not gdlab's"
        for below, above in zip(stack, stack[1:], strict=False):
            assert above.previous is below.replacement, where
        for entry in stack:
            if inspect.isfunction(entry.replacement) and not entry.added:
                assert entry.replacement.__wrapped__ is entry.previous, where
        if first.added:
            # gdlab adds it; moto still has none on any of the owner's classes
            assert all(first.attribute not in vars(cls) for cls in first.owner.__mro__[1:])
            with pytest.raises(AttributeError):
                patches.original(first.owner, first.attribute)
            continue
        original = patches.original(first.owner, first.attribute)
        assert original is first.original is first.previous, where
        assert _defined_in(original, moto), f"{where}: the original is not moto's"
        if isinstance(original, property):
            original = original.fget
        if callable(original):
            assert original.__module__.startswith("moto."), where
            # moto's method of that name, on the owner or a class it inherits from
            owners = [c.__qualname__ for c in getattr(first.owner, "__mro__", ())]
            assert original.__name__ == first.attribute, where
            assert any(original.__qualname__ == f"{o}.{first.attribute}" for o in owners) \
                or not owners, where
        else:  # data, such as a service's BackendDict: gdlab's is of moto's type
            assert type(current) is type(original), where
