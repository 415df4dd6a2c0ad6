"""`ceo whoami`: who the helpers take you for, your groups, and what ceo lets you do.

The terminal UI builds its menus from this answer, so a menu never offers what the policy
would refuse; every request is still authorized on its own when it is made.
"""

from __future__ import annotations

from ceo import policy
from ceo.output import safe
from ceo.plugin import Plugin

plugin = Plugin("whoami", "Who you are to ceo, your groups, and what you may do", default_verb="show")

HOW = {"all": "anyone", "self": "your own", "some": "some (a rule decides)"}


@plugin.verb("show", "Your user name, principal, groups, membership, and the verbs you may use",
             example=("ceo whoami",
                      "ceo whoami show --json"),
             role="ldap", allow=("any",), render=lambda c, r: _render(c, r))
def show(ctx):
    may = {}
    for name, p in sorted(ctx.session.registry.everything().plugins.items()):  # the helper loads lazily
        for verb in p.verbs.values():
            how = None if verb.hidden else policy.offered(ctx, verb)
            if how:
                may[verb.qualname] = how
    return {"caller": ctx.caller, "principal": ctx.session.principal, "groups": sorted(ctx.groups),
            "member": policy.is_current_member(ctx, ctx.caller), "may": may}


def _render(console, r):
    console.print(f"[bold]{safe(r['caller'])}[/] ({safe(r['principal'] or 'no principal')})"
                  f"{', a current member' if r['member'] else ''}")
    console.print(f"groups: {safe(', '.join(r['groups']) or '-')}")
    from rich.table import Table
    table = Table(show_edge=False, header_style="bold")
    table.add_column("you may run")
    table.add_column("for")
    for qualname, how in r["may"].items():
        table.add_row(f"ceo {qualname.replace('.', ' ')}", HOW.get(how, how))
    console.print(table)
