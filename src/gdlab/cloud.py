"""One Cloud object builds every boto3 client gdlab uses, for AWS or for the local cloud.

Everything above this module is identical for both targets: only the endpoint and the
credentials differ.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from gdlab import __version__
from gdlab.errors import ConfigError, PreflightError, UsageError

TARGETS = ("local", "aws")
LOCAL_DEFAULT_REGION = "us-east-1"
# The local cloud accepts any credentials; fixed ones keep a user's real keys away from it.
LOCAL_CREDENTIALS = {"aws_access_key_id": "gdlablocal", "aws_secret_access_key": "gdlablocal"}


@dataclass
class CloudSettings:
    target: str = "local"
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    # The id the running local cloud made at its start (target local only): a local lab
    # records it, so a command can tell when the cloud that held the lab is gone.
    local_cloud_id: str | None = None

    @classmethod
    def from_env(cls, **given: Any) -> CloudSettings:
        """Options given on the command line win over the standard AWS variables."""
        target = given.get("target") or os.environ.get("GDLAB_TARGET") or "local"
        if target not in TARGETS:
            raise UsageError(f"unknown target '{target}'", "use --target local or --target aws")
        region = (
            given.get("region")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
        )
        endpoint = given.get("endpoint_url")
        if not endpoint and target == "aws":
            endpoint = os.environ.get("AWS_ENDPOINT_URL")
        return cls(
            target=target,
            region=region,
            profile=given.get("profile") or os.environ.get("AWS_PROFILE"),
            endpoint_url=endpoint,
        )


_loader: Any = None


def _botocore_session() -> Any:
    """A fresh botocore session sharing one model loader: service models are parsed once per
    process, not once per Cloud (they are megabytes of JSON)."""
    import botocore.loaders
    import botocore.session

    global _loader
    if _loader is None:
        _loader = botocore.loaders.create_loader()
    session = botocore.session.get_session()
    session.register_component("data_loader", _loader)
    return session


@dataclass
class Cloud:
    """A session and its clients, for one target, region and endpoint."""

    settings: CloudSettings
    _session: Any = field(default=None, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _account: str | None = None
    # Calls made per "service.Operation", for the run summary and the benchmarks.
    api_calls: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def target(self) -> str:
        return self.settings.target

    @property
    def region(self) -> str:
        region = self.settings.region or self._session_obj().region_name
        if not region:
            raise ConfigError(
                "no AWS region set",
                "pass --region, or set AWS_REGION (e.g. export AWS_REGION=us-east-1)",
            )
        return region

    @property
    def endpoint_url(self) -> str | None:
        return self.settings.endpoint_url

    @property
    def is_local(self) -> bool:
        return self.settings.target == "local"

    def _session_obj(self) -> Any:
        if self._session is None:
            import boto3

            botocore_session = _botocore_session()

            if self.is_local:
                self._session = boto3.Session(
                    region_name=self.settings.region or LOCAL_DEFAULT_REGION,
                    botocore_session=botocore_session,
                    **LOCAL_CREDENTIALS,
                )
            else:
                try:
                    self._session = boto3.Session(
                        profile_name=self.settings.profile,
                        region_name=self.settings.region,
                        botocore_session=botocore_session,
                    )
                except Exception as exc:  # botocore.exceptions.ProfileNotFound
                    raise ConfigError(
                        str(exc), "check --profile / AWS_PROFILE against ~/.aws/config"
                    ) from exc
        return self._session

    def client(self, service: str) -> Any:
        """A cached client with explicit standard retries and gdlab's user agent."""
        with self._lock:
            if service not in self._clients:
                from botocore.config import Config

                config = Config(
                    retries={"mode": "standard", "max_attempts": 5},
                    user_agent_extra=f"gdlab/{__version__}",
                    connect_timeout=5 if self.is_local else 10,
                    read_timeout=30 if self.is_local else 60,
                )
                client = self._session_obj().client(
                    service,
                    region_name=self.region,
                    endpoint_url=self.settings.endpoint_url,
                    config=config,
                )
                client.meta.events.register("before-call", self._count_call)
                self._clients[service] = client
            return self._clients[service]

    def _count_call(self, model: Any, **_: Any) -> None:
        key = f"{model.service_model.service_name}.{model.name}"
        with self._lock:  # clients are used from setup's threads
            self.api_calls[key] = self.api_calls.get(key, 0) + 1

    @property
    def api_call_count(self) -> int:
        return sum(self.api_calls.values())

    @property
    def account(self) -> str:
        """The account id, from STS GetCallerIdentity (also proves the credentials work)."""
        if self._account is None:
            from botocore.exceptions import (
                BotoCoreError,
                ClientError,
                NoCredentialsError,
            )

            try:
                self._account = self.client("sts").get_caller_identity()["Account"]
            except NoCredentialsError as exc:
                raise ConfigError(
                    "no AWS credentials found",
                    "set AWS_PROFILE or run 'aws configure' (or use --target local)",
                ) from exc
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                raise ConfigError(
                    f"AWS credentials were rejected ({code})",
                    "refresh them (aws sso login / aws configure) and retry",
                ) from exc
            except BotoCoreError as exc:
                raise ConfigError(
                    f"cannot reach AWS: {exc}", "check the network and region"
                ) from exc
        return self._account

    def partition(self) -> str:
        region = self.region
        if region.startswith("cn-"):
            return "aws-cn"
        if region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:{self.partition()}:{service}:{where}:{self.account}:{resource}"

    def preflight(self, eips_needed: int = 1) -> dict[str, Any]:
        """Checks made before any create: region, credentials, Elastic IP headroom."""
        region = self.region
        account = self.account
        ec2 = self.client("ec2")
        attrs = ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])
        limit = None
        for attr in attrs.get("AccountAttributes", []):
            if attr["AttributeName"] == "vpc-max-elastic-ips":
                limit = int(attr["AttributeValues"][0]["AttributeValue"])
        in_use = len(ec2.describe_addresses().get("Addresses", []))
        if limit is not None and in_use + eips_needed > limit:
            raise PreflightError(
                f"Elastic IP quota exhausted in {region}: {in_use} of {limit} in use, "
                f"the lab needs {eips_needed}",
                "release an unused Elastic IP or request a quota increase, then retry",
            )
        return {"account": account, "region": region, "eips_in_use": in_use, "eip_limit": limit}
