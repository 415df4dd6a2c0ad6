"""The office UI, driven headlessly with textual's pilot against the sandbox, as office staff,
syscom and a member; every outcome is checked in LDAP and Kerberos as root.

The app runs in this process with the user's ticket (the `as_user` fixture), exactly as
`ceo` on a terminal would run it: the same Desk, runner and sessions.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest
import secretwatch
from test_members_manage import Account, Directory, ceo, getprinc, kinit, ok_doc, remove_account
from test_university import forget

from ceo import terms as T
from ceo.config import Config, client_paths
from ceo.tui.app import CeoApp, Field, FormScreen, NewMemberScreen, RunScreen
from ceo.tui import readout
from ceo.tui.desk import Desk

pytestmark = pytest.mark.usefixtures("testkit")  # tests/plugins/testkit.py, loaded for this module

NOW = T.current()
NEXT = T.add(NOW, 1)


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


@pytest.fixture
def ui(cluster, as_user):
    """ui(user) -> (app, run(coroutine)): the UI as `user`, at 120x40, signed in."""
    def start(user, size=(120, 40)):
        as_user(user)
        path, explicit, inventory = client_paths(None, None)
        return CeoApp(Desk(Config.load(path, explicit=explicit), inventory)), size
    return start


def drive(app, size, script):
    """Run `script(pilot)` against the app once it has signed in."""
    async def main():
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.entries or app.error)
            assert app.error is None, app.error
            await script(pilot)
    asyncio.run(main())


async def until(pilot, condition, timeout=60):
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("the UI did not get there in time")
        await pilot.pause(0.05)


async def choose(pilot, label):
    """Pick a menu entry by its label, as a person would: move to it and press Enter."""
    app = pilot.app
    labels = [entry[0] for entry in app.entries]
    assert label in labels, labels
    menu = app.screen.query_one("#menu")
    index = labels.index(label)
    menu.highlighted = next(i for i, option in enumerate(menu.options) if option.id == str(index))
    await pilot.press("enter")
    await pilot.pause()


async def type_into(pilot, name, text):
    field = pilot.app.screen.query_one(f"#in-{name}")
    field.focus()
    field.value = ""
    if text:
        await pilot.press(*text)
    await pilot.pause()


async def finished(pilot) -> RunScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.finished)
    return pilot.app.screen


def sent(app) -> int:
    """Requests sent so far, over every session of the UI (each request takes an id)."""
    return sum(s.next_id for s in app.desk.run.pool.sessions.values())


def labels(app) -> list[str]:
    return [entry[0] for entry in app.entries]


# --- the new-member flow -----------------------------------------------------------------------

def test_new_member_as_office_fills_the_directory_name_and_makes_a_real_account(cluster, ui, ldap, mailman):
    forget(cluster, ldap, "uwnew1")  # left by an interrupted run
    app, size = ui("ofstaff")
    seen = {}

    async def script(pilot):
        await choose(pilot, "New member")
        assert isinstance(app.screen, NewMemberScreen)
        await type_into(pilot, "uid", "uwnew1")
        await pilot.press("enter")  # Next: the directory is asked for the name and program
        await until(pilot, lambda: app.screen.page == 1)
        fields = {f.param.name: f.text for f in app.screen.query(Field)}
        seen["filled"] = (fields["cn"], fields["given_name"], fields["sn"], fields["program"])
        await pilot.click("#next")
        await pilot.click("#next")
        await until(pilot, lambda: app.screen.page == 3)
        await pilot.click("#create")
        screen = await finished(pilot)
        seen["outcome"] = screen.outcome
        seen["panel"] = str(screen.query_one("#password").render())
        seen["shown"] = str(screen.query_one("#outcome").render())
        seen["steps"] = [line.text for line in screen.query_one("#steps").lines]
    try:
        drive(app, size, script)
        assert seen["filled"] == ("Ada Lovelace", "Ada", "Lovelace", "MAT/Mathematics Computer Science")
        kind, result = seen["outcome"]
        assert kind == "ok", result
        entry = ldap.user("uwnew1")
        assert (entry["cn"], entry["program"], entry["term"]) == (
            ["Ada Lovelace"], ["MAT/Mathematics Computer Science"], [NOW])
        assert "uwnew1@CSCLUB.INTERNAL" in getprinc("uwnew1")
        password = result["password"]
        secretwatch.shown(password, "the office UI")  # its one place: the secrets check looks elsewhere
        assert password in seen["panel"] and readout.spelled(password)[0] in seen["panel"], seen["panel"]
        # the outcome is the CLI's panel, all of it but the password (read out above, once)
        assert "uwnew1: a new member" in seen["shown"] and password not in seen["shown"], seen["shown"]
        assert re.search(rf"User number +{entry['uidNumber'][0]}\b", seen["shown"]), seen["shown"]
        assert any("made /users/uwnew1" in s for s in seen["steps"]), seen["steps"]  # the steps streamed in
        proc = kinit("uwnew1", password, cluster.state / "ccache" / "tui-uwnew1", new="Tui-chosen-9")
        assert proc.returncode == 0, proc.output  # the password shown is the principal's
    finally:
        kind, result = seen.get("outcome") or (None, None)
        number = result.get("uidNumber") if kind == "ok" else None
        if ldap.user("uwnew1") is not None:
            problems = remove_account(cluster, ldap, mailman, Account("uwnew1", number, None))
            assert not problems, problems
        forget(cluster, ldap, "uwnew1")


def test_a_bad_user_name_is_shown_beside_its_field_and_nothing_is_sent(cluster, ui):
    app, size = ui("ofstaff")
    seen = {}

    async def script(pilot):
        await choose(pilot, "New member")
        before = sent(app)
        await type_into(pilot, "uid", "[b]Bad*)(uid=*")  # markup and an LDAP filter: both shown as typed
        await pilot.press("enter")
        await pilot.pause(0.3)
        seen["page"] = app.screen.page
        seen["error"] = str(app.screen.query_one("#err-uid").render())
        seen["sent"] = sent(app) - before
    drive(app, size, script)
    assert seen["page"] == 0
    assert seen["error"].startswith("uid: '[b]Bad*)(uid=*' is not a user name"), seen["error"]
    assert seen["sent"] == 0


def test_a_malformed_term_in_a_renewal_form_is_refused_before_sending(cluster, ui):
    app, size = ui("ofstaff")
    seen = {}

    async def script(pilot):
        await choose(pilot, "Renew membership")
        assert isinstance(app.screen, FormScreen)
        before = sent(app)
        await type_into(pilot, "uid", "regular2")
        await type_into(pilot, "term", "x2027")
        await pilot.click("#run")
        await pilot.pause(0.3)
        seen["error"] = str(app.screen.query_one("#err-term").render())
        seen["screen"] = type(app.screen).__name__
        seen["sent"] = sent(app) - before
    drive(app, size, script)
    assert seen["error"] == "term: 'x2027' is not a term: w, s or f and a four-digit year, e.g. w2027"
    assert seen["screen"] == "FormScreen" and seen["sent"] == 0


# --- a renewal -----------------------------------------------------------------------------------

@pytest.fixture
def account(cluster, ldap, mailman):
    uid = f"t{uuid.uuid4().hex[:8]}"
    made = ok_doc(ceo(cluster, "ctdalek", "add", uid, "--cn", "Tui Renewal", "--no-welcome", "--no-subscribe",
                      "--json"))
    yield uid
    problems = remove_account(cluster, ldap, mailman, Account(uid, made["uidNumber"], made["password"]))
    assert not problems, problems


def test_renewal_as_office_adds_the_term(cluster, ui, ldap, account):
    app, size = ui("ofstaff")
    seen = {}

    async def script(pilot):
        await choose(pilot, "Renew membership")
        await type_into(pilot, "uid", account)
        await type_into(pilot, "term", NEXT)
        await pilot.click("#preview")  # the preview changes nothing
        seen["preview"] = (await finished(pilot)).outcome
        seen["after_preview"] = sorted(ldap.user(account)["term"])
        await pilot.press("escape")  # back to the menu
        await until(pilot, lambda: not isinstance(app.screen, RunScreen))
        await choose(pilot, "Renew membership")
        await type_into(pilot, "uid", account)
        await type_into(pilot, "term", NEXT)
        await pilot.click("#run")
        seen["run"] = (await finished(pilot)).outcome
    drive(app, size, script)
    assert seen["preview"][0] == "ok", seen["preview"]
    assert seen["after_preview"] == [NOW]
    assert seen["run"][0] == "ok", seen["run"]
    assert sorted(ldap.user(account)["term"], key=T.ordinal) == [NOW, NEXT]


# --- menus that fit the caller ---------------------------------------------------------------

STAFF_ONLY = ["New member", "Renew membership", "New club rep", "Renew club rep", "Search members"]
SYSCOM_ONLY = ["Reset a password", "ceo groups add", "ceo positions set", "ceo members delete",
               "ceo members expire"]


def test_a_member_is_offered_only_what_they_may_do(cluster, ui):
    app, size = ui("regular1")

    async def script(pilot):
        pass
    drive(app, size, script)
    shown = labels(app)
    assert "Look up a member" in shown and "Change shell or forwarding" in shown, shown
    assert not set(STAFF_ONLY + SYSCOM_ONLY) & set(shown), shown
    # What the menu offers is what the helpers would let them run: each hidden verb is refused.
    refused = ceo(cluster, "regular1", "renew", "regular1", "--term", NEXT, "--check")
    assert refused.returncode == 3, refused.stderr


def test_office_is_not_offered_syscom_actions_and_syscom_is(cluster, ui):
    office, size = ui("ofstaff")
    drive(office, size, lambda pilot: asyncio.sleep(0))
    assert set(STAFF_ONLY) <= set(labels(office)) and not set(SYSCOM_ONLY) & set(labels(office))
    syscom, size = ui("ctdalek")
    drive(syscom, size, lambda pilot: asyncio.sleep(0))
    assert set(STAFF_ONLY + SYSCOM_ONLY) <= set(labels(syscom)), labels(syscom)


def test_a_self_only_action_starts_with_the_callers_own_name(cluster, ui):
    app, size = ui("regular1")
    seen = {}

    async def script(pilot):
        await choose(pilot, "Change shell or forwarding")
        seen["uid"] = app.screen.query_one("#in-uid").value
    drive(app, size, script)
    assert seen["uid"] == "regular1"


# --- results, confirmations, hosts ------------------------------------------------------------

def test_a_refusal_from_the_helper_is_one_line_on_the_result_screen(cluster, ui):
    app, size = ui("ofstaff")  # office may not change a syscom member's forwarding (a guard)
    seen = {}

    async def script(pilot):
        await choose(pilot, "Change shell or forwarding")
        await type_into(pilot, "uid", "ctdalek")
        await type_into(pilot, "forwarding_address", "elsewhere@example.org")
        await pilot.click("#run")
        seen["outcome"] = (await finished(pilot)).outcome
    drive(app, size, script)
    kind, message = seen["outcome"]
    assert kind == "error" and "\n" not in message and "ctdalek" in message, message


def test_a_host_that_goes_away_is_reported_and_the_next_action_reconnects(cluster, ui):
    app, size = ui("ofstaff")
    seen = {}

    async def script(pilot):
        await choose(pilot, "ceo lists list")
        await pilot.click("#run")
        assert (await finished(pilot)).outcome[0] == "ok"
        mail = next(name for name in app.desk.run.pool.sessions if name.startswith("mail"))
        session = app.desk.run.pool.sessions[mail]
        session.client.get_transport().sock.close()  # the connection is cut under the session
        await until(pilot, lambda: (app.desk.prune(), dict(app.desk.status())[mail] == "lost")[1], timeout=20)
        app.refresh_status()
        seen["status"] = str(app.screen.query_one("#status").render())
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RunScreen))
        await choose(pilot, "ceo lists list")
        await pilot.click("#run")
        seen["again"] = (await finished(pilot)).outcome[0]
        seen["after"] = dict(app.desk.status())[mail]
    drive(app, size, script)
    assert "lost" in seen["status"], seen["status"]
    assert seen["again"] == "ok" and seen["after"] == "up"


# --- in a terminal -------------------------------------------------------------------------------

def test_ceo_alone_on_a_terminal_opens_the_menu_and_q_quits(cluster):
    """The real command in a pseudo-terminal: signs in, draws the desk's menu, quits on `q`."""
    import os
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(cluster.env("ofstaff"), TERM="xterm-256color", COLUMNS="80", LINES="24")
        os.execvp("ceo", ["ceo"])
    seen, start, status = b"", time.monotonic(), None
    try:
        while b"Renew membership" not in seen and time.monotonic() - start < 60:
            if select.select([fd], [], [], 0.5)[0]:
                seen += os.read(fd, 65536)
        assert b"Renew membership" in seen, seen[-500:]
        os.write(fd, b"q")
        while time.monotonic() - start < 90:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
                break
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    pass
    finally:
        if status is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert status is not None and os.waitstatus_to_exitcode(status) == 0, seen[-500:]
    assert b"Traceback" not in seen


def test_a_confirmation_answered_no_sends_nothing_and_yes_runs_it(cluster, ui, testkit):
    app, size = ui("ofstaff")
    seen = {}

    async def script(pilot):
        await choose(pilot, "ceo testkit confirmed")
        await type_into(pilot, "name", "club1")
        before = sent(app)
        await pilot.click("#run")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
        seen["question"] = str(app.screen.query_one("Static").render())
        await pilot.click("#no")
        await pilot.pause(0.2)
        seen["after_no"] = (type(app.screen).__name__, sent(app) - before)
        await pilot.click("#run")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
        await pilot.click("#yes")
        seen["after_yes"] = (await finished(pilot)).outcome
    drive(app, size, script)
    assert seen["question"] == "Really do nothing to club1?"
    assert seen["after_no"] == ("FormScreen", 0)
    assert seen["after_yes"] == ("ok", {"name": "club1"})


def test_syscom_resets_a_password_and_the_one_shown_is_the_principals(cluster, ui, account):
    app, size = ui("ctdalek")
    seen = {}

    async def script(pilot):
        await choose(pilot, "Reset a password")
        await type_into(pilot, "uid", account)
        await pilot.click("#run")
        screen = await finished(pilot)
        seen["outcome"] = screen.outcome
        seen["panel"] = str(screen.query_one("#password").render())
        seen["shown"] = str(screen.query_one("#outcome").render())
    drive(app, size, script)
    kind, result = seen["outcome"]
    assert kind == "ok", result
    password = result["password"]
    secretwatch.shown(password, "the office UI")
    assert password in seen["panel"] and password not in seen["shown"]  # once, in the read-out only
    proc = kinit(account, password, cluster.state / "ccache" / f"tui-{account}", new="Tui-chosen-9")
    assert proc.returncode == 0, proc.output


def test_without_a_ticket_the_ui_says_so_in_one_line_and_signs_in_again_on_r(cluster, ui, as_user):
    app, size = ui(None)  # no ticket at all
    seen = {}

    async def script(pilot):
        await until(pilot, lambda: app.error is not None)
        seen["error"] = app.error
        as_user("ofstaff")  # the person runs kinit in another terminal, then presses r
        await pilot.press("r")
        await until(pilot, lambda: app.entries)
        seen["entries"] = labels(app)

    async def main():
        async with app.run_test(size=size) as pilot:
            await script(pilot)
    asyncio.run(main())
    assert "ticket" in seen["error"] and "\n" not in seen["error"], seen["error"]
    assert "New member" in seen["entries"]
