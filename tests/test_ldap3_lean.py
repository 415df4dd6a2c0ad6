"""ceo/services/ldap3_lean.py: ldap3 imported without extend, its logging and TLS, and still whole.

Pure logic, each case in a fresh interpreter (what a helper's first import sees)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_three_modules_are_not_imported_and_their_stand_ins_are_gone():
    out = run("""
        import sys
        from ceo.services.ldap3_lean import ldap3
        l = ldap3()
        conn = l.Connection(l.Server("ldapi:///nowhere"))  # no bind: only what is made at once
        print(sorted(m for m in ("ssl", "pprint", "ldap3.extend", "ldap3.utils.log", "ldap3.core.tls") if m in sys.modules))
        print(l.Connection is sys.modules["ldap3.core.connection"].Connection, ldap3() is l)
    """)
    assert out.splitlines() == ["[]", "True True"]


def test_conn_extend_is_the_real_one_on_first_use():
    out = run("""
        import sys
        from ceo.services.ldap3_lean import ldap3
        l = ldap3()
        conn = l.Connection(l.Server("ldapi:///nowhere"))
        standard = conn.extend.standard
        import ldap3.extend
        print(type(standard) is ldap3.extend.StandardExtendedOperations, standard._connection is conn,
              conn.extend.standard is standard, callable(conn.extend.standard.who_am_i),
              type(conn.extend.microsoft).__name__)
    """)
    assert out == "True True True True MicrosoftExtendedOperations"


def test_tls_is_made_real_and_checked_against_the_real_class():
    out = run("""
        import sys
        from ceo.services.ldap3_lean import ldap3
        l = ldap3()
        print(isinstance(object(), l.Tls), "ssl" in sys.modules)
        server = l.Server("ldaps://ldap.example.org")  # ldaps makes a Tls of its own
        import ldap3.core.tls, ssl
        print(type(server.tls) is ldap3.core.tls.Tls, isinstance(server.tls, l.Tls))
        mine = l.Tls(validate=ssl.CERT_REQUIRED)
        print(type(mine) is ldap3.core.tls.Tls, l.Server("ldap://x", tls=mine).tls is mine)
        try:
            l.Server("ldap://x", tls="not a Tls")
        except l.core.exceptions.LDAPInvalidTlsSpecificationError:
            print("refused")
    """)
    assert out.splitlines() == ["False False", "True True", "True True", "refused"]


def test_a_name_a_stand_in_lacks_means_the_ordinary_import():
    """As if a later ldap3 imported more from ldap3.utils.log than the stand-in has."""
    out = run("""
        import sys
        from ceo.services import ldap3_lean
        plain = ldap3_lean._log
        def lacking():
            module = plain()
            del module.format_ldap_message
            return module
        ldap3_lean._log = lacking
        l = ldap3_lean.ldap3()
        import ldap3.utils.log
        print(l.Connection(l.Server("ldapi:///nowhere")).extend.__class__.__module__,
              ldap3.utils.log.__file__.endswith("log.py"), "pprint" in sys.modules)
    """)
    assert out == "ldap3.extend True True"
