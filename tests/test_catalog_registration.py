"""Registering resources with their data: the happy paths and every refusal."""

import io
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from kernel.identity import Role
from tests.conftest import World
from tests.factories import population_meta, population_rows, to_csv, to_jsonl, upload

API = "/api/v1/resources"


def _register(client: TestClient, world: World, meta: dict, data: bytes,
              filename: str = "data.csv", dept: str = "GA",
              confirm: bool = False):  # type: ignore[no-untyped-def]
    return client.post(API, **upload(meta, data, filename, confirm_duplicate=confirm),
                       headers=world.headers(dept, Role.publisher))


def _stored_resources(client: TestClient, world: World) -> int:
    r = client.get(API, headers=world.headers("SJJ", Role.auditor))
    return int(r.json()["total"])


def _segments(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "warehouse").rglob("*.duckdb") if "_staging" not in p.parts]


def test_register_csv_creates_resource_with_code_and_data(
        client: TestClient, world: World, data_dir: Path) -> None:
    r = _register(client, world, population_meta(), to_csv(population_rows(7)))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["code"] == "440300-GA-101-00001"
    assert body["provider"]["code"] == "GA"
    assert body["row_count"] == 7 and body["current_version"] == 1
    assert body["last_data_update"] is not None
    assert [i["name"] for i in body["items"]] == ["id_number", "name", "birth_date",
                                                  "household_size"]
    (segment,) = _segments(data_dir)
    con = duckdb.connect(str(segment), read_only=True)
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'data'").fetchall())
    assert types == {"id_number": "VARCHAR", "name": "VARCHAR", "birth_date": "DATE",
                     "household_size": "BIGINT"}
    second = _register(client, world, population_meta(name="人口基础信息（副本）"),
                       to_csv(population_rows(2)), confirm=True)
    assert second.json()["code"] == "440300-GA-101-00002"


def test_register_parquet_and_jsonl(client: TestClient, world: World, tmp_path: Path) -> None:
    rows = population_rows(4)
    pq = tmp_path / "p.parquet"
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM read_json(?)", [str(_write(tmp_path, rows))])
    con.execute(f"COPY (SELECT id_number, name, CAST(birth_date AS DATE) AS birth_date, "
                f"household_size FROM t) TO '{pq}' (FORMAT parquet)")
    r = _register(client, world, population_meta(), pq.read_bytes(), "export.parquet")
    assert r.status_code == 201, r.text
    assert r.json()["row_count"] == 4
    r = _register(client, world, population_meta(), to_jsonl(rows), "export.jsonl",
                  confirm=True)
    assert r.status_code == 201, r.text
    assert r.json()["row_count"] == 4


def _write(tmp_path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path = tmp_path / "rows.jsonl"
    path.write_bytes(to_jsonl(rows))
    return path


def test_gb18030_csv_is_transcoded(client: TestClient, world: World) -> None:
    data = to_csv(population_rows(3)).decode().encode("gb18030")
    r = _register(client, world, population_meta(), data)
    assert r.status_code == 201, r.text


def test_utf8_is_checked_across_chunk_boundaries() -> None:
    """The staging copy checks UTF-8 chunk by chunk: a character cut by a chunk boundary is
    still UTF-8, a GBK byte pair is not, nor is a file ending inside a character."""
    from catalog.warehouse import _Utf8Check

    text = "姓名,张三\n".encode() * 3
    for cut in range(1, len(text)):
        check = _Utf8Check()
        check.update(text[:cut])
        check.update(text[cut:])
        assert check.done(), cut
    gbk = _Utf8Check()
    gbk.update("张三".encode("gbk"))
    assert not gbk.done()
    truncated = _Utf8Check()
    truncated.update("张".encode()[:2])
    assert not truncated.done()


@pytest.mark.parametrize("mutate, column, fragment", [
    (lambda rows: rows[2].update(household_size="三"), "household_size", "not valid integer"),
    (lambda rows: rows[1].update(birth_date="1990-13-45"), "birth_date", "not valid date"),
])
def test_bad_types_are_refused_naming_the_column_and_line(
        client: TestClient, world: World, data_dir: Path, mutate, column, fragment) -> None:  # type: ignore[no-untyped-def]
    rows = population_rows(5)
    mutate(rows)
    r = _register(client, world, population_meta(), to_csv(rows))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert column in problem["detail"]
    (error,) = problem["errors"]
    assert error["column"] == column and fragment in error["problem"]
    assert error["first_line"] in (3, 4)
    assert _stored_resources(client, world) == 0
    assert _segments(data_dir) == []


def test_bad_types_in_jsonl_are_refused(client: TestClient, world: World) -> None:
    rows = population_rows(3)
    rows[0]["household_size"] = "many"
    r = _register(client, world, population_meta(), to_jsonl(rows), "x.jsonl")
    assert r.status_code == 422
    assert r.json()["errors"][0]["column"] == "household_size"


def test_parquet_with_wrong_column_type_is_refused(client: TestClient, world: World,
                                                   tmp_path: Path) -> None:
    pq = tmp_path / "p.parquet"
    duckdb.connect().execute(
        f"COPY (SELECT 'x' AS id_number, 'y' AS name, DATE '2000-01-01' AS birth_date, "
        f"'three' AS household_size) TO '{pq}' (FORMAT parquet)")
    r = _register(client, world, population_meta(), pq.read_bytes(), "p.parquet")
    assert r.status_code == 422
    assert r.json()["errors"] == [{"column": "household_size",
                                   "problem": "declared integer, file has VARCHAR"}]


def test_missing_and_undeclared_columns_are_named(client: TestClient, world: World,
                                                  data_dir: Path) -> None:
    rows = [{**r, "remark": "x"} for r in population_rows(3)]
    data = to_csv(rows, ["id_number", "name", "household_size", "remark"])
    r = _register(client, world, population_meta(), data)
    assert r.status_code == 422
    errors = {e["column"]: e["problem"] for e in r.json()["errors"]}
    assert errors == {"birth_date": "declared as a data item but not in the file",
                      "remark": "in the file but not declared as a data item"}
    assert _segments(data_dir) == []


def test_unknown_department_is_404(client: TestClient, world: World) -> None:
    r = _register(client, world, population_meta(provider="NOPE"), to_csv(population_rows()))
    assert r.status_code == 404
    assert "NOPE" in r.json()["detail"]


def test_registering_for_another_department_is_forbidden(client: TestClient,
                                                         world: World) -> None:
    r = _register(client, world, population_meta(provider="SCJG"), to_csv(population_rows()))
    assert r.status_code == 403
    assert _stored_resources(client, world) == 0


@pytest.mark.parametrize("data, fragment", [(b"", "empty"),
                                            (b"id_number,name,birth_date,household_size\n",
                                             "no data rows")])
def test_empty_files_are_refused(client: TestClient, world: World, data: bytes,
                                 fragment: str) -> None:
    r = _register(client, world, population_meta(), data)
    assert r.status_code == 422
    assert fragment in r.json()["detail"]


def test_duplicate_resource_code_is_409(client: TestClient, world: World) -> None:
    meta = population_meta(code="GA-POP-0001")
    assert _register(client, world, meta, to_csv(population_rows())).status_code == 201
    r = _register(client, world, meta, to_csv(population_rows()))
    assert r.status_code == 409
    assert "GA-POP-0001" in r.json()["detail"]
    assert _stored_resources(client, world) == 1


def test_unsupported_format_is_415(client: TestClient, world: World) -> None:
    r = _register(client, world, population_meta(), b"PK\x03\x04", "data.ods")
    assert r.status_code == 415


def test_damaged_workbook_is_422(client: TestClient, world: World) -> None:
    r = _register(client, world, population_meta(), b"PK\x03\x04", "data.xlsx")
    assert r.status_code == 422
    assert ".xlsx" in r.json()["detail"]


def test_oversize_upload_is_413(client: TestClient, world: World,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel.settings import get_settings

    monkeypatch.setattr(get_settings(), "max_upload_bytes", 100)
    r = _register(client, world, population_meta(), to_csv(population_rows(20)))
    assert r.status_code == 413


@pytest.mark.parametrize("meta, field", [
    (population_meta(sharing_type="conditional", sharing_condition=""), "sharing condition"),
    (population_meta(items=[]), "items"),
    (population_meta(category="999"), "category"),
])
def test_invalid_metadata_is_422(client: TestClient, world: World, meta: dict,
                                 field: str) -> None:  # type: ignore[type-arg]
    r = _register(client, world, meta, to_csv(population_rows()))
    assert r.status_code == 422
    assert field in r.text


def test_core_data_must_not_be_shareable(client: TestClient, world: World) -> None:
    r = _register(client, world, population_meta(security_level="core"),
                  to_csv(population_rows()))
    assert r.status_code == 422 and "Core data" in r.json()["detail"]
    r = _register(client, world, population_meta(security_level="core",
                                                 sharing_type="not_shareable"),
                  to_csv(population_rows()))
    assert r.status_code == 201


def test_only_publishers_register(client: TestClient, world: World) -> None:
    for role in (Role.requester, Role.approver, Role.auditor, Role.leader, Role.admin):
        r = client.post(API, **upload(population_meta(), to_csv(population_rows())),
                        headers=world.headers("GA", role))
        assert r.status_code == 403, role


def test_path_tricks_in_filename_never_reach_the_file_system(
        client: TestClient, world: World, data_dir: Path) -> None:
    r = _register(client, world, population_meta(), to_csv(population_rows()),
                  "../../../../tmp/evil.csv")
    assert r.status_code == 201
    assert not Path("/tmp/evil.csv").exists()
    assert all(data_dir in p.parents for p in _segments(data_dir))


def test_upload_is_streamed_from_a_file_object(client: TestClient, world: World) -> None:
    big = to_csv(population_rows(3000))
    r = client.post(API, data={"metadata": __import__("json").dumps(population_meta())},
                    files={"file": ("big.csv", io.BytesIO(big), "text/csv")},
                    headers=world.headers("GA", Role.publisher))
    assert r.status_code == 201 and r.json()["row_count"] == 3000


def test_an_arrow_stream_is_inserted_in_chunks_in_order(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """A database pull's stream goes to DuckDB in chunks: rows keep their order and their
    row numbers across chunks (a key repeated in the first and the last chunk is named by
    both rows), and all or nothing still holds."""
    import pyarrow as pa

    from catalog import ingest
    from catalog.models import ItemType
    from kernel.problems import Invalid

    monkeypatch.setattr(ingest, "CHUNK_ROWS", 5)
    columns = [ingest.Column("id", ItemType.string, is_key=True),
               ingest.Column("n", ItemType.integer)]

    def stream(ids: list[str]) -> pa.RecordBatchReader:
        schema = pa.schema([("id", pa.string()), ("n", pa.int32())])
        batches = [pa.record_batch([ids[i:i + 4], list(range(i, i + 4))], schema=schema)
                   for i in range(0, len(ids), 4)]
        return pa.RecordBatchReader.from_batches(schema, batches)

    ids = [f"k{i:02d}" for i in range(12)]  # 3 batches of 4: chunks of 8 and 4 rows
    segment = tmp_path / "a.duckdb"
    result, _ = ingest.ingest_arrow(stream(ids), columns, segment)
    assert result.rows == 12
    con = duckdb.connect(str(segment), read_only=True)
    assert con.execute("SELECT id, n FROM data").fetchall() == [(k, i) for i, k in enumerate(ids)]
    con.close()
    ids[10] = ids[1]
    with pytest.raises(Invalid) as refused:
        ingest.ingest_arrow(stream(ids), columns, tmp_path / "b.duckdb")
    assert refused.value.errors[0]["lines"] == [2, 11]
    assert not (tmp_path / "b.duckdb").exists()
