"""Every message a person can see comes from the one message catalogue
(``govshare/web/i18n/{en,zh-CN}.json``): the catalogue itself (both languages, the same named
parameters) and every problem raised in the code (found by reading the source, so a new
``raise Invalid(f"...")`` without a catalogue entry fails here, not in front of a clerk)."""

from __future__ import annotations

import ast
import json
import re
import string
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import govshare.registry  # noqa: F401  (imports every context, so every Problem class exists)
from govshare.web import i18n
from kernel.identity import Role
from kernel.problems import Problem
from tests.conftest import World
from tests.english import english_sentences
from tests.factories import population_meta, population_rows, to_csv, upload

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kernel", "catalog", "quality", "access", "translog", "metrics", "govshare")


def _fields(template: str) -> set[tuple[str, str]]:
    """The named parameters of a ``str.format`` template, with their format specs."""
    return {(name, spec or "") for _, name, spec, _ in string.Formatter().parse(template)
            if name is not None}


def test_every_message_id_has_both_languages_with_the_same_parameters() -> None:
    en, zh = i18n.catalog("en"), i18n.catalog("zh-CN")
    assert set(en) == set(zh)
    differ = {key: (sorted(_fields(en[key])), sorted(_fields(zh[key])))
              for key in en if _fields(en[key]) != _fields(zh[key])}
    assert differ == {}, "the two languages name different parameters"
    for key in en:  # every template formats with its parameters
        params = {name: datetime(2026, 1, 2) if spec.startswith("%") else 1
                  for name, spec in _fields(en[key])}
        en[key].format(**params), zh[key].format(**params)


def _problem_classes() -> set[str]:
    names, todo = set(), [Problem]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def test_every_kind_of_problem_has_its_title_in_the_catalogue() -> None:
    zh = i18n.catalog("zh-CN")
    todo: list[type[Problem]] = [Problem]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        assert f"problem.title.{cls.slug}" in zh, cls


def _calls() -> Iterator[tuple[str, ast.Call]]:
    """Every construction of a problem, and every ``Phrase(key, english, params)`` (a message
    or fragment with its own key), as if it were a problem with ``key=`` and ``params=``."""
    classes = _problem_classes()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else \
                        func.attr if isinstance(func, ast.Attribute) else None
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    if name in classes and node.args:
                        yield where, node
                    elif name == "PydanticCustomError" and len(node.args) >= 2:
                        # Its message is a template already: pydantic formats it.
                        keywords = [ast.keyword("key", ast.Constant(
                            f"validation.{ast.literal_eval(node.args[0])}")),
                            ast.keyword("template", ast.Constant(True))]
                        if len(node.args) > 2:
                            keywords.append(ast.keyword("params", node.args[2]))
                        yield where, ast.Call(node.func, [node.args[1]], keywords)
                    elif name == "Phrase" and len(node.args) >= 2:
                        keywords = [ast.keyword("key", node.args[0])]
                        if len(node.args) > 2:
                            keywords.append(ast.keyword("params", node.args[2]))
                        yield where, ast.Call(node.func, [node.args[1]], keywords)


def _template(detail: ast.expr, params: dict[str, str]) -> str | None:
    """The catalogue template the English ``detail`` of a call is made from: each f-string
    field becomes the name of the parameter passed with the same expression."""
    if isinstance(detail, ast.Constant) and isinstance(detail.value, str):
        return detail.value.replace("{", "{{").replace("}", "}}")
    if not isinstance(detail, ast.JoinedStr):
        return None
    by_source = {source: name for name, source in params.items()}
    out = ""
    for part in detail.values:
        if isinstance(part, ast.Constant):
            out += str(part.value).replace("{", "{{").replace("}", "}}")
            continue
        assert isinstance(part, ast.FormattedValue)
        name = by_source.get(ast.unparse(part.value))
        if name is None:
            return None
        spec = ""
        if part.format_spec is not None:
            assert isinstance(part.format_spec, ast.JoinedStr)
            spec = ":" + "".join(str(v.value) for v in part.format_spec.values
                                 if isinstance(v, ast.Constant))
        out += "{" + name + spec + "}"
    return out


def test_every_problem_raised_in_the_code_comes_from_the_catalogue() -> None:
    en, zh = i18n.catalog("en"), i18n.catalog("zh-CN")
    english = set(en.values())
    wrong: list[str] = []
    for where, call in _calls():
        keywords = {k.arg: k.value for k in call.keywords}
        detail = call.args[0]
        key_node = keywords.get("key")
        if key_node is None:
            # No key: the English text itself must be a catalogue message (looked up by text).
            if not (isinstance(detail, ast.Constant) and detail.value in english):
                wrong.append(f"{where}: no catalogue key for {ast.unparse(detail)[:80]}")
            continue
        if not isinstance(key_node, ast.Constant):
            continue  # a key passed through (a Phrase's, catalog.messages'): checked there
        if key_node.value not in zh:
            wrong.append(f"{where}: key {ast.unparse(key_node)} is not in the catalogue")
            continue
        key = str(key_node.value)
        params_node = keywords.get("params")
        params: dict[str, str] = {}
        if isinstance(params_node, ast.Dict):
            params = {str(k.value): ast.unparse(v) for k, v in
                      zip(params_node.keys, params_node.values, strict=True)
                      if isinstance(k, ast.Constant)}
        elif params_node is not None:  # built elsewhere: only the key and the text are checked
            params = {name: "" for name, _ in _fields(en[key])}
        if {name for name, _ in _fields(en[key])} != set(params):
            wrong.append(f"{where}: {key} takes {sorted(_fields(en[key]))}, given "
                         f"{sorted(params)}")
            continue
        template = _template(detail, params) if "template" not in keywords else \
            ast.literal_eval(detail)
        if template is not None and template != en[key]:
            wrong.append(f"{where}: the English text differs from en.json's {key}:\n"
                         f"    code:    {template}\n    catalog: {en[key]}")
    assert not wrong, "\n".join(wrong)


# --- over HTTP: a caller preferring zh-CN reads every parameterised message in Chinese --------

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}


def _chinese(response: Any, status: int) -> dict[str, Any]:
    """The problem's title, detail and every entry's message, with no English sentence."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    texts = [body["title"], body["detail"]] + [
        str(e.get("message") or e.get("problem") or "") for e in body.get("errors") or []]
    found = [s for text in texts for s in english_sentences(text)]
    assert not found, f"English in a zh-CN problem: {found} in {body}"
    assert re.search(r"[\u4e00-\u9fff]", body["detail"]), body
    return body


def test_parameterised_problems_are_chinese_for_a_zh_cn_caller(client: TestClient,
                                                               world: World) -> None:
    pub = {**world.headers("GA", Role.publisher), **ZH}
    req = {**world.headers("SCJG", Role.requester), **ZH}
    api = "/api/v1"
    rows = population_rows(6)
    created = client.post(f"{api}/resources", **upload(population_meta(), to_csv(rows)),
                          headers=pub)
    assert created.status_code == 201, created.text
    code = created.json()["code"]

    # Our validators' parameterised messages (pydantic custom errors with catalogue types).
    meta = population_meta()
    meta["items"] = [*meta["items"], meta["items"][0]]
    body = _chinese(client.post(f"{api}/resources", **upload(meta, to_csv(rows)),
                                headers=pub), 422)
    assert any("id_number" in e["message"] and "重复" in e["message"] for e in body["errors"])
    body = _chinese(client.get(f"{api}/resources/NO-SUCH-1", headers=pub), 404)
    assert "NO-SUCH-1" in body["detail"]
    # Upload errors: a bad whole number (with its line), a duplicated key, a header mismatch.
    bad = to_csv(rows[:2]).replace(b",1\r\n", b",x\r\n", 1)
    body = _chinese(client.post(f"{api}/resources/{code}/versions", headers=pub,
                                files={"file": ("v.csv", bad, "text/csv")}), 422)
    dup = to_csv([rows[0], rows[0]])
    body = _chinese(client.post(f"{api}/resources/{code}/versions", headers=pub,
                                files={"file": ("v.csv", dup, "text/csv")}), 422)
    assert rows[0]["id_number"] in body["detail"]
    extra = to_csv([{**r, "colour": "red"} for r in rows[:2]])
    _chinese(client.post(f"{api}/resources/{code}/versions", headers=pub,
                         files={"file": ("v.csv", extra, "text/csv")}), 422)
    # Applications: every reason, each entry in Chinese; a move the caller may not make.
    past = str(date.today() - timedelta(days=400))
    body = _chinese(client.post(f"{api}/applications", headers=req, json={
        "resource": code, "purpose": "用于测试中文", "legal_basis": "测试依据",
        "items": ["name", "nickname", "name"], "period_start": past,
        "period_end": str(date.today())}), 422)
    assert "nickname" in body["detail"] and len(body["errors"]) >= 3
    filed = client.post(f"{api}/applications", headers=req, json={
        "resource": code, "purpose": "用于测试中文", "legal_basis": "测试依据",
        "items": ["name"], "period_end": str(date.today() + timedelta(days=30))})
    assert filed.status_code == 201, filed.text
    app_id = filed.json()["id"]
    own_approver = {**world.headers("SCJG", Role.approver), **ZH}  # not the provider's
    body = _chinese(client.post(f"{api}/applications/{app_id}/approve",
                                headers=own_approver, json={}), 409)
    assert "提供部门的审批人" in body["detail"]
    body = _chinese(client.post(f"{api}/applications/{app_id}/resubmit", headers=req,
                                json={"note": "再次提交"}), 409)
    assert "退回补正" in body["detail"]  # the state it needs, by its Chinese label
    _chinese(client.get(f"{api}/applications/987654", headers=req), 404)
    # Pydantic's own 422, the log, the metrics and the quality guard.
    _chinese(client.post(f"{api}/applications", headers=req, json={
        "resource": code, "items": "name", "period_end": "soon"}), 422)
    _chinese(client.get(f"{api}/log/receipts/987654", headers=pub), 404)
    _chinese(client.get(f"{api}/no/such/path", headers=pub), 404)
    bureau = {**world.headers("SJJ", Role.auditor), **ZH}
    _chinese(client.get(f"{api}/metrics/overview?from=2026-03-01&end=2026-01-01",
                        headers=bureau), 422)
    _chinese(client.post(f"{api}/quality/resources/{code}/expectations", headers=bureau,
                         json={"type": "expect_column_values_to_not_be_null",
                               "arguments": {"column": "name", "row_condition": "1=1"}}), 422)
    body = _chinese(client.post(f"{api}/quality/resources/{code}/expectations", headers=pub,
                                json={"type": "expect_rows_to_satisfy",
                                      "kwargs": {"expression": "household_size + name > 1"}}),
                    422)
    assert "'+' 只能用于数值；此处是文本" in body["errors"][0]["message"], body
    # The same problem in English for an English caller (the catalogue's other language).
    english = client.get(f"{api}/resources/NO-SUCH-1",
                         headers={**world.headers("GA", Role.publisher),
                                  "Accept-Language": "en"}).json()
    assert english["detail"].startswith("No resource with code 'NO-SUCH-1'")


def test_a_problem_kept_as_json_is_localized_later_in_either_language() -> None:
    """A delivery job keeps its refusal as JSON (kernel.jobs' result) and shows it in the
    reader's language when asked: phrases, lists of phrases and dates survive the trip."""
    from kernel.problems import (
        Phrase,
        Phrases,
        localize,
        params_from_json,
        params_to_json,
        set_localizer,
    )

    set_localizer(i18n.localize_problem)  # as the app does (govshare.web.install)
    state = Phrase("state.returned", "returned")
    params = {"verb": Phrase("action.resubmit", "resubmit"),
              "what": Phrase("phrase.application_n", "application 7", {"app_id": 7}),
              "now": Phrase("state.submitted", "submitted"), "allowed": Phrases((state,))}
    english = "Cannot resubmit application 7: it is submitted; resubmit is allowed only " \
              "when it is returned."
    kept = json.loads(json.dumps(params_to_json(params)))
    again = params_from_json(kept)
    assert localize("zh-CN", "problem.access.move_not_now", again, english) == (
        "不能对第 7 号申请执行“重新提交”：其状态为“待审批”；"
        "只有状态为退回补正时才能执行“重新提交”。")
    assert localize("en", "problem.access.move_not_now", again, english) == english
    dated = params_from_json(json.loads(json.dumps(params_to_json(
        {"valid_from": datetime(2027, 1, 4, 8, 0)}))))
    assert localize("zh-CN", "problem.access.period_not_started", dated, "") == \
        "使用期自 2027-01-04 开始，届时制作第一个数据包。"


def test_a_blocked_delivery_says_why_in_the_page_language(
        client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason a package was withheld is kept with its catalogue message: the zh-CN page
    shows it in Chinese, the API's stored text stays English."""
    from access import masking
    from tests.web_support import sign_in

    api = "/api/v1"
    meta = population_meta()
    meta["items"] = [*meta["items"], {"name": "mobile", "title": "手机号码", "type": "string",
                                      "sensitivity": "personal", "kind": "mobile"}]
    rows = [{**r, "mobile": f"1381234{i:04d}"} for i, r in enumerate(population_rows(12))]
    created = client.post(f"{api}/resources", **upload(meta, to_csv(rows)),
                          headers=world.headers("GA", Role.publisher))
    assert created.status_code == 201, created.text
    filed = client.post(f"{api}/applications", headers=world.headers("SCJG", Role.requester),
                        json={"resource": created.json()["code"], "purpose": "用于测试拦截",
                              "legal_basis": "测试依据", "items": ["name", "mobile"],
                              "period_end": str(date.today() + timedelta(days=30))})
    app_id = filed.json()["id"]
    # A masking rule that fails to mask (simulated): the desensitization check blocks it.
    monkeypatch.setattr(masking, "mask_expression", lambda column, kind, sensitivity: column)
    client.post(f"{api}/applications/{app_id}/approve",
                headers=world.headers("GA", Role.approver), json={})
    stored = client.get(f"{api}/applications/{app_id}",
                        headers=world.headers("SCJG", Role.requester)).json()
    assert "values that look like raw personal data" in stored["delivery_blocked"]
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    page = client.get(f"/applications/{app_id}").text
    assert "有看似未脱敏个人数据的值" in page and "raw personal data" not in page


def test_the_cli_names_each_bad_field_on_a_line_of_its_own(data_dir: Path,
                                                            tmp_path: Path) -> None:
    """Terminal output is plain lines, not pydantic's dump of the input or dict reprs."""
    from typer.testing import CliRunner

    from govshare.cli import app

    metadata, data = tmp_path / "meta.json", tmp_path / "d.csv"
    metadata.write_text('{"name": "x"}', encoding="utf-8")
    data.write_text("a\n1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["resource", "register", str(data), "--metadata",
                                      str(metadata), "--publisher", "nobody"])
    assert result.exit_code == 2, result.output
    assert "  - name: String should have at least 2 characters" in result.output
    assert "  - category: Field required" in result.output
    assert "input_value" not in result.output and "{'" not in result.output
