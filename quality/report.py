"""The HTML quality report of a run, in the spirit of GX's data docs: every expectation with
its arguments, observed value, counts, pass/fail and masked example rows.

One self-contained file (inline CSS, no scripts, no CDN), so it opens offline and can be
mailed to a department. Everything shown comes from the stored, already masked run.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape
from sqlmodel import Session, col, select

from catalog.models import Resource
from catalog.service import get_resource, provider_of
from kernel import storage
from kernel.db import session_scope
from kernel.problems import NotFound
from quality import explain, guard
from quality.models import CustomExpectation, QualityRun, QualityScore, RunStatus
from quality.rules import Dimension

_TEMPLATE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>数据质量报告 {{ resource.code }} — Quality report</title>
<style>
body{font-family:"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;margin:2em;
color:#222;max-width:1200px}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}
.meta{color:#555}.meta td{padding:2px 12px 2px 0}
table.grid{border-collapse:collapse;width:100%;font-size:.9em}
table.grid th,table.grid td{border:1px solid #ddd;padding:4px 6px;vertical-align:top;
text-align:left}
table.grid th{background:#f4f6f8}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}
.bar{background:#eee;width:160px;height:10px;display:inline-block;margin-left:6px}
.bar span{display:block;height:10px;background:#2f81f7}
code,pre{font-family:Menlo,Consolas,monospace;font-size:.85em;white-space:pre-wrap;margin:0}
.note{color:#666;font-size:.85em;margin-top:2em}
</style></head><body>
<h1>数据质量报告 · Data quality report</h1>
<table class="meta">
<tr><td>资源 Resource</td>
<td><b>{{ resource.name }}</b> {{ resource.name_en }} ({{ resource.code }})</td></tr>
<tr><td>提供部门 Provider</td>
<td>{{ provider.name_zh }} {{ provider.name_en }} ({{ provider.code }})</td></tr>
<tr><td>数据版本 Data version</td>
<td>{{ run.data_version }} · {{ run.row_count }} rows</td></tr>
<tr><td>运行 Run</td><td>#{{ run.id }} · {{ run.trigger.value }} ·
{{ run.finished_at.strftime("%Y-%m-%d %H:%M:%S UTC") if run.finished_at else "" }}
· suite v{{ run.suite_version }}</td></tr>
</table>
<h2>评分 Scores</h2>
<table class="grid"><tr><th>维度 Dimension</th><th>得分 Score</th></tr>
{% for name, value in dimensions %}<tr><td>{{ name }}</td><td>
{% if value is none %}not scored{% else %}{{ "%.2f"|format(value) }}
<span class="bar"><span style="width:{{ value|round(0)|int }}%"></span></span>
{% endif %}</td></tr>{% endfor %}
<tr><th>综合 Overall</th><th>{{ "%.2f"|format(score.overall) }}</th></tr></table>
<h2>期望 Expectations ({{ passed }}/{{ expectations|length }} passed)</h2>
<table class="grid"><tr><th></th><th>Rule</th><th>Dimension</th><th>Expectation</th>
<th>Arguments</th><th>Observed</th><th>Unexpected</th></tr>
{% for e in expectations %}<tr>
<td class="{{ 'pass' if e.success else 'fail' }}">{{ '✓' if e.success else '✗' }}</td>
<td>{{ e.name }}{% if e.name != e.rule %}<br><small>{{ e.rule }}</small>{% endif %}</td>
<td>{{ e.dimension }}</td><td><code>{{ e.type }}</code></td>
<td><pre>{{ e.kwargs_text }}</pre></td>
<td>{% if e.error %}<span class="fail">error: {{ e.error }}</span>
{% else %}{{ e.observed_text }}{% endif %}</td>
<td>{% if e.suppressed %}1–{{ small - 1 }} (suppressed · 小数抑制)
{% elif e.unexpected_count is not none %}{{ e.unexpected_count }} of {{ e.checked }}
({{ "%.3f"|format(e.percent) }}%){% endif %}</td></tr>
{% if e.examples %}<tr><td></td><td colspan="6"><table class="grid"><tr>
{% for c in e.examples[0] %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in e.examples %}<tr>{% for c in row %}
<td>{{ row[c] if row[c] is not none else '∅' }}</td>{% endfor %}</tr>{% endfor %}
</table></td></tr>{% endif %}
{% endfor %}</table>
<p class="note">Values of personal, sensitive and confidential data items are masked
(脱敏) before they are stored; this report never contains raw personal data.
{% if not provider_view %}Outside the provider department failing counts below {{ small }}
are suppressed and example rows are not shown.{% endif %} Validated by
Great Expectations {{ gx_version }} through govshare.</p>
</body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_template = _env.from_string(_TEMPLATE)


def _prepared(raw: dict[str, Any], notes: dict[str, str], provider: bool) -> dict[str, Any]:
    outcome = dict(raw) if provider else guard.outcome_for_outsider(raw)
    element, missing = outcome.get("element_count"), outcome.get("missing_count") or 0
    checked = element - missing if element is not None else None
    unexpected = outcome.get("unexpected_count")
    percent = 100 * unexpected / checked if unexpected is not None and checked else 0.0
    observed = outcome.get("observed_value")
    return {**outcome, "checked": checked, "percent": percent,
            "name": explain.name_of(outcome, notes),
            "kwargs_text": json.dumps(outcome.get("kwargs"), ensure_ascii=False, default=str),
            "observed_text": "" if observed is None else
            json.dumps(observed, ensure_ascii=False, default=str)[:300]}


def render(run: QualityRun, score: QualityScore, resource: Resource, provider: Any, *,
           notes: dict[str, str] | None = None, provider_view: bool = False) -> str:
    """``provider_view``: for the provider department (example rows, exact small counts)."""
    outcomes = [_prepared(o, notes or {}, provider_view) for o in run.expectations or []]
    dimensions = [(d.value, getattr(score, d.value)) for d in Dimension]
    return _template.render(run=run, score=score, resource=resource, provider=provider,
                            provider_view=provider_view, small=guard.SMALL_COUNT,
                            dimensions=dimensions, expectations=outcomes,
                            passed=sum(1 for o in outcomes if o.get("success")),
                            gx_version=version("great_expectations"))


def latest_run(session: Session, resource: Resource) -> tuple[QualityRun, QualityScore]:
    found = session.exec(select(QualityRun, QualityScore)
                         .join(QualityScore, col(QualityScore.run_id) == QualityRun.id)
                         .where(QualityRun.resource_id == resource.id,
                                QualityRun.status == RunStatus.succeeded)
                         .order_by(col(QualityRun.id).desc())).first()
    if found is None:
        raise NotFound(f"Resource {resource.code} has no successful quality run yet.",
                       key="problem.quality.no_successful_run", params={"code": resource.code})
    return found[0], found[1]


def notes_of(session: Session, resource: Resource) -> dict[str, str]:
    """``custom:<id>`` → the check's note (removed checks too: old runs name them)."""
    rows = session.exec(select(CustomExpectation.id, CustomExpectation.note).where(
        CustomExpectation.resource_id == resource.id)).all()
    return {f"custom:{i}": note for i, note in rows if note}


def report_for(session: Session, code: str, run_id: int | None = None, *,
               provider_view: bool = False) -> str:
    resource = get_resource(session, code)
    if run_id is None:
        run, score = latest_run(session, resource)
    else:
        run_obj = session.get(QualityRun, run_id)
        score_obj = session.exec(select(QualityScore).where(QualityScore.run_id == run_id)).first()
        if run_obj is None or run_obj.resource_id != resource.id or score_obj is None:
            raise NotFound(f"Resource {code} has no successful run {run_id}.",
                           key="problem.quality.no_such_successful_run",
                           params={"code": code, "run_id": run_id})
        run, score = run_obj, score_obj
    return render(run, score, resource, provider_of(session, resource),
                  notes=notes_of(session, resource), provider_view=provider_view)


def write_report(code: str, path: Path, run_id: int | None = None) -> Path:
    """For the CLI (an operator of the platform): write the report of a resource's latest
    (or given) run to ``path``, as the provider department sees it."""
    with session_scope(write=False) as session:
        html = report_for(session, code, run_id, provider_view=True)
    storage.publish_text(path, html)
    return path
