"""The service layer's promises that no verb of the bundled plugins shows yet: SQL errors name
the server and the error's class, never the statement (which may hold a password)."""

from __future__ import annotations

import json
import uuid

import pytest

pytestmark = pytest.mark.usefixtures("testkit")  # tests/plugins/testkit.py, loaded for this module


@pytest.mark.parametrize("engine, why", [("postgresql", "PostgreSQL on coffee.csclub.internal failed: SyntaxError "
                                                        "(SQLSTATE 42601)"),
                                         ("mariadb", "MariaDB on coffee.csclub.internal failed: ProgrammingError "
                                                     "(error 1064)")])
def test_an_sql_error_never_carries_the_statement(cluster, engine, why):
    secret = f"pw-{uuid.uuid4().hex}"
    audit = cluster.state / "audit.jsonl"
    start = audit.stat().st_size if audit.exists() else 0
    proc = cluster.run(["ceo", "testkit", "sqlfail", engine, "--password", secret], "ofstaff")
    assert (proc.returncode, proc.stderr) == (1, f"ceo: {why}\n"), proc.stderr
    assert secret not in proc.stdout
    with open(audit, "rb") as f:
        f.seek(start)
        records = [json.loads(line) for line in f.read().splitlines()]
    mine = [r for r in records if r["verb"] == "sqlfail" and r["caller"] == "ofstaff"]
    assert [r["outcome"] for r in mine] == ["failed"] and mine[0]["args"]["password"] == "***"
    assert secret not in json.dumps(records)
