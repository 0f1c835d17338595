"""The routes: moto's GuardDuty paths plus gdlab's, all answered by one response class."""

from __future__ import annotations

import types

from moto.guardduty import urls as gd_urls

from gdlab.local.guardduty.responses import GdlabGuardDutyResponse

_dispatch = GdlabGuardDutyResponse.dispatch
# moto already routes /detector/{id}/filter[/{name}] and /detector/{id}/administrator.
NEW_PATHS = [
    "{0}/detector/(?P<detector_id>[^/]+)/threatintelset$",
    "{0}/detector/(?P<detector_id>[^/]+)/threatintelset/(?P<threat_intel_set_id>[^/]+)$",
    "{0}/detector/(?P<detector_id>[^/]+)/ipset$",
    "{0}/detector/(?P<detector_id>[^/]+)/ipset/(?P<ip_set_id>[^/]+)$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/get$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/archive$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/unarchive$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/statistics$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/create$",
    "{0}/detector/(?P<detector_id>[^/]+)/findings/feedback$",
    "{0}/detector/(?P<detector_id>[^/]+)/member$",
    "{0}/detector/(?P<detector_id>[^/]+)/member/get$",
    "{0}/detector/(?P<detector_id>[^/]+)/member/delete$",
    "{0}/detector/(?P<detector_id>[^/]+)/member/disassociate$",
    "{0}/detector/(?P<detector_id>[^/]+)/admin$",
    "{0}/admin/disable$",
    "{0}/detector/(?P<detector_id>[^/]+)/master$",
    "{0}/detector/(?P<detector_id>[^/]+)/publishingDestination$",
    "{0}/detector/(?P<detector_id>[^/]+)/usage/statistics$",
    "{0}/detector/(?P<detector_id>[^/]+)/coverage$",
    "{0}/tags/(?P<resource_arn>.+)$",
]
# moto's own paths are answered by our response class too, so one backend serves them all.
URL_MODULE = types.SimpleNamespace(
    url_bases=list(gd_urls.url_bases),
    url_paths={**{path: _dispatch for path in gd_urls.url_paths},
               **{path: _dispatch for path in NEW_PATHS}},
)
