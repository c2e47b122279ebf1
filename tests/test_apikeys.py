"""API keys: shown once, stored as a hash, listed without the secret, revoked for good."""

from __future__ import annotations

import hashlib
import json

import pytest

from tuiexport import cli, setup
from tuiexport import db as dbmod
from tuiexport.errors import NotFound, UserError
from tuiexport.management import apikeys
from tuiexport.models import ApiKey


def test_create_stores_only_a_hash_and_verifies(empty_db):
    view, secret = apikeys.create_key("  shop   nightly ")
    assert view.name == "shop nightly" and secret.startswith("tuix_") and len(secret) >= 40
    row = ApiKey.get()
    assert (
        row.key_hash == hashlib.sha256(secret.encode()).hexdigest() and secret not in row.key_hash
    )
    assert secret.startswith(row.prefix) and len(row.prefix) < len(secret) // 2
    assert apikeys.verify_key(secret).name == "shop nightly"
    assert ApiKey.get().last_used is not None
    for wrong in (
        None,
        "",
        secret[:-1],
        secret + "x",
        "tuix_" + "A" * 43,
        "Bearer " + secret,
        "ü" * 50,
    ):
        assert apikeys.verify_key(wrong) is None


def test_list_and_revoke(empty_db):
    _, first = apikeys.create_key("one")
    _, second = apikeys.create_key("two")
    with pytest.raises(UserError, match="exists"):
        apikeys.create_key("one")
    with pytest.raises(UserError, match="name"):
        apikeys.create_key("   ")
    revoked = apikeys.revoke_key("one")
    assert revoked.revoked is not None and not revoked.active
    assert apikeys.verify_key(first) is None and apikeys.verify_key(second) is not None
    with pytest.raises(NotFound):
        apikeys.revoke_key("one")
    assert [k.name for k in apikeys.list_keys()] == ["one", "two"]
    assert [k.name for k in apikeys.list_keys(include_revoked=False)] == ["two"]
    prefix = apikeys.list_keys()[1].prefix
    assert apikeys.revoke_key(prefix).name == "two"
    _, again = apikeys.create_key("one")  # the name is free once the old key is revoked
    assert apikeys.verify_key(again).name == "one"


def test_cli_create_list_revoke(tmp_path, capsys):
    db = str(tmp_path / "cli.sqlite")
    setup.prepare_database(db, load_sample=False)  # commands expect an existing database
    dbmod.close_database()
    assert cli.main(["--db", db, "apikey", "create", "erp"]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("tuix_") and "shown only now" in err
    assert cli.main(["--db", db, "apikey", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in listed] == ["erp"] and secret not in json.dumps(listed)
    assert cli.main(["--db", db, "apikey", "revoke", "erp"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert cli.main(["--db", db, "apikey", "list"]) == 0
    assert "No API keys" in capsys.readouterr().out
    assert cli.main(["--db", db, "apikey", "list", "--all"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert cli.main(["--db", db, "apikey", "revoke", "erp"]) == 2
    assert "no active API key" in capsys.readouterr().err
