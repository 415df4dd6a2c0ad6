"""Group membership: get, list, addmember, removemember, and what a group ties."""

from . import plugin  # noqa: F401
