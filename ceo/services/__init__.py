"""Services: one module per backend, the only code that talks to it.

directory (LDAP), kadmin (Kerberos admin), mail (SMTP). Plugins reach them through the
helper's `ctx`; the framework (`ceo/`) knows only what authorization needs from LDAP.
"""
