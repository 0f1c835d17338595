"""The incident report: one self-contained HTML5 document (inline CSS and SVG, no script,
nothing fetched), one <section> per lab. A pure renderer of gdlab.lab.evidence.Evidence:
everything that came from the cloud goes through html.escape."""

from __future__ import annotations

import json
from html import escape as _escape
from typing import Any

from gdlab.lab.evidence import Evidence

# SNS's e-mail when a message is published without a subject, as a mail client shows it.
SNS_SUBJECT = "AWS Notification Message"
SNS_FROM = "AWS Notifications <no-reply@sns.amazonaws.com>"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 background:#f4f6f8;color:#16191f}
header.report{background:#232f3e;color:#fff;padding:18px 32px}
header.report h1{margin:0;font-size:22px}
header.report p{margin:4px 0 0;color:#d5dbdb}
section.lab{background:#fff;margin:24px 32px;padding:8px 24px 24px;border-radius:8px;
 box-shadow:0 1px 3px rgba(0,0,0,.15)}
h2{font-size:20px;border-bottom:2px solid #ff9900;padding-bottom:4px}
h3{font-size:16px;margin:24px 0 8px;color:#232f3e}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{border:1px solid #d5dbdb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eaeded}
td.id,code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;
 word-break:break-all}
.pass{color:#1d8102;font-weight:600}.fail{color:#d13212;font-weight:600}
.inconclusive{color:#b7740f;font-weight:600}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:4px 0}
dl.summary dt{font-weight:600;color:#545b64}dl.summary dd{margin:0}
.sev-low{color:#0073bb}.sev-medium{color:#b7740f}.sev-high{color:#d13212}
.sev-critical{color:#8b0000}
details{margin:6px 0}summary{cursor:pointer;color:#0073bb}
pre{background:#f8f8f8;border:1px solid #eaeded;padding:8px;overflow:auto;
 white-space:pre-wrap;word-break:break-word;font-size:12px}
.emails{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:16px}
article.email{border:1px solid #aab7b8;border-radius:6px;overflow:hidden}
article.email header{background:#eaeded;padding:8px 12px}
article.email header div{margin:1px 0}article.email header b{display:inline-block;width:64px}
article.email pre{border:0;margin:0;background:#fff;font-family:inherit;font-size:13px}
svg{max-width:100%;height:auto;background:#fff}
svg .node rect{fill:#fafafa;stroke:#545b64;stroke-width:1.5}
svg .node.attack rect{fill:#fde8e8;stroke:#d13212}
svg .node.detect rect{fill:#fff4e5;stroke:#ff9900}
svg .node.respond rect{fill:#e8f4e8;stroke:#1d8102}
svg .node text.title{font:600 13px sans-serif}svg .node text.rid{font:11px monospace;
 fill:#545b64}
svg .edge line{stroke:#232f3e;stroke-width:1.6}
svg .edge circle{fill:#ff9900}svg .edge text{font:700 12px sans-serif;fill:#fff}
ol.path{margin:4px 0 0;padding-left:28px;color:#232f3e}ol.path li::marker{color:#ff9900;
 font-weight:700}
svg.timeline line.axis{stroke:#879596}svg.timeline text.tick{fill:#545b64;font-size:11px}
svg.timeline text{font:12px sans-serif}svg.timeline rect.bar{fill:#ff9900}
svg.timeline rect.unseen{fill:#d5dbdb}
p.none{color:#545b64;font-style:italic}
ul.notes{color:#b7740f}
ul.properties li{font-weight:400}ul.properties li.pass::marker{content:"✔ "}
ul.properties li.fail::marker{content:"✘ "}
"""


def e(value: Any) -> str:
    """Text for HTML, from anything (None is empty)."""
    return "" if value is None else _escape(str(value), quote=True)


def html(evidences: list[Evidence], title: str | None = None) -> str:
    """The whole report: a header and one <section> per lab."""
    heading = title or (
        f"gdlab incident report — {evidences[0].scenario_title or evidences[0].scenario}"
        if len(evidences) == 1 else f"gdlab incident report — {len(evidences)} labs")
    labs = ", ".join(ev.lab for ev in evidences)
    body = "\n".join(section(ev) for ev in evidences) or '<p class="none">No lab.</p>'
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{e(heading)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header class=\"report\"><h1>{e(heading)}</h1><p>labs: {e(labs)}</p></header>\n"
        f"{body}\n</body>\n</html>\n"
    )


def section(ev: Evidence) -> str:
    parts = [
        f'<section class="lab" id="lab-{e(ev.lab)}" data-lab="{e(ev.lab)}" '
        f'data-scenario="{e(ev.scenario)}">',
        f"<h2>{e(ev.scenario_title or ev.scenario)} — lab <code>{e(ev.lab)}</code></h2>",
        f'<p>scenario <code>{e(ev.scenario)}</code> · target {e(ev.target)} · region '
        f'{e(ev.region)} · phase <span class="phase">{e(ev.phase)}</span></p>',
        "<h3>Architecture</h3>", architecture(ev),
        "<h3>Timeline</h3>", timeline(ev.hops),
        "<h3>The finding in GuardDuty</h3>", finding_view(ev.finding),
        "<h3>The finding in Security Hub (ASFF)</h3>", asff_view(ev.asff),
        "<h3>E-mails</h3>", emails_view(ev.emails),
        "<h3>Verify</h3>", checks_view(ev.checks, ev.properties),
    ]
    if ev.forensic_rules is not None or ev.enis:
        parts += ["<h3>Isolation</h3>", forensic_view(ev.forensic_rules), enis_view(ev.enis)]
    if ev.teardown:
        parts += ["<h3>Teardown</h3>", teardown_view(ev.teardown)]
    parts += ["<h3>Resources</h3>", resources_view(ev.resources)]
    if ev.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in ev.notes)
                     + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


# --- architecture ---------------------------------------------------------------------
W, H = 200, 74  # a box
# where each kind of box goes: resource keys (first present wins), title, x, y, role
SLOTS: list[tuple[str, tuple[str, ...], str, int, int, str]] = [
    ("compromised", ("instance-compromised",), "Compromised instance", 20, 30, "attack"),
    ("malicious", ("instance-malicious",), "Malicious instance + EIP", 20, 170, "attack"),
    ("subject", ("data-bucket", "access-key", "iam-user"), "", 20, 310, "attack"),
    ("detector", ("detector",), "GuardDuty detector", 260, 30, "detect"),
    ("threat-list", ("threat-intel-set",), "Threat list", 260, 170, "detect"),
    ("forensic", ("sg-forensic",), "Forensic security group", 260, 310, "respond"),
    ("hub", ("securityhub",), "Security Hub", 500, 30, "detect"),
    ("rule", ("rule",), "EventBridge rule", 500, 170, "respond"),
    ("topic", ("sns-topic",), "SNS topic (e-mail)", 740, 100, "respond"),
    ("lambda", ("function",), "Lambda responder", 740, 240, "respond"),
]
SUBJECT_TITLES = {"data-bucket": "Data bucket", "access-key": "Leaked access key",
                  "iam-user": "IAM user"}


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 12] + "…" + text[-11:]


def _nodes(ev: Evidence) -> dict[str, dict[str, Any]]:
    by_key = {r["key"]: r for r in ev.resources if r.get("status") != "pending"}
    nodes: dict[str, dict[str, Any]] = {}
    for slot, keys, title, x, y, role in SLOTS:
        key = next((k for k in keys if k in by_key), None)
        if key is None:
            continue
        res = by_key[key]
        ids = [str(res.get("id") or "(no id)")]
        if slot == "malicious" and "eip" in by_key:
            ids.append(f"EIP {by_key['eip'].get('id') or ''}")
        nodes[slot] = {"key": key, "title": title or SUBJECT_TITLES.get(key, key), "x": x,
                       "y": y, "role": role, "ids": ids, "status": res.get("status")}
    return nodes


def _edge_point(node: dict[str, Any], dx: float, dy: float) -> tuple[float, float]:
    """Where the line from the box's centre in direction (dx, dy) leaves the box."""
    cx, cy = node["x"] + W / 2, node["y"] + H / 2
    tx = (W / 2) / abs(dx) if dx else float("inf")
    ty = (H / 2) / abs(dy) if dy else float("inf")
    t = min(tx, ty)
    return cx + dx * t, cy + dy * t


def _edge(a: dict[str, Any], b: dict[str, Any], number: int, what: str) -> str:
    ax, ay = a["x"] + W / 2, a["y"] + H / 2
    bx, by = b["x"] + W / 2, b["y"] + H / 2
    dx, dy = bx - ax, by - ay
    x1, y1 = _edge_point(a, dx, dy)
    x2, y2 = _edge_point(b, -dx, -dy)
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    return (
        f'<g class="edge" data-step="{number}"><title>{number}. {e(what)}</title>'
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'marker-end="url(#arrow)"/><circle cx="{mx:.1f}" cy="{my:.1f}" r="10"/>'
        f'<text x="{mx:.1f}" y="{my + 4:.1f}" text-anchor="middle">{number}</text></g>'
    )


# The incident's path as the workshop's diagram numbers it: (step, from, to, what).
EC2_PATH = [
    (1, "compromised", "malicious", "the compromised instance pings the malicious "
                                    "instance's Elastic IP"),
    (2, "threat-list", "detector", "GuardDuty sees the IP on the threat list and raises a "
                                   "finding"),
    (3, "detector", "hub", "the finding goes to Security Hub (ASFF)"),
    (4, "detector", "rule", "EventBridge delivers it; the lab's rule matches"),
    (5, "rule", "topic", "the rule sends a short e-mail through SNS"),
    (5, "rule", "lambda", "and invokes the Lambda responder"),
    (6, "lambda", "forensic", "the responder isolates the instance into the forensic group "
                              "and e-mails what it did"),
]
API_PATH = [
    (1, "malicious", "subject", "the malicious instance, on the threat list, calls AWS "
                                "with what it stole"),
    (2, "threat-list", "detector", "GuardDuty reads the calls and raises a finding"),
    (3, "detector", "hub", "the finding goes to Security Hub (ASFF)"),
    (4, "detector", "rule", "EventBridge delivers it; the lab's rule matches"),
    (5, "rule", "topic", "the rule sends a short e-mail through SNS"),
    (5, "rule", "lambda", "and invokes the Lambda responder"),
    (6, "lambda", "subject", "the responder shuts the attacker out and e-mails what it did"),
]


def architecture(ev: Evidence) -> str:
    """The lab's resources as boxes with their ids, the incident's path numbered 1..6, and
    the numbers' legend."""
    nodes = _nodes(ev)
    if not nodes:
        return '<p class="none">No resources recorded.</p>'
    boxes = []
    for slot, n in nodes.items():
        lines = "".join(
            f'<text class="rid" x="{n["x"] + 8}" y="{n["y"] + 40 + 15 * i}">{e(_short(t))}'
            f"<title>{e(t)}</title></text>" for i, t in enumerate(n["ids"][:2]))
        boxes.append(
            f'<g class="node {n["role"]}" data-key="{e(n["key"])}" data-slot="{slot}">'
            f'<rect x="{n["x"]}" y="{n["y"]}" width="{W}" height="{H}" rx="6"/>'
            f'<text class="title" x="{n["x"] + 8}" y="{n["y"] + 20}">{e(n["title"])}</text>'
            f"{lines}</g>")
    ec2 = "compromised" in nodes and "forensic" in nodes
    # What the attack acts on: the bucket or key when the scenario has one, else the
    # instance whose credentials were taken.
    ends = {**nodes, "subject": nodes.get("subject") or nodes.get("compromised")}
    edges, steps = [], {}
    for number, a, b, what in EC2_PATH if ec2 else API_PATH:
        if ends.get(a) and ends.get(b):
            edges.append(_edge(ends[a], ends[b], number, what))
            steps[number] = f"{steps[number]} {what}" if number in steps else what
    legend = [f'<li value="{n}">{e(what)}</li>' for n, what in steps.items()]
    height = max(n["y"] for n in nodes.values()) + H + 20
    return (
        f'<svg class="architecture" role="img" '
        f'viewBox="0 0 960 {height}" width="960" height="{height}">'
        f"<title>Architecture of lab {e(ev.lab)}</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'fill="#232f3e"/></marker></defs>'
        + "".join(boxes) + "".join(edges) + "</svg>"
        + (f'<ol class="path">{"".join(legend)}</ol>' if legend else "")
    )


# --- timeline -------------------------------------------------------------------------
def _tick_step(longest: float) -> float:
    """A round step that gives the axis 2 to 6 ticks."""
    for step in (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800):
        if longest / step <= 5:
            return step
    return longest / 5


def timeline(hops: list[dict[str, Any]]) -> str:
    """Each hop as a bar from the trigger to when it was seen, on one axis of seconds."""
    if not hops:
        return '<p class="none">No hops recorded.</p>'
    seconds = [h.get("seconds_since_trigger") for h in hops]
    known = [s for s in seconds if isinstance(s, (int, float)) and s >= 0]
    longest = max(known, default=0) or 1.0
    label_w, bar_w, row = 260, 480, 26
    rows = []
    for i, hop in enumerate(hops):
        y = 10 + i * row
        s = hop.get("seconds_since_trigger")
        at = hop.get("seen_at") or ""
        clock = at[11:23] if len(at) >= 23 else at
        name = f'<text x="0" y="{y + 14}">{e(_short(str(hop.get("name") or ""), 40))}</text>'
        tip = f"<title>{e(hop.get('detail') or hop.get('name'))}</title>"
        if isinstance(s, (int, float)) and s >= 0:
            width = max(2.0, bar_w * s / longest)
            rows.append(
                f'<g class="hop" data-seconds="{s}">{name}<rect class="bar" x="{label_w}" '
                f'y="{y}" width="{width:.1f}" height="18" rx="2">{tip}</rect>'
                f'<text x="{label_w + width + 6:.1f}" y="{y + 14}">+{s:.2f} s · '
                f"{e(clock)}</text></g>")
        else:
            rows.append(
                f'<g class="hop">{name}<rect class="unseen" x="{label_w}" y="{y}" width="4" '
                f'height="18">{tip}</rect><text x="{label_w + 10}" y="{y + 14}">'
                f'{e(clock) or "not seen"}</text></g>')
    axis_y = 14 + len(hops) * row
    step = _tick_step(longest)
    ticks = [f'<line class="axis" x1="{label_w}" y1="{axis_y}" x2="{label_w + bar_w}" '
             f'y2="{axis_y}"/>']
    n = 0
    while n * step <= longest + 1e-9:
        x = label_w + bar_w * n * step / longest
        ticks.append(f'<line class="axis" x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" '
                     f'y2="{axis_y + 5}"/><text class="tick" x="{x:.1f}" y="{axis_y + 18}" '
                     f'text-anchor="middle">{n * step:g} s</text>')
        n += 1
    height = axis_y + 26
    return (f'<svg class="timeline" role="img" viewBox="0 0 960 {height}" width="960" '
            f'height="{height}"><title>Seconds from the trigger to each hop</title>'
            + "".join(rows) + "".join(ticks) + "</svg>")


# --- the finding ----------------------------------------------------------------------
def severity_label(severity: Any) -> str:
    try:
        value = float(severity)
    except (TypeError, ValueError):
        return ""
    if value >= 9:
        return "Critical"
    if value >= 7:
        return "High"
    if value >= 4:
        return "Medium"
    return "Low"


def _resource_of(finding: dict[str, Any]) -> str:
    res = finding.get("Resource") or {}
    kind = res.get("ResourceType") or ""
    instance = (res.get("InstanceDetails") or {}).get("InstanceId")
    key = (res.get("AccessKeyDetails") or {}).get("AccessKeyId")
    buckets = [b.get("Name") for b in res.get("S3BucketDetails") or [] if b.get("Name")]
    name = instance or key or ", ".join(buckets)
    return f"{kind}: {name}" if name else kind


def _summary(rows: list[tuple[str, Any]]) -> str:
    return '<dl class="summary">' + "".join(
        f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _raw(what: str, data: Any) -> str:
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    return f"<details><summary>{e(what)}</summary><pre>{e(text)}</pre></details>"


def finding_view(finding: dict[str, Any] | None) -> str:
    if not finding:
        return '<p class="none">No finding (the lab was not triggered, or it is gone).</p>'
    from gdlab.lab.observe import remote_ip, threat_list_names

    service = finding.get("Service") or {}
    sev = finding.get("Severity")
    label = severity_label(sev)
    rows: list[tuple[str, Any]] = [
        ("Finding type", f'<code class="finding-type">{e(finding.get("Type"))}</code>'),
        ("Severity", f'<span class="sev-{label.lower()}">{e(label)}</span> ({e(sev)})'),
        ("Title", e(finding.get("Title"))),
        ("Resource", f"<code>{e(_resource_of(finding))}</code>"),
        ("Remote IP", f"<code>{e(remote_ip(finding) or '—')}</code>"),
        ("Threat list", e(", ".join(threat_list_names(finding)) or "—")),
        ("Count", e(service.get("Count"))),
        ("First seen", e(service.get("EventFirstSeen"))),
        ("Last seen", e(service.get("EventLastSeen"))),
        ("Region · account", f"{e(finding.get('Region'))} · {e(finding.get('AccountId'))}"),
        ("Finding ID", f'<code class="finding-id">{e(finding.get("Id"))}</code>'),
    ]
    return (f'<div class="finding" data-finding-id="{e(finding.get("Id"))}">'
            + _summary(rows) + _raw("Raw finding (GuardDuty GetFindings)", finding) + "</div>")


def asff_view(asff: dict[str, Any] | None) -> str:
    if not asff:
        return '<p class="none">No Security Hub record.</p>'
    severity = asff.get("Severity") or {}
    workflow = (asff.get("Workflow") or {}).get("Status") or asff.get("WorkflowState")
    resources = ", ".join(f"{r.get('Type')} {r.get('Id')}" for r in asff.get("Resources") or [])
    rows: list[tuple[str, Any]] = [
        ("Title", e(asff.get("Title"))),
        ("Product", e(asff.get("ProductName") or asff.get("ProductArn"))),
        ("Types", e(", ".join(str(t) for t in asff.get("Types") or []))),
        ("Severity", e(f"{severity.get('Label', '')} ({severity.get('Normalized', '')})")),
        ("Workflow · record", f"{e(workflow)} · {e(asff.get('RecordState'))}"),
        ("Resources", f"<code>{e(resources)}</code>"),
        ("Id", f"<code>{e(asff.get('Id'))}</code>"),
    ]
    return ('<div class="asff">' + _summary(rows)
            + _raw("Raw ASFF record (Security Hub GetFindings)", asff) + "</div>")


# --- e-mails, checks, isolation, teardown -----------------------------------------------
def emails_view(emails: list[dict[str, Any]]) -> str:
    if not emails:
        return '<p class="none">No e-mail seen (on AWS they go to the subscribed inbox).</p>'
    cards = []
    for mail in emails:
        cards.append(
            '<article class="email"><header>'
            f"<div><b>From:</b> {e(mail.get('from') or SNS_FROM)}</div>"
            f"<div><b>To:</b> {e(mail.get('to'))}</div>"
            f'<div><b>Subject:</b> <span class="email-subject">'
            f"{e(mail.get('subject') or SNS_SUBJECT)}</span></div>"
            f"<div><b>Date:</b> {e(mail.get('time'))}</div></header>"
            f"<pre>{e(mail.get('body'))}</pre></article>")
    return '<div class="emails">' + "".join(cards) + "</div>"


def checks_view(checks: list[dict[str, Any]], properties: list[dict[str, Any]]) -> str:
    """The verify table, its one line as `gdlab verify` prints it, and each property with
    the checks that proved it."""
    if not checks:
        return '<p class="none">Not verified.</p>'
    rows = []
    for c in checks:
        status = str(c.get("status") or ("pass" if c.get("passed") else "fail"))
        css = status if status in ("pass", "fail", "inconclusive") else "fail"
        rows.append(
            f'<tr class="check" data-check="{e(c.get("name"))}" data-status="{e(status)}">'
            f'<td><span class="check-name">{e(c.get("name"))}</span><br>{e(c.get("title"))}'
            f'</td><td class="{css}">{e(status.upper())}</td><td>{e(c.get("evidence"))}</td>'
            "</tr>")
    passed = sum(1 for c in checks if c.get("passed"))
    inconclusive = sum(1 for c in checks if c.get("status") == "inconclusive")
    line = f"{passed}/{len(checks)} checks passed"
    if inconclusive:
        line += f", {inconclusive} inconclusive"
    if properties:
        proven = sum(1 for p in properties if p.get("proven"))
        line += f"; {proven}/{len(properties)} properties proven"
    items = "".join(
        f'<li class="{"pass" if p.get("proven") else "fail"}" data-property="{e(p.get("name"))}">'
        f'{e(p.get("name"))}: '
        f'{e(", ".join(p.get("proven_by") or []) or "not proven")}</li>' for p in properties)
    return ("<table class=\"checks\"><thead><tr><th>check</th><th>result</th><th>evidence"
            "</th></tr></thead><tbody>" + "".join(rows)
            + f'</tbody></table><p class="verdict">{e(line)}</p>'
            + (f'<ul class="properties">{items}</ul>' if items else ""))


def _rule(rule: dict[str, Any]) -> str:
    proto = rule.get("IpProtocol")
    ports = f"{rule.get('FromPort', '')}-{rule.get('ToPort', '')}" if "FromPort" in rule else ""
    peers = [r.get("CidrIp") for r in rule.get("IpRanges") or []]
    peers += [g.get("GroupId") for g in rule.get("UserIdGroupPairs") or []]
    return f"{'all' if proto == '-1' else proto} {ports} {', '.join(str(p) for p in peers)}"


def forensic_view(rules: dict[str, list[dict[str, Any]]] | None) -> str:
    if rules is None:
        return '<p class="none">No forensic security group.</p>'
    out = ['<table class="forensic-rules"><tr><th>direction</th><th>rules</th></tr>']
    for direction in ("ingress", "egress"):
        listed = rules.get(direction) or []
        text = "; ".join(_rule(r) for r in listed) if listed else "none"
        out.append(f'<tr data-direction="{direction}"><td>{direction}</td>'
                   f'<td class="id">{e(text)}</td></tr>')
    return "".join(out) + "</table>"


def enis_view(enis: list[dict[str, Any]]) -> str:
    if not enis:
        return ""
    rows = "".join(
        f'<tr class="eni"><td class="id">{e(x.get("eni"))}</td>'
        f'<td class="id">{e(x.get("instance"))}</td>'
        f'<td class="id">{e(", ".join(x.get("groups_before") or []) or "not recorded")}</td>'
        f'<td class="id">{e(", ".join(x.get("groups_now") or []) or "none")}</td></tr>'
        for x in enis)
    return ("<table class=\"enis\"><tr><th>network interface</th><th>instance</th>"
            "<th>groups before</th><th>groups now</th></tr>" + rows + "</table>")


def teardown_view(steps: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr class="teardown-step"><td>{e(s.get("key"))}</td><td>{e(s.get("label"))}</td>'
        f'<td>{e(s.get("status"))}</td><td class="id">{e(s.get("id"))}</td></tr>'
        for s in steps)
    return ("<table class=\"teardown\"><tr><th>resource</th><th>what</th><th>status</th>"
            "<th>id</th></tr>" + rows + "</table>")


def resources_view(resources: list[dict[str, Any]]) -> str:
    if not resources:
        return '<p class="none">No resources recorded.</p>'
    rows = "".join(
        f'<tr><td>{e(r.get("key"))}</td><td>{e(r.get("type"))}</td>'
        f'<td class="id">{e(r.get("id"))}</td><td>{e(r.get("status"))}</td>'
        f'<td>{e(r.get("ownership"))}</td></tr>' for r in resources)
    return (f"<details><summary>{len(resources)} resources</summary><table class=\"resources\">"
            "<tr><th>key</th><th>type</th><th>id</th><th>status</th><th>ownership</th></tr>"
            + rows + "</table></details>")
