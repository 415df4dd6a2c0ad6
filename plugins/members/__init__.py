"""`ceo members`: add, get, list, search, modify, renew, convert, unrenew, pwreset, delete
members and club reps; expire and remind them (cron); lookup and updateprograms (the
university's directory).

A member added by ceo is a real account or nothing: an LDAP entry and personal group, a
Kerberos principal, a home directory from the skeleton, mail forwarding, then (best effort)
a welcome email, a subscription to csc-general and an announcement to the ceo list. The
public verbs are run by the client as steps on the hosts of each role; the hidden ones are
those steps, each undone by its own helper if a later step fails.

Files: `params.py` (parameters shared by a verb and its steps), `commands.py` (the verbs
users type), `steps.py` (the verbs behind them, run by the helpers), `csvrenew.py`
(`renew --csv`), `fixes.py` (convert, unrenew, search: the desk's fixes), `maintenance.py`
(expire, remind), `university.py` (the university's directory), `accounts.py` (what the
steps share), `messages.py` (the emails).
"""

from ceo.plugin import Plugin

plugin = Plugin("members", "Members and club reps: add, get, list, search, modify, renew, convert, pwreset, delete, expire, remind")

from . import commands, fixes, maintenance, steps, university  # noqa: E402,F401  (their decorators register the verbs)
