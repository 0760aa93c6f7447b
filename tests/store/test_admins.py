"""Admin accounts in the store (callgw/store/admins.py): stored credentials only, changes bump
the serial a running gateway reloads on, refusals name the problem; on SQLite and on a real
PostgreSQL server (``db_target``)."""
import pytest

from callgw import passwords
from callgw.store.db import Database, StoreError


@pytest.fixture
def db(db_target):
    d = Database(db_target)
    d.migrate()
    yield d
    d.close()


def test_add_list_change_remove(db):
    cred = passwords.hash_password("s3cret-admin", n=1024)
    serial = db.change_serial()
    db.add_admin("root", cred, 10.0)
    assert db.change_serial() == serial + 1
    assert db.list_admins() == [{"name": "root", "created": 10.0, "changed": 10.0}]
    assert db.admin_credentials() == {"root": cred}
    assert passwords.verify_password(db.admin_credentials()["root"], "s3cret-admin")
    db.set_admin_password("root", passwords.hash_password("other-pass", n=1024), 20.0)
    assert db.list_admins()[0]["changed"] == 20.0
    assert not passwords.verify_password(db.admin_credentials()["root"], "s3cret-admin")
    db.remove_admin("root")
    assert db.list_admins() == [] and db.change_serial() == serial + 3


@pytest.mark.parametrize("name", ["", "a:b", "a b", "x" * 65, "é"])
def test_unusable_names_are_refused(db, name):
    with pytest.raises(StoreError, match="admin name"):
        db.add_admin(name, "cred", 1.0)


def test_duplicates_and_missing_admins(db):
    db.add_admin("root", "cred", 1.0)
    with pytest.raises(StoreError, match="admin 'root' exists"):
        db.add_admin("root", "cred", 1.0)
    with pytest.raises(StoreError, match="no admin 'nobody'"):
        db.set_admin_password("nobody", "cred", 1.0)
    with pytest.raises(StoreError, match="no admin 'nobody'"):
        db.remove_admin("nobody")


def test_no_password_or_key_in_the_table(db):
    db.add_admin("root", passwords.hash_password("s3cret-admin", n=1024), 1.0)
    (stored,) = db.conn.execute("SELECT password FROM admins").fetchone()
    assert "s3cret-admin" not in stored and stored.startswith("scram-scrypt$")
