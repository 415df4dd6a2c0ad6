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


# `members remind`: the default of `[maintenance] remind_subject` and `remind_template` (the site
# says how and where to renew in its config). Fields: {cn} {uid} {term} {previous} {domain}
# {lock_date} (the day `members expire` locks accounts not renewed by then).
REMIND_SUBJECT = "Your Computer Science Club membership: renew for {term}"
REMIND = """Hello {cn},

Your membership of the Computer Science Club ({uid}) was for {previous}; you have not renewed
for {term} yet. Accounts not renewed by {lock_date} are locked until they are.

To renew, come to the club office with your student card and the term's fee; the office
staff run the renewal on the spot and your account stays as it is.

Questions: the office, or exec@{domain}.

The Computer Science Club
"""


def remind_summary(term, host, reminded, failed, earlier, unconfirmed) -> str:
    lines = [f"ceo members remind on {host}, term {term}:",
             f"  reminded now: {len(reminded)}", f"  failed (retried next run): {len(failed)}",
             f"  reminded in earlier runs: {earlier}",
             f"  unconfirmed (a run died while emailing them; not sent again): {len(unconfirmed)}", ""]
    lines += [f"reminded {uid}" for uid in reminded] + [f"FAILED {uid}: {why}" for uid, why in failed]
    lines += [f"UNCONFIRMED {uid}" for uid in unconfirmed]
    return "\n".join(lines) + "\n\nYour Friend,\nceo\n"
