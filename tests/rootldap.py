"""Root's view of the sandbox's LDAP (ldapi, SASL EXTERNAL), to check what ceo did: a
connection per operation, since another test file restarts slapd (failure injection)."""

from __future__ import annotations

import ldap3


class RootLDAP:
    def __init__(self, cluster):
        self.uri = "ldapi://" + str(cluster.state / "ldap" / "ldapi").replace("/", "%2F")

    def _do(self, fn):
        conn = ldap3.Connection(ldap3.Server(self.uri, get_info=ldap3.NONE), authentication=ldap3.SASL,
                                sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="", auto_bind=True)
        try:
            return fn(conn)
        finally:
            conn.unbind()

    def read(self, dn) -> dict | None:
        """The entry as {attr: [str values]} (as stored, duplicates kept); None if there is none."""
        def read(conn):
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["*"])
            if not conn.response:
                return None
            return {k: [v.decode() for v in vs] for k, vs in conn.response[0]["raw_attributes"].items()}
        return self._do(read)

    # Writers, for tests that set up or clean up what ceo is then checked against.
    def modify(self, dn, changes):
        self._do(lambda conn: _ok(conn, conn.modify(dn, changes)))

    def add(self, dn, classes, attrs):
        self._do(lambda conn: _ok(conn, conn.add(dn, classes, attrs)))

    def delete(self, dn):
        """Delete if there (cleanup): any other failure fails the test."""
        def delete(conn):
            if not conn.delete(dn):
                assert conn.result["result"] == 32, conn.result  # noSuchObject
        self._do(delete)


def _ok(conn, done):
    assert done, conn.result
