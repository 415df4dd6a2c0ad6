"""The emails the members verbs send."""

WELCOME = """Hello {cn},

Welcome to the Computer Science Club! Your account is {uid}.

- You have been subscribed to csc-general@{domain}, the club's general list.
- Log in with `ssh {uid}@<any club machine>` using the temporary password the office gave
  you; you will be asked to choose your own at once.
- Your web space is ~/www, served at https://{domain}/~{uid}/.
- Need a MySQL or PostgreSQL database? Run `ceo` on any club machine.

Questions: the office, or exec@{domain}; for the machines, syscom@{domain}.

The Computer Science Club
"""


def announcement(uid, cn, program, caller, failed, details) -> str:
    return (f"Name:     {cn}\nAccount:  {uid}\nProgram:  {program or '(unknown)'}\n"
            f"Added by: {caller}\n\n"
            + ("The account was NOT created:\n" + "\n".join(f"  {d}" for d in details) if failed
               else "All steps succeeded.") + "\n\nYour Friend,\nceo\n")
