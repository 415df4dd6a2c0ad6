"""ldap3, imported without three of its modules that a helper's request never uses.

`import ldap3` costs more CPU than the rest of a helper's first request (the helper is a new
process for every session). Three of the modules its package imports up front serve nothing ceo
does, and together are about a third of it:
  ldap3.extend     the extended operations behind `conn.extend` (Active Directory, eDirectory,
                   who-am-i, paged-search helpers), with their controls and hashlib
  ldap3.utils.log  ldap3's own debug logging, off unless set_library_log_detail_level() is
                   called (ceo never does): it imports pprint, and so dataclasses and inspect
  ldap3.core.tls   TLS (ldaps://, StartTLS): it imports ssl. ceo's own LDAP is ldapi or SASL
                   GSSAPI, which need none
While ldap3 is imported, each is a stand-in that does what the real one does for ceo: `conn.extend`
imports the real operations when first used (doctor's who-am-i), `Tls(...)` imports the real TLS
and `isinstance` checks against it, and ldap3's log calls are the no-ops they are when its logging
is off. The stand-ins then leave sys.modules, so an ordinary `import ldap3.extend` (or .core.tls)
later gets the real module. If ldap3 ever imports a name a stand-in lacks, the import is made again
the ordinary way: slower, never wrong.
"""

from __future__ import annotations

import importlib
import sys


def ldap3():
    if "ldap3" in sys.modules:
        return sys.modules["ldap3"]
    stand_ins = {"ldap3.extend": _extend(), "ldap3.utils.log": _log(), "ldap3.core.tls": _tls()}
    sys.modules.update(stand_ins)
    try:
        import ldap3
        return ldap3
    except ImportError:
        for name in [m for m in sys.modules if m == "ldap3" or m.startswith("ldap3.")]:
            del sys.modules[name]
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    import ldap3
    return ldap3


def _module(name: str):
    module = type(sys)(name)
    module.__doc__ = f"ceo's stand-in for {name} while ldap3 is imported (see ceo/services/ldap3_lean.py)"
    return module


def _extend():
    module = _module("ldap3.extend")

    class ExtendedOperationsRoot:
        """`conn.extend`: the real one is made (and ldap3.extend imported) on first use."""

        def __init__(self, connection):
            self._connection = connection

        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            real = importlib.import_module("ldap3.extend").ExtendedOperationsRoot(self._connection)
            vars(self).update(vars(real))  # standard, novell, microsoft: found directly from now on
            return getattr(real, name)

    module.ExtendedOperationsRoot = ExtendedOperationsRoot
    return module


def _log():
    module = _module("ldap3.utils.log")
    # ldap3.utils.log's detail levels; with its logging off (detail OFF) nothing is logged
    module.OFF, module.ERROR, module.BASIC, module.PROTOCOL, module.NETWORK, module.EXTENDED = 0, 10, 20, 30, 40, 50
    module.log_enabled = lambda detail: False
    module.log = lambda detail, message, *args: None
    module.format_ldap_message = lambda message, prefix: ""
    module.get_library_log_hide_sensitive_data = lambda: True
    return module


def _tls():
    module = _module("ldap3.core.tls")

    def real():
        return importlib.import_module("ldap3.core.tls").Tls

    class Deferred(type):
        def __call__(cls, *args, **kw):
            return real()(*args, **kw)

        def __instancecheck__(cls, obj):
            loaded = sys.modules.get("ldap3.core.tls")
            return loaded is not None and loaded is not module and isinstance(obj, loaded.Tls)

    module.Tls = Deferred("Tls", (), {"__doc__": "ldap3's Tls, imported (with ssl) when one is made"})
    return module
