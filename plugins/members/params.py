"""Parameters shared by the members verbs and their steps: declared once, validated alike."""

from ceo.plugin import Email, Flag, Int, Str, Term, Uid

Address = Email("forwarding_address", "an address to forward mail to (repeatable)", multiple=True)


def Count(help="how many terms (default 1)"):
    return Int("terms", help, min=1, max=12)


Terms = Term("term", "exact terms (repeatable), e.g. --term w2027 s2027", multiple=True)
Clubrep = Flag("clubrep", "a club rep: nonMemberTerm instead of term; no welcome, no csc-general")

# A new account: what `add` takes and its `create` step needs.
NEW_ACCOUNT = [
    Uid("uid", "the new account's user name", positional=True, label="User name"),
    # Not required here: `add` fills it from the university directory when there is one, and
    # the create step refuses an account without it.
    Str("cn", "full name (default: the university directory's)", max_length=256, label="Full name"),
    Str("given_name", "given name", max_length=128), Str("sn", "surname", max_length=128, label="Surname"),
    Str("program", "academic program (default: the university directory's)", max_length=256,
        label="Program"),
    Count("how many terms, from the current one (default 1)"), Terms, Clubrep,
]
