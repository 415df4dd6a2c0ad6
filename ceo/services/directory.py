"""The helper's LDAP connection and the facts authorization needs from it.

On the LDAP host itself the helper binds as root over ldapi (SASL EXTERNAL); elsewhere it
binds with GSSAPI as `ceod/<host>` from the host keytab. The caller's own ticket is never
needed: the helper decides, then acts with its own identity.
"""

from __future__ import annotations

import os

from ..errors import AlreadyExists, NotFound, ServiceUnavailable, Stale
from .ldap3_lean import ldap3 as _ldap3

LDAP_TIMEOUT = 10

# LDAP result codes (RFC 4511) that ceo acts on.
SUCCESS = 0
NO_SUCH_ATTRIBUTE = 16  # a value to delete is not there (the entry changed since it was read)
TYPE_OR_VALUE_EXISTS = 20  # a value to add is there already
NO_SUCH_OBJECT = 32
OBJECT_CLASS_VIOLATION = 65  # e.g. terms on an entry that is not a member
ALREADY_EXISTS = 68
STALE = (NO_SUCH_ATTRIBUTE, TYPE_OR_VALUE_EXISTS)  # a modify planned on what the entry no longer is

# The connection reads no schema at bind (get_info=NONE): reading and parsing it cost more than
# the rest of a helper's first request. Without it ldap3 returns every value as text, so the
# INTEGER-syntax attributes of the schemas ceo reads (nis, sudo) are made numbers here, as the
# schema made them: results keep their types.
INTEGERS = frozenset({"uidNumber", "gidNumber", "shadowExpire", "shadowFlag", "shadowInactive",
                      "shadowLastChange", "shadowMax", "shadowMin", "shadowWarning", "sudoOrder"})


class Guarded:
    """An ldap3 connection whose network failures become one ServiceUnavailable line, and
    which the session reopens on next use (slapd restarted mid-batch, say)."""

    OPS = ("search", "add", "modify", "delete", "modify_dn", "compare")

    def __init__(self, conn, where: str, on_broken):
        self._conn, self._where, self._on_broken = conn, where, on_broken

    def __getattr__(self, name):
        attr = getattr(self._conn, name)
        if name not in self.OPS:
            return attr

        def call(*args, **kw):
            from ldap3.core.exceptions import LDAPException
            try:
                return attr(*args, **kw)
            except LDAPException as exc:
                self._on_broken()
                raise ServiceUnavailable(f"LDAP ({self._where}) is not answering: {type(exc).__name__}") from None
        return call

    def response(self, msgid, patience: float = LDAP_TIMEOUT):
        """The result of a pipelined (ASYNC) operation. ldap3 would wait out its whole timeout
        for a server that has gone; this notices its receiver thread died and says so at once."""
        from ldap3.core.exceptions import LDAPException, LDAPResponseTimeoutError
        waited = 0.0
        while True:
            try:
                return self._conn.get_response(msgid, timeout=0.2)[1]
            except LDAPResponseTimeoutError:
                waited += 0.2
                receiver = getattr(self._conn.strategy, "receiver", None)
                if waited < patience and receiver is not None and receiver.is_alive():
                    continue
            except LDAPException:
                pass
            self._on_broken()
            raise ServiceUnavailable(f"LDAP ({self._where}) went away")

    def entries(self, base, flt, attributes, scope="SUBTREE", page=1000) -> list[dict]:
        """Every entry of a search, paged (no size-limit surprises), as {attr: [values], "dn": dn};
        a base that does not exist has no entries."""
        ldap3 = _ldap3()
        cookie, out = None, []
        scope = {"SUBTREE": ldap3.SUBTREE, "BASE": ldap3.BASE, "LEVEL": ldap3.LEVEL}[scope]
        while True:
            self.search(base, flt, search_scope=scope, attributes=attributes, paged_size=page, paged_cookie=cookie)
            if self._conn.result["result"] not in (SUCCESS, NO_SUCH_OBJECT):
                raise ServiceUnavailable(f"LDAP search failed ({self._where}): {self._conn.result['description']}")
            for r in self._conn.response or []:
                if r.get("type") == "searchResEntry":
                    record = {k: _typed(k, v) for k, v in r["attributes"].items() if v not in ([], None)}
                    record["dn"] = r["dn"]
                    out.append(record)
            cookie = self._conn.result.get("controls", {}).get("1.2.840.113556.1.4.319", {}).get("value", {}).get("cookie")
            if not cookie:
                return out


def _typed(attr, values) -> list:
    values = values if isinstance(values, list) else [values]
    return [int(v) for v in values] if attr in INTEGERS else values


def connect(config, host: str, on_broken=lambda: None, pipelined=False):
    """pipelined: an ldap3 ASYNC connection, whose operations return message ids at once."""
    conn, where = _connect(config, host, pipelined)
    return Guarded(conn, where, on_broken)


def _connect(config, host: str, pipelined=False):
    ldap3 = _ldap3()
    strategy = ldap3.ASYNC if pipelined else ldap3.SYNC
    from ldap3.core.exceptions import LDAPException

    ldapi = config.get("ldap", "ldapi")
    try:
        if ldapi and os.path.exists(ldapi):
            server = ldap3.Server("ldapi://" + ldapi.replace("/", "%2F"), connect_timeout=LDAP_TIMEOUT,
                                  get_info=ldap3.NONE)
            return ldap3.Connection(server, authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL,
                                    sasl_credentials="", auto_bind=True, receive_timeout=LDAP_TIMEOUT,
                                    raise_exceptions=False, client_strategy=strategy), ldapi
        import gssapi
        uri = config.get("ldap", "uri")
        ldap_host = uri.split("://", 1)[-1].split(":")[0].strip("/")
        keytab = config.get("kerberos", "host_keytab").replace("{host}", host.split(".")[0])
        name = gssapi.Name(f"ceod/{host}@{config.realm}", gssapi.NameType.kerberos_principal)
        creds = gssapi.Credentials(name=name, usage="initiate",
                                   store={"client_keytab": keytab, "ccache": f"MEMORY:ceod-{os.getpid()}"})
        server = ldap3.Server(uri, connect_timeout=LDAP_TIMEOUT, get_info=ldap3.NONE)
        return ldap3.Connection(server, authentication=ldap3.SASL, sasl_mechanism=ldap3.KERBEROS,
                                sasl_credentials=(ldap_host, None, creds), auto_bind=True,
                                receive_timeout=LDAP_TIMEOUT, raise_exceptions=False, client_strategy=strategy), uri
    except (LDAPException, OSError) as exc:
        raise ServiceUnavailable(f"LDAP ({ldapi or config.get('ldap', 'uri')}) is not answering: {exc}") from None
    except Exception as exc:  # gssapi errors: keytab missing, KDC down
        raise ServiceUnavailable(f"cannot authenticate to LDAP as ceod/{host}: {str(exc).splitlines()[0]}") from None


def people_dn(config) -> str:
    return f"ou=People,{config.get('ldap', 'base')}"


def groups_dn(config) -> str:
    return f"ou=Group,{config.get('ldap', 'base')}"


def user_dn(config, uid: str) -> str:
    return f"uid={uid},{people_dn(config)}"


def escape(value: str) -> str:
    _ldap3()
    from ldap3.utils.conv import escape_filter_chars
    return escape_filter_chars(value)


def groups_of(conn, config, uid: str) -> set[str]:
    return {e["cn"][0] for e in conn.entries(groups_dn(config), f"(uniqueMember={escape(user_dn(config, uid))})",
                                             ["cn"])}


def sudoers_dn(config) -> str:
    return f"ou=SUDOers,{config.get('ldap', 'base')}"


def tombstones_dn(config) -> str:
    return f"ou=Tombstones,{config.get('ldap', 'base')}"


def tombstone_dn(config, number: int) -> str:
    """A deleted account's tombstone, named by its uid number: numbers are never handed out
    twice, names may be (reuse_deleted_names), so a name can have several."""
    return f"uidNumber={int(number)},{tombstones_dn(config)}"


def _same_dn(a: str, b: str) -> bool:
    import re
    return re.sub(r"\s*,\s*", ",", a).lower() == re.sub(r"\s*,\s*", ",", b).lower()


def references(conn, config, uid: str, number: int | None = None) -> list[tuple[str, str, str]]:
    """(dn, attribute, value) for every value that names the account `uid` (or its uid number)
    outside its own entry and personal group: group memberships (uniqueMember, memberUid), the
    records of what a group gave it (ou=Grants, uniqueMember) and sudo rules (sudoUser `uid`,
    `%uid` for its personal group, `#number`; sudoRunAsUser `uid`, `#number`). A new account
    of that name or number would inherit each of them."""
    dn = user_dn(config, uid)
    sudo = {"sudoUser": {uid, f"%{uid}"}, "sudoRunAsUser": {uid}}
    if number is not None:
        for values in sudo.values():
            values.add(f"#{number}")
    wanted = [(groups_dn(config), {"uniqueMember": {dn}, "memberUid": {uid}}),
              (grants_dn(config), {"uniqueMember": {dn}}), (sudoers_dn(config), sudo)]
    out = []
    for base, attrs in wanted:
        flt = "(|" + "".join(f"({a}={escape(v)})" for a, vs in attrs.items() for v in sorted(vs)) + ")"
        for e in conn.entries(base, flt, list(attrs)):
            for attr, values in attrs.items():
                # The value as stored (for an exact undo); DNs compare as DNs, the rest exactly.
                out += [(e["dn"], attr, v) for v in e.get(attr, [])
                        if (_same_dn(v, dn) if attr == "uniqueMember" else v in values)]
    return out


# --- grants: what a group gave its members (groups addmember) ---------------------------------
# One entry per (giving group, given thing), of CSC's structural `group` class, whose
# uniqueMember values are the users that group gave it: cn=syscom:office (the group office),
# cn=syscom:list:syscom-alerts (the list). An empty record is allowed and harmless.

def grants_dn(config) -> str:
    return f"ou=Grants,{config.get('ldap', 'base')}"


def grant_dn(config, giver: str, given: str) -> str:
    _ldap3()
    from ldap3.utils.dn import escape_rdn
    return f"cn={escape_rdn(f'{giver}:{given}')},{grants_dn(config)}"


def grants_of(conn, config, uid: str) -> dict[str, set[str]]:
    """{given: {groups that gave it}} for uid; given is a group name or `list:NAME`."""
    out: dict[str, set[str]] = {}
    for e in conn.entries(grants_dn(config), f"(uniqueMember={escape(user_dn(config, uid))})", ["cn"], "LEVEL"):
        giver, _, given = e["cn"][0].partition(":")
        if given:
            out.setdefault(given, set()).add(giver)
    return out


def tombstones(conn, config, uid: str) -> list[dict]:
    """The tombstones of deleted accounts of that name."""
    return conn.entries(tombstones_dn(config), f"(&(objectClass=account)(uid={escape(uid)}))",
                        ["uidNumber", "homeDirectory", "description"], "LEVEL")


def held_numbers(conn, config) -> set[int]:
    """uid numbers no account has but something still holds: deleted accounts' (their archived
    homes still carry them) and those sudo rules name as `#number`."""
    held = {int(v) for e in conn.entries(tombstones_dn(config), "(uidNumber=*)", ["uidNumber"])
            for v in e.get("uidNumber", [])}
    for e in conn.entries(sudoers_dn(config), "(objectClass=sudoRole)", ["sudoUser", "sudoRunAsUser"]):
        held.update(int(v[1:]) for v in e.get("sudoUser", []) + e.get("sudoRunAsUser", [])
                    if v[:1] == "#" and v[1:].isdigit())
    return held


def sudo_rule_dn(config, name: str) -> str:
    """A club's sudo rule: the members of group `name` may run commands as the account `name`."""
    return f"cn=%{name},{sudoers_dn(config)}"


def club_sudo_rule(name: str) -> dict:
    """The attributes of that rule: as the club, on any host, any command, no password."""
    return {"cn": f"%{name}", "sudoUser": f"%{name}", "sudoRunAsUser": name, "sudoHost": "ALL",
            "sudoCommand": "ALL", "sudoOption": "!authenticate"}


# --- writes: each raises a named error, naming what it was doing ------------------------------

def changes(add=None, delete=None, replace=None) -> dict:
    """An ldap3 modification from {attribute: values} per operation (delete with no values
    removes the attribute)."""
    ldap3 = _ldap3()
    out: dict = {}
    for op, attrs in ((ldap3.MODIFY_ADD, add), (ldap3.MODIFY_DELETE, delete), (ldap3.MODIFY_REPLACE, replace)):
        for attr, values in (attrs or {}).items():
            out.setdefault(attr, []).append((op, list(values)))
    return out


def add(conn, dn: str, what: str, classes=None, attrs=None):
    checked(conn, conn.add(dn, classes, attrs), what)


def delete(conn, dn: str, what: str, gone_ok: bool = False):
    """gone_ok: an undo that removes something may find it already gone."""
    checked(conn, conn.delete(dn), what, gone_ok)


def modify(conn, dn: str, what: str, stale: bool = False, **ops):
    """stale: a value to add that is there already, or one to delete that is not, raises Stale
    (the entry changed since it was read: the caller reads again) rather than failing."""
    checked(conn, conn.modify(dn, changes(**ops)), what, stale=stale)


def checked(conn, ok, what: str, gone_ok: bool = False, stale: bool = False):
    if ok:
        return
    code, text = conn.result.get("result"), conn.result.get("description")
    if gone_ok and code == NO_SUCH_OBJECT:
        return
    if stale and code in STALE:
        raise Stale(f"{what}: the entry changed while it was being written")
    if code == ALREADY_EXISTS:
        raise AlreadyExists(f"{what}: already exists")
    if code == NO_SUCH_OBJECT:
        raise NotFound(f"{what}: no such entry")
    raise ServiceUnavailable(f"LDAP failed {what}: {text}")
