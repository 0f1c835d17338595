"""AWS's refusal of an unauthorized request, shaped per service protocol.

Wording as AWS writes it (IAM User Guide, "Troubleshoot access denied error messages"):
"User: <principal> is not authorized to perform: <action> on resource: <arn> because no
identity-based policy allows the <action> action", or "... with an explicit deny in an
identity-based policy"."""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from moto.core.exceptions import JsonRESTError
from werkzeug.exceptions import HTTPException

if TYPE_CHECKING:
    from gdlab.local.policy import Decision
    from gdlab.local.request_context import Principal, RequestContext

# Services answering in JSON with AccessDeniedException (awsJson / restJson protocols).
_JSON_SERVICES = {"logs", "lambda", "guardduty", "securityhub", "events", "ssm"}


class XmlRefusal(HTTPException):
    """A 403 whose body is the service's XML error document."""

    code = 403

    def __init__(self, error_type: str, message: str, body: str):
        super().__init__()
        self.error_type = error_type
        self.message = message
        self.description = body

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [("X-Amzn-ErrorType", self.error_type), ("Content-Type", "text/xml")]

    def get_body(self, *args: Any, **kwargs: Any) -> str:
        return self.description or ""


class JsonRefusal(JsonRESTError):
    code = 403


def message(action: str, principal: Principal, decision: Decision) -> str:
    why = ("with an explicit deny in an identity-based policy" if decision.explicit_deny
           else f"because no identity-based policy allows the {action} action")
    return (f"User: {principal.arn} is not authorized to perform: {action} "
            f"on resource: {decision.resource} {why}")


def _encoded(decision: Decision, context: RequestContext) -> str:
    from gdlab.local.request_context import as_json

    # Opaque to callers as on AWS (sts:DecodeAuthorizationMessage would reveal it there).
    detail = f'{{"allowed":false,"explicitDeny":{str(decision.explicit_deny).lower()},' \
             f'"context":{as_json(context)}}}'
    return base64.urlsafe_b64encode(detail.encode()).decode().rstrip("=")


def refusal(action: str, principal: Principal, decision: Decision,
            context: RequestContext) -> HTTPException:
    service, _, operation = action.partition(":")
    service = service.lower()
    request_id = str(uuid.uuid4())
    if service == "ec2":
        text = "You are not authorized to perform this operation. " \
               f"{message(action, principal, decision)}. Encoded authorization failure " \
               f"message: {_encoded(decision, context)}"
        return XmlRefusal("UnauthorizedOperation", text, (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>"
            f"<Code>UnauthorizedOperation</Code><Message>{escape(text)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"))
    if service == "sns":
        # SNS names its own actions with an upper-case prefix in this message.
        text = message(f"SNS:{operation}", principal, decision)
        return XmlRefusal("AuthorizationError", text, _error_response(
            "AuthorizationError", text, request_id, "http://sns.amazonaws.com/doc/2010-03-31/"))
    if service == "s3":
        return XmlRefusal("AccessDenied", "Access Denied", (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
            f"<Message>{escape(message(action, principal, decision))}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"))
    text = message(action, principal, decision)
    if service in _JSON_SERVICES:
        return JsonRefusal("AccessDeniedException", text)
    namespaces = {"iam": "https://iam.amazonaws.com/doc/2010-05-08/",
                  "sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
    return XmlRefusal("AccessDenied", text, _error_response(
        "AccessDenied", text, request_id, namespaces.get(service, "")))


def _error_response(code: str, text: str, request_id: str, namespace: str) -> str:
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    return (f"<ErrorResponse{xmlns}><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{escape(text)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>")
