"""The example plugin (examples/plugin, `ceo motd`): a distribution of its own in the test venv,
found through the `ceo.plugins` entry point, its verbs run by the helpers over SSH.

Checks read the message file itself (/var/lib/ceo/motd.json on the homes host: this process
is in the sandbox's mount namespace), the audit log and the SMTP sink's Maildir. Each test
starts with no message and leaves none.
"""

from __future__ import annotations

import datetime
import json
import mailbox
from pathlib import Path

import pytest
import rawhelper
from groupstate import ceo, ok, one_line

REPO = Path(__file__).resolve().parent.parent
FILE = Path("/var/lib/ceo/motd.json")  # the plugin's default `[motd] file`; the sandbox sets none


def day(n: int) -> str:
    """ceo's date plus n days (the sandbox runs on the real date)."""
    return (datetime.date.today() + datetime.timedelta(days=n)).isoformat()


@pytest.fixture
def motd(cluster):
    """No message before the test, none after it; the file's text (None: no file) on call."""
    FILE.unlink(missing_ok=True)
    yield lambda: FILE.read_text() if FILE.exists() else None
    FILE.unlink(missing_ok=True)


def put(lines, until, by="ctdalek"):
    """A message written the way the plugin writes it, without ceo."""
    FILE.parent.mkdir(parents=True, exist_ok=True)
    FILE.write_text(json.dumps({"lines": lines, "until": until, "by": by, "at": day(0)}) + "\n")
    return FILE.read_text()


def written(motd) -> dict:
    return json.loads(motd())


def audit_since(cluster, size: int) -> list[dict]:
    with open(cluster.state / "audit.jsonl", "rb") as f:
        f.seek(size)
        return [json.loads(line) for line in f if line.strip()]


def audit_size(cluster) -> int:
    path = cluster.state / "audit.jsonl"
    return path.stat().st_size if path.exists() else 0


def sink(cluster) -> set[str]:
    return set(mailbox.Maildir(cluster.state / "mail" / "sink", create=False).keys())


# --- found as a separate distribution ----------------------------------------------------------

def test_found_through_its_entry_point(cluster):
    """`ceo plugins` says where motd came from: an entry point, not the bundled plugins/."""
    proc = cluster.run(["ceo", "plugins"], "regular1")
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.split()[0] == "motd")
    assert "entry point in ceo_motd-" in line and "bundled" not in line, line
    assert "show, set, clear" in line  # the hidden steps (write, announce) are not commands
    assert not (REPO / "plugins" / "motd.py").exists()


def test_installed_as_its_own_distribution_and_up_to_date(cluster):
    """The venv holds ceo-motd's own dist-info and a copy of the module (a site's install,
    not the checkout): the same text as examples/plugin, or sandbox/setup.sh was not rerun."""
    py = REPO / ".venv" / "bin" / "python"
    proc = cluster.run([str(py), "-c", "import importlib.metadata as m, ceo_motd; d = m.distribution('ceo-motd'); "
                        "print([e.value for e in d.entry_points if e.group == 'ceo.plugins']); "
                        "print(ceo_motd.__file__)"], None)
    assert proc.returncode == 0, proc.stderr
    entry_points, where = proc.stdout.splitlines()
    assert entry_points == "['ceo_motd']"
    assert "site-packages" in where and not where.startswith(str(REPO / "examples"))
    assert Path(where).read_text() == (REPO / "examples" / "plugin" / "ceo_motd.py").read_text(), \
        "the installed example plugin is stale: run sandbox/setup.sh"


# --- through the helper, as the right users ------------------------------------------------------

def test_anyone_reads_the_message(cluster, motd):
    assert ok(ceo(cluster, "regular1", "motd", "--json")) == {"message": None}
    put(["Shells down Sunday", "for the NFS upgrade"], day(3))
    shown = ok(ceo(cluster, "regular1", "motd", "show", "--json"))["message"]
    assert shown["lines"] == ["Shells down Sunday", "for the NFS upgrade"] and shown["by"] == "ctdalek"
    human = ceo(cluster, "regular1", "motd")
    assert human.returncode == 0 and "Shells down Sunday" in human.stdout and "ctdalek" in human.stdout
    put(["Yesterday's news"], day(-1))  # past its last day: not shown
    assert ok(ceo(cluster, "regular1", "motd", "--json")) == {"message": None}


def test_syscom_sets_a_lasting_message_on_the_homes_host(cluster, motd):
    start = audit_size(cluster)
    result = ok(ceo(cluster, "ctdalek", "motd", "set", "Shells down Sunday", "for NFS", "--json"))
    assert result["message"]["lines"] == ["Shells down Sunday", "for NFS"]
    assert written(motd) == {"lines": ["Shells down Sunday", "for NFS"], "until": None, "by": "ctdalek",
                             "at": day(0)}  # the helper took the caller from sshd and sudo
    assert FILE.stat().st_uid == 0 and FILE.stat().st_mode & 0o777 == 0o644
    records = [r for r in audit_since(cluster, start) if r["plugin"] == "motd"]
    assert [(r["verb"], r["caller"], r["host"], r["outcome"]) for r in records] == \
        [("write", "ctdalek", "phosphoric-acid.csclub.internal", "done")]
    again = ceo(cluster, "ctdalek", "motd", "set", "Shells down Sunday", "for NFS")
    assert again.returncode == 0 and "already" in again.stdout  # nothing to do, said so
    assert ok(ceo(cluster, "ctdalek", "motd", "clear", "--json")) == {"message": None, "state": "changed",
                                                                     "changed": True}
    assert motd() is None


def test_members_may_not_set_or_clear(cluster, motd):
    before = put(["Meeting Friday"], day(2), by="ofstaff")
    one_line(ceo(cluster, "regular1", "motd", "set", "hello", "--until", day(1)), 3, "needs syscom")
    one_line(ceo(cluster, "regular1", "motd", "clear"), 3, "needs syscom")
    assert motd() == before


def test_office_posts_notices_only(cluster, motd):
    """The permit admits office (`[motd] editors`); the guard keeps them to notices."""
    one_line(ceo(cluster, "ofstaff", "motd", "set", "Office closed", "--until", day(8)), 3, "only syscom", day(7))
    one_line(ceo(cluster, "ofstaff", "motd", "set", "Office closed"), 3, "only syscom")
    assert motd() is None
    ok(ceo(cluster, "ofstaff", "motd", "set", "Office closed Friday", "--until", day(7), "--json"))
    assert written(motd)["by"] == "ofstaff" and written(motd)["until"] == day(7)
    ok(ceo(cluster, "ofstaff", "motd", "clear", "--json"))
    assert motd() is None
    lasting = put(["Shells down Sunday"], day(30))  # syscom's: not office's to replace or clear
    one_line(ceo(cluster, "ofstaff", "motd", "set", "Office closed", "--until", day(1)), 3, "only syscom")
    one_line(ceo(cluster, "ofstaff", "motd", "clear"), 3, "only syscom")
    assert motd() == lasting


def test_check_changes_nothing(cluster, motd):
    before = put(["Meeting Friday"], day(2))
    mtime = FILE.stat().st_mtime_ns
    proc = ceo(cluster, "ctdalek", "motd", "set", "Something else", "--json", "--check")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["check"] and [s["status"] for s in doc["steps"]] == ["would"]
    proc = ceo(cluster, "ctdalek", "motd", "clear", "--check")
    assert proc.returncode == 0 and "check mode" in proc.stdout
    assert motd() == before and FILE.stat().st_mtime_ns == mtime


def test_announce_mails_the_club(cluster, motd):
    seen = sink(cluster)
    ok(ceo(cluster, "ctdalek", "motd", "set", "Shells down Sunday", "--until", day(4), "--announce", "--json"))
    box = mailbox.Maildir(cluster.state / "mail" / "sink", create=False)
    new = [box[key] for key in sink(cluster) - seen]
    assert [(m["To"], m["From"], m["Subject"]) for m in new] == \
        [("csc-general@csclub.internal", "ctdalek <ctdalek@csclub.internal>", "Message of the day: Shells down Sunday")]
    assert "Shells down Sunday" in new[0].get_payload() and written(motd)["lines"] == ["Shells down Sunday"]


def test_a_refused_announcement_undoes_the_write(cluster, motd):
    """Two hosts: the homes host writes, the mail host refuses office's mail to the club, and the
    homes host's helper puts the old message back (its step's undo, in the same session)."""
    before, seen, start = put(["Meeting Friday"], day(2), by="ofstaff"), sink(cluster), audit_size(cluster)
    proc = ceo(cluster, "ofstaff", "motd", "set", "Office closed", "--until", day(3), "--announce")
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert "undid" in proc.stdout and "needs syscom" in proc.stderr
    assert motd() == before and sink(cluster) == seen
    records = [(r["verb"], r["outcome"]) for r in audit_since(cluster, start) if r["plugin"] == "motd"]
    assert records == [("write", "done"), ("announce", "refused"), ("write", "undone")]


# --- bad input: one line, exit 2, nothing changed ---------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["x", "--until", "2027-02-30"], ["until", "not a day"]),
    (["x", "--until", "tomorrow"], ["until", "YYYY-MM-DD"]),
    (["x", "--until", "2020-01-01"], ["until", "in the past"]),
    (["1", "2", "3", "4", "5", "6"], ["6 lines", "at most 5"]),
    (["", " "], ["empty"]),
    (["x" * 201], ["longer than 200"]),
    (["line\x1b[2Jone"], ["control character"]),
    ([], ["LINE"]),
])
def test_bad_input_is_one_line(cluster, motd, args, words):
    one_line(ceo(cluster, "ctdalek", "motd", "set", *args), 2, *words)
    assert motd() is None


def test_the_helper_checks_for_itself(connect, motd):
    """A client that skips the checks gets the same answers from the helper: the step's
    parameters are validated there, and a member's request is refused there."""
    client = connect("phosphoric-acid", "ctdalek")
    for args, words in [({"message": ["x"], "until": "2027-02-30"}, "not a day"),
                        ({"message": ["x"] * 6}, "at most 5"),
                        ({"message": ["x"], "by": "regular1"}, "unknown parameter")]:
        _, reply = rawhelper.request(client, "motd", "write", args)
        assert reply["error"]["exit"] == 2 and words in reply["error"]["message"], reply
    _, reply = rawhelper.request(connect("phosphoric-acid", "regular1"), "motd", "write",
                                 {"message": ["hello"], "until": day(1)})
    assert reply["error"]["exit"] == 3, reply
    _, reply = rawhelper.request(client, "motd", "announce", {"message": ["x"]})  # on the mail host only
    assert reply["error"]["exit"] == 2 and "mail host" in reply["error"]["message"], reply
    assert motd() is None


def test_whoami_offers_office_the_notices_for_any_message(cluster):
    """The permit admits office whatever the message: offered for all, not "your own" (which
    would make the office UI fill the message with the caller's user name)."""
    may = ok(ceo(cluster, "ofstaff", "whoami", "--json"))["may"]
    assert (may.get("motd.show"), may.get("motd.set"), may.get("motd.clear")) == ("all", "all", "all")
    may = ok(ceo(cluster, "regular1", "whoami", "--json"))["may"]
    assert may.get("motd.show") == "all" and "motd.set" not in may and "motd.clear" not in may
