"""`ceo members renew --csv FILE`: the office's spreadsheet of renewals, in one pass.

1. Read and validate the whole file before writing anything: a `uid` column, known uids
   (one lookup for all of them), well-formed terms, no uid twice, no empty rows.
2. Work out each row against what LDAP holds: rows already there are unchanged, not sent.
3. Stream the rest through the one session to the ldap host (one modify per row), with
   progress; Ctrl-C or a lost connection stops cleanly, and the summary says which rows were
   done, failed and not attempted. Running the same file again finishes the rest.
"""

from __future__ import annotations

import csv
import io
import re
import sys

from ceo import terms as T
from ceo.errors import BadInput, CeoError
from ceo.output import safe

UID = re.compile(r"[a-z][a-z0-9-]{0,31}")
OUTCOMES = ("done", "unchanged", "failed", "skipped", "not attempted")


class Row:
    def __init__(self, line: int, uid: str, count: int | None, explicit: list[str] | None):
        self.line, self.uid, self.count, self.explicit = line, uid, count, explicit
        self.new: list[str] = []
        self.expire: int | None = None
        self.outcome, self.message, self.now = "not attempted", "", []


def read(path: str) -> tuple[list[Row], list[str]]:
    """The file's rows and every problem in it (`line N: ...`)."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")  # with or without a byte-order mark
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BadInput(f"{path}: line {line} is not UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, problems, seen = [], [], {}
    header, start = None, 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if header is None:
                if not any(field.strip() for field in record):
                    continue
                header = [field.strip().lower() for field in record]
                if "uid" not in header:
                    raise BadInput(f"{path}: line {line}: no `uid` column (columns: {', '.join(header) or 'none'})")
                at_uid, at_terms = header.index("uid"), header.index("terms") if "terms" in header else None
                continue
            if not any(field.strip() for field in record):
                problems.append(f"line {line}: empty row")
                continue
            uid = record[at_uid].strip() if at_uid < len(record) else ""
            spec = record[at_terms].strip() if at_terms is not None and at_terms < len(record) else ""
            problem = _row_problem(uid, spec, seen, line)
            if UID.fullmatch(uid):
                seen.setdefault(uid, line)  # a uid twice is a problem even if its first row is bad
            if problem:
                problems.append(f"line {line}: {problem}")
                continue
            count, explicit = (int(spec) if spec.isdigit() else None), (spec.split() if spec and not spec.isdigit() else None)
            rows.append(Row(line, uid, count if explicit is None else None, explicit))
    except csv.Error as exc:
        raise BadInput(f"{path}: line {reader.line_num}: {exc}") from None
    if header is None:
        raise BadInput(f"{path}: no header row (it needs a `uid` column)")
    return rows, problems


def _row_problem(uid: str, spec: str, seen: dict, line: int) -> str | None:
    if not uid:
        return "no uid"
    if not UID.fullmatch(uid):
        return f"malformed uid {uid[:40]!r}"
    if uid in seen:
        return f"uid {uid} appears twice (also line {seen[uid]})"
    if spec.isdigit():
        return None if 1 <= int(spec) <= 12 else f"terms {spec} is not 1 to 12"
    terms = spec.split()
    for t in terms:
        try:
            T.parse(t)
        except T.TermError:
            return f"malformed term {t[:20]!r} (expected a count, or terms like w2027 s2027)"
    if len(set(terms)) != len(terms):
        return f"a term is repeated in {spec!r}"
    return None


def plan(rows: list[Row], found: dict, clubrep: bool):
    """What each row adds, from what LDAP holds; rows with nothing to do are unchanged.

    A count N in the file means the N terms from the current one, not from the next
    unregistered: the file describes this term's renewals, so running it twice is harmless."""
    attr = "nonMemberTerm" if clubrep else "term"
    now = T.current()
    for row in rows:
        entry = found[row.uid]
        have = set(entry[attr])
        wanted = row.explicit or T.interval(now, row.count or 1)
        row.new = [t for t in wanted if t not in have]
        row.expire = entry["shadowExpire"]
        row.now = T.sort(have | set(row.new))
        if not row.new and row.expire is None:
            row.outcome, row.message = "unchanged", f"already has {' '.join(wanted)}"


def renew(run, path: str, *, clubrep: bool, skip_invalid: bool, receipt: str | None):
    rows, problems = read(path)
    if rows:
        found = run.call("members.renew_lookup", {"uids": [r.uid for r in rows]}, role="ldap")
        unknown = [r for r in rows if r.uid not in found]
        problems += [f"line {r.line}: unknown uid {r.uid!r}" for r in unknown]
        others = [r for r in rows if r.uid in found and not found[r.uid]["member"]]
        problems += [f"line {r.line}: {r.uid} is not a member (a club or system account)" for r in others]
        rows = [r for r in rows if r.uid in found and found[r.uid]["member"]]
    skipped = len(problems)
    if problems:
        for p in sorted(problems, key=lambda p: int(p.split()[1].rstrip(":"))):
            print(f"{path}: {p}", file=sys.stderr)
        if not skip_invalid:
            raise BadInput(f"{path}: {len(problems)} invalid row{'s' * (len(problems) != 1)}; nothing was applied "
                           "(fix them, or --skip-invalid to apply the valid rows)", problems=problems)
    plan(rows, found if rows else {}, clubrep)
    todo = [r for r in rows if r.outcome == "not attempted"]
    stopped = False
    if run.check:
        for r in todo:
            r.outcome, r.message = "would", "would " + _what(r, clubrep)
    elif todo:
        stopped = _apply(run, todo, clubrep)
    counts = {o: sum(r.outcome == o for r in rows) for o in OUTCOMES + ("would",)}
    counts["skipped"] = skipped
    if receipt:
        _write_receipt(receipt, rows, problems)
    partly = counts["failed"] or counts["skipped"] or counts["not attempted"]
    held = counts["done"] or counts["unchanged"]  # none: the run did nothing, it failed (exit 1)
    return {"rows": [{"line": r.line, "uid": r.uid, "outcome": r.outcome, "message": r.message,
                      "terms": r.now} for r in rows],
            "invalid": problems, "counts": {k: v for k, v in counts.items() if v}, "stopped": stopped,
            "check": run.check,
            "exit": (4 if held else 1) if partly else 0}


def _what(row: Row, clubrep: bool) -> str:
    parts = [f"add {'club rep ' if clubrep else ''}terms {' '.join(row.new)}"] if row.new else []
    return " and ".join(parts + (["unlock"] if row.expire is not None else []))


BATCH = 200  # rows a request; two requests in flight keep the helper busy and a stop prompt


def _apply(run, todo: list[Row], clubrep: bool) -> bool:
    """Stream the rows in batches; returns whether it stopped early (Ctrl-C, lost connection)."""
    batches = [todo[i:i + BATCH] for i in range(0, len(todo), BATCH)]
    requests = [{"uids": [r.uid for r in b], "adds": [" ".join(r.new) for r in b],
                 "expires": [-1 if r.expire is None else r.expire for r in b], "clubrep": clubrep} for b in batches]
    progress = _Progress(len(todo), run.output)

    def on_event(_session, event, index):
        row = batches[index][event["row"]]
        row.outcome, row.message = event["status"], event.get("message", "")
        progress.row(row)

    def on_reply(index, outcome):
        if isinstance(outcome, CeoError):  # the whole batch was refused
            for row in batches[index]:
                row.outcome, row.message = "failed", outcome.message
                progress.row(row)
    try:
        sent, stopped = run.stream("members.renew_rows", requests, role="ldap", on_reply=on_reply,
                                   on_event=on_event, window=2)
    except CeoError as err:  # the session broke: rows sent but not answered may or may not be done
        for row in todo:
            if row.outcome == "not attempted":
                row.message = f"connection lost ({err.message}); run the same command again"
        stopped = True
    finally:
        progress.close()
    return stopped


class _Progress:
    """A rich progress bar on a terminal; a plain line per row otherwise (logs, cron)."""

    def __init__(self, total, output):
        self.output, self.bar = output, None
        if output.as_json:
            return
        if sys.stdout.isatty():
            from rich.progress import Progress
            self.bar = Progress(console=output.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("renewing", total=total)

    def row(self, row):
        if self.bar is not None:
            self.bar.advance(self.task)
        elif not self.output.as_json:
            print(f"line {row.line} {row.uid}: {row.outcome}" + (f" ({row.message})" if row.message else ""),
                  flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def _write_receipt(path: str, rows: list[Row], problems: list[str]):
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["line", "uid", "outcome", "terms", "message"])
            for r in sorted(rows, key=lambda r: r.line):
                w.writerow([r.line, r.uid, r.outcome, " ".join(r.now), r.message])
            for p in problems:
                line, _, message = p.partition(": ")
                w.writerow([line.split()[1], "", "skipped", "", message])
    except OSError as exc:
        raise BadInput(f"cannot write the receipt {path}: {exc.strerror}") from None


def render(console, result):
    from rich.table import Table
    counts = result["counts"]
    table = Table(show_edge=False, header_style="bold")
    for outcome in OUTCOMES + ("would",):
        if counts.get(outcome):
            table.add_column(outcome, justify="right")
    table.add_row(*[str(counts[o]) for o in OUTCOMES + ("would",) if counts.get(o)])
    if result.get("check"):
        for r in result["rows"]:
            console.print(f"line {r['line']} {r['uid']}: {safe(r['message'] or r['outcome'])}")
    console.print("renewals:")
    console.print(table)
    failed = [r for r in result["rows"] if r["outcome"] == "failed"]
    for r in failed[:20]:
        console.print(f"[red]line {r['line']} {r['uid']}: {safe(r['message'])}[/]")
    if len(failed) > 20:
        console.print(f"[red]... and {len(failed) - 20} more failed rows (see --receipt)[/]")
    if result["stopped"]:
        console.print("[yellow]Stopped early: run the same command again to finish; done rows will be "
                      "unchanged.[/]")
