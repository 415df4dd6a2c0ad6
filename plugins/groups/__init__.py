"""`ceo groups`: club accounts, groups and their members.

Files: `clubs.py` (club accounts: add, delete and their steps), `membership.py` (get, list,
addmember, removemember, the groups and lists a group ties, and their steps).
"""

from ceo.plugin import Plugin

plugin = Plugin("groups", "Groups and club accounts: add, get, list, addmember, removemember, delete")

from . import clubs, membership  # noqa: E402,F401  (their decorators register the verbs)
