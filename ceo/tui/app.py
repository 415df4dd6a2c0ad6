"""The screens of the office UI, built with textual: menu, form, new-member pages, result.

Actions run in a worker thread (SSH is blocking); their step events are posted back to the
screen as they stream from the helpers. Nothing here decides who may do what: the menu shows
what `whoami` (the policy module) offers, and every request is authorized by its helper.
"""

from __future__ import annotations

import io

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (Button, Checkbox, ContentSwitcher, Footer, Header, Input, OptionList, RichLog,
                             Select, Static)
from textual.widgets.option_list import Option

from ..errors import NotFound
from ..output import MARKS, format_value, plain, safe
from . import forms, readout
from .desk import failure

CSS = """
Screen { layout: vertical; }
#who { padding: 0 1; color: $text-muted; }
#status { height: 1; padding: 0 1; background: $panel; }
#menu { height: 1fr; }
.field { height: auto; margin: 0 1 1 1; }
.field Input, .field Select { margin-left: 2; }
.field Static.error { color: $error; height: auto; margin-left: 2; }
ContentSwitcher { height: 1fr; }
#form-error { color: $error; margin: 0 1; height: auto; }
#buttons { height: auto; margin: 1 1; }
#buttons Button { margin-right: 2; }
#steps { height: 1fr; max-height: 10; min-height: 4; border: round $panel; }
#outcome-box { height: 1fr; }
#outcome { height: auto; margin: 0 1; }
#password { border: heavy $success; padding: 0 1; margin: 0 1; height: auto; }
#done-bar { height: 1; margin: 0 1; }
#note { margin: 0 1; color: $text-muted; height: auto; }
.page-title { text-style: bold; padding: 0 1; height: 1; }
ConfirmScreen { align: center middle; }
#dialog { width: 70; height: auto; border: thick $warning; padding: 1 2; background: $surface; }
"""


def words(text) -> Text:
    """Text for a widget: never read as markup, control characters made visible (values come
    from users, LDAP and the university's directory)."""
    return Text(plain(text))


class Page(Screen):
    """A screen with the status bar kept current."""

    def on_screen_resume(self):
        self.app.refresh_status()


class Field(Vertical):
    """One parameter: its label and help, its input, and the error beside it."""

    DEFAULT_CSS = "Field { height: auto; }"

    def __init__(self, param, value=None):
        super().__init__(classes="field", id=f"field-{param.name}")
        self.param, self.initial = param, value

    def compose(self) -> ComposeResult:
        p = self.param
        title = Text("" if p.kind == "flag" else forms.label(p), style="bold")
        if forms.hint(p):
            title.append(f"{'  ' if title else ''}{plain(forms.hint(p))}", style="dim")
        yield Static(title, classes="label")
        if p.kind == "flag":
            yield Checkbox(forms.label(p), value=bool(self.initial), id=f"in-{p.name}", compact=True)
        elif p.choices:
            yield Select([(c, c) for c in p.choices], allow_blank=not p.required, id=f"in-{p.name}", compact=True,
                         **({"value": self.initial} if self.initial in p.choices else {}))
        else:
            yield Input(value="" if self.initial is None else str(self.initial), password=p.secret,
                        placeholder=p.metavar or "", id=f"in-{p.name}", compact=True)
        yield Static("", classes="error", id=f"err-{p.name}")

    @property
    def text(self):
        widget = self.query_one(f"#in-{self.param.name}")
        value = widget.value
        return value if isinstance(value, (str, bool)) else None  # a select left blank

    def set_text(self, value: str):
        self.query_one(f"#in-{self.param.name}", Input).value = value

    def show_error(self, message: str | None):
        error = self.query_one(f"#err-{self.param.name}", Static)
        error.update(words(message or ""))
        error.display = bool(message)

    def on_mount(self):
        self.show_error(None)


def texts(screen) -> dict:
    return {f.param.name: f.text for f in screen.query(Field)}


def show_errors(screen, errors: dict) -> bool:
    """Put each error beside its field; True if there was any."""
    for f in screen.query(Field):
        f.show_error(errors.get(f.param.name))
    return bool(errors)


class MenuScreen(Page):
    BINDINGS = [Binding("q", "app.quit", "Quit"), Binding("r", "app.sign_in_again", "Sign in again", show=False)]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Signing in...", id="who")
        yield OptionList(id="menu")
        yield Static("", id="status")
        yield Footer()

    def fill(self, me: dict, entries: list):
        groups = ", ".join(g for g in me.get("groups", []) if g in ("syscom", "office", "exec")) or "no staff groups"
        self.query_one("#who", Static).update(words(f"{me.get('caller')} ({me.get('principal') or '-'}); {groups}"))
        menu = self.query_one("#menu", OptionList)
        menu.clear_options()
        self.entries = entries
        options, desk = [], True
        for i, (label, verb, _) in enumerate(entries):
            if desk and not label[0].isupper():  # the desk's entries end; every other verb follows
                desk = False
                options.append(Option(Text("Everything else you may do", style="bold underline"), disabled=True))
            prompt = Text(plain(label), style="bold")
            if not desk:  # a verb's summary, cut to the one line the entry has
                room = max(10, self.app.size.width - 34)
                summary = plain(verb.help)
                prompt = Text(f"{plain(label):26} ")
                prompt.append(summary if len(summary) <= room else summary[:room - 1] + "…", style="dim")
            options.append(Option(prompt, id=str(i)))
        menu.add_options(options)
        menu.highlighted = 0
        menu.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected):
        label, verb, presets = self.entries[int(event.option.id)]
        if verb.qualname == "members.add":
            self.app.push_screen(NewMemberScreen(label, verb, presets))
        else:
            self.app.push_screen(FormScreen(label, verb, presets))


class FormScreen(Page):
    """A verb's form: its parameters, Run (and Preview where the verb has a check mode)."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, label, verb, presets):
        super().__init__()
        self.label, self.verb, self.presets = label, verb, presets

    def initial(self, p):
        me = self.app.desk.me
        if p.name == self.verb.target and me.get("may", {}).get(self.verb.qualname) == "self":
            return me.get("caller")  # what they may do is to their own account
        return p.default if p.kind != "flag" and not p.multiple else None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(words(f"{self.label}: {self.verb.help}"), classes="page-title")
        with VerticalScroll():
            for p in forms.fields(self.verb, self.presets):
                yield Field(p, self.initial(p))
            yield Static("", id="form-error")
            with Horizontal(id="buttons"):
                yield Button("Run", variant="primary", id="run")
                if self.verb.check and (self.verb.mutating or self.verb.composite):
                    yield Button("Preview", id="preview")
                yield Button("Back", id="back")
        yield Static("", id="status")
        yield Footer()

    def on_input_submitted(self, event):
        self.submit(check=False)

    def on_button_pressed(self, event: Button.Pressed):
        if event.button.id == "back":
            self.app.pop_screen()
        elif event.button.id in ("run", "preview"):
            self.submit(check=event.button.id == "preview")

    def submit(self, check: bool):
        args, errors = forms.collect(self.verb, self.presets, texts(self))
        if show_errors(self, errors):
            self.query_one("#form-error", Static).update("Fix the fields marked above; nothing was sent.")
            return
        self.query_one("#form-error", Static).update("")
        self.app.act(self.label, self.verb, args, check)


class NewMemberScreen(Page):
    """New member (or club rep), in pages: user name -> name and program from the university
    directory -> terms -> confirm. The fields are `members add`'s own parameters."""

    BINDINGS = [Binding("escape", "back", "Back")]
    PAGES = [("User name", ["uid"]), ("Name and program", ["cn", "given_name", "sn", "program"]),
             ("Terms and mail", ["terms", "term", "forwarding_address", "no_welcome", "no_subscribe"])]

    def __init__(self, label, verb, presets):
        super().__init__()
        self.label, self.verb, self.presets = label, verb, presets
        self.page = 0

    def compose(self) -> ComposeResult:
        params = {p.name: p for p in forms.fields(self.verb, self.presets)}
        yield Header()
        yield Static(words(self.label), classes="page-title", id="page-title")
        with ContentSwitcher(initial="page-0"):
            for i, (_, names) in enumerate(self.PAGES):
                with VerticalScroll(id=f"page-{i}"):
                    for name in names:
                        if name in params:
                            yield Field(params[name], 1 if name == "terms" else None)
                    if i == 1:
                        yield Static("", id="note")
            with VerticalScroll(id=f"page-{len(self.PAGES)}"):
                yield Static("", id="summary")
        yield Static("", id="form-error")
        with Horizontal(id="buttons"):
            yield Button("Back", id="back")
            yield Button("Next", variant="primary", id="next")
            yield Button("Preview", id="preview")
            yield Button("Create", variant="success", id="create")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self):
        self.show(0)

    def show(self, page: int):
        self.page = page
        self.query_one(ContentSwitcher).current = f"page-{page}"
        last = page == len(self.PAGES)
        title = "Confirm" if last else self.PAGES[page][0]
        self.query_one("#page-title", Static).update(words(f"{self.label}: {title} ({page + 1}/{len(self.PAGES) + 1})"))
        self.query_one("#next", Button).display = not last
        self.query_one("#preview", Button).display = last
        self.query_one("#create", Button).display = last
        fields = list(self.query_one(f"#page-{page}").query(Input))
        (fields[0] if fields else self.query_one("#create" if last else "#next", Button)).focus()

    def page_errors(self, page: int) -> dict:
        names = self.PAGES[page][1]
        _, errors = forms.collect(self.verb, self.presets, texts(self))
        errors = {k: v for k, v in errors.items() if k in names}
        for f in self.query(Field):
            if f.param.name in names:
                f.show_error(errors.get(f.param.name))
        return errors

    def action_back(self):
        if self.page == 0:
            self.app.pop_screen()
        else:
            self.show(self.page - 1)

    def on_input_submitted(self, event):
        if self.page < len(self.PAGES):
            self.next()

    def on_button_pressed(self, event: Button.Pressed):
        {"back": self.action_back, "next": self.next, "preview": lambda: self.finish(True),
         "create": lambda: self.finish(False)}[event.button.id]()

    def next(self):
        if self.page_errors(self.page):
            self.query_one("#form-error", Static).update("Fix the fields marked above; nothing was sent.")
            return
        self.query_one("#form-error", Static).update("")
        if self.page == 0:
            self.lookup(texts(self)["uid"].strip())
        elif self.page + 1 == len(self.PAGES):
            self.summarize()
        else:
            self.show(self.page + 1)

    @work(thread=True, exclusive=True, group="lookup")
    def lookup(self, uid: str):
        """Fill the name and program from the university directory (`members lookup`)."""
        desk = self.app.desk
        try:
            person, note = desk.perform(desk.verb("members.lookup"), {"uid": uid}), "From the university directory."
        except NotFound:
            person, note = {}, f"{uid} is not in the university directory: type the name and program."
        except Exception as err:  # no directory, or it is down: the desk types the name
            person, note = {}, f"The university directory could not be read ({failure(err)}): type the name."
        self.app.call_from_thread(self.filled, person, note)

    def filled(self, person: dict, note: str):
        for f in self.query(Field):
            name = f.param.name
            if name in ("cn", "given_name", "sn", "program") and not (f.text or "").strip():
                f.set_text(person.get(name) or "")
        self.query_one("#note", Static).update(words(note))
        self.app.refresh_status()
        self.show(1)

    def summarize(self):
        args, _ = forms.collect(self.verb, self.presets, texts(self))
        kind = "club rep" if args.get("clubrep") else "member"
        lines = [f"Add the {kind} {args['uid']}:"]
        for p in forms.fields(self.verb, self.presets):
            if p.name != "uid" and args.get(p.name) not in (None, [], False):
                value = args[p.name]
                lines.append(f"  {forms.label(p).rstrip(' *')}: {' '.join(value) if isinstance(value, list) else value}")
        self.query_one("#summary", Static).update(Text("\n".join(plain(line) for line in lines)))
        self.show(len(self.PAGES))

    def finish(self, check: bool):
        args, errors = forms.collect(self.verb, self.presets, texts(self))
        if errors:
            show_errors(self, errors)
            self.show(min(i for i, (_, names) in enumerate(self.PAGES) if set(names) & set(errors)))
            return
        self.app.act(self.label, self.verb, args, check)


class ConfirmScreen(ModalScreen[bool]):
    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(words(self.question))
            with Horizontal(id="buttons"):
                yield Button("Yes, do it", variant="error", id="yes")
                yield Button("No", variant="primary", id="no")

    def on_mount(self):
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed):
        self.dismiss(event.button.id == "yes")


class RunScreen(Page):
    """An action running: its steps as they stream in, then the outcome and any password."""

    BINDINGS = [Binding("escape", "done", "Done")]

    def __init__(self, label, verb, args, check):
        super().__init__()
        self.label, self.verb, self.args, self.check = label, verb, args, check
        self.finished = False
        self.outcome = None  # ("ok", result) or ("error", message): for tests and the screen

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(words(f"{self.label}{' (preview: nothing will change)' if self.check else ''}"),
                     classes="page-title")
        yield RichLog(id="steps", wrap=True)
        yield Static("", id="password")
        with VerticalScroll(id="outcome-box"):
            yield Static("Working...", id="outcome")
        with Horizontal(id="done-bar"):
            yield Button("Done", variant="primary", id="done", disabled=True, compact=True)
        yield Static("", id="status")
        yield Footer()

    def on_mount(self):
        self.query_one("#password").display = False
        self.execute()

    @work(thread=True, exclusive=True, group="action")
    def execute(self):
        desk = self.app.desk

        def on_event(where, event):
            if "step" in event:
                line = Text.from_markup(MARKS.get(event.get("status"), "·"))
                line.append(f" {plain(event.get('message', event['step']))}")
                self.app.call_from_thread(self.query_one("#steps", RichLog).write, line)
        try:
            result = desk.perform(self.verb, self.args, check=self.check, on_event=on_event)
            outcome = ("ok", result)
        except Exception as err:
            outcome = ("error", failure(err))
        self.app.call_from_thread(self.show_outcome, outcome)

    def show_outcome(self, outcome):
        self.outcome, self.finished = outcome, True
        kind, value = outcome
        box = self.query_one("#outcome", Static)
        if kind == "error":
            box.update(Text(f"✗ {plain(value)}", style="bold red"))
        else:
            result = dict(value) if isinstance(value, dict) else value
            password = result.pop("password", None) if isinstance(result, dict) else None
            box.update(render(self.verb, result, self.check))
            if password:
                self.show_password(result, password)
        done = self.query_one("#done", Button)
        done.disabled = False
        done.focus()
        self.app.refresh_status()

    def show_password(self, result, password):
        who = result.get("principal") or result.get("user") or result.get("uid") or ""
        text = Text(f"Password for {who}" if who else "Password", style="bold")
        text.append(" (shown once, kept nowhere" + ("; changed at first login" if "principal" in result else "")
                    + "):\n", style="dim")
        text.append(f"  {password}\n", style="bold reverse")
        text.append("\n".join(f"  {line}" for line in readout.spelled(password)))
        panel = self.query_one("#password", Static)
        panel.update(text)
        panel.display = True

    def action_done(self):
        if self.finished:
            self.app.back_to_menu()

    def on_button_pressed(self, event: Button.Pressed):
        self.action_done()


def render(verb, result, check: bool):
    """The result as the CLI shows it (the verb's renderer, else a plain listing). A password
    was taken out of the result (shown apart, spelled out): renderers show the rest."""
    if result in (None, {}, []):
        text = Text("✓ done" if not check else "~ nothing was changed (preview)")
        return text
    buf = io.StringIO()
    from rich.console import Console
    console = Console(file=buf, force_terminal=True, color_system="truecolor", width=100, highlight=False, emoji=False)
    if verb.render is not None:
        verb.render(console, result)
    else:
        console.print(format_value(result))
    if check:
        console.print("[cyan](preview: nothing was changed)[/]")
    return Text.from_ansi(buf.getvalue())


class CeoApp(App):
    TITLE = "ceo"
    SUB_TITLE = "CSC Electronic Office"
    CSS = CSS
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False)]

    def __init__(self, desk):
        super().__init__()
        self.desk = desk
        self.entries: list = []
        self.error: str | None = None

    def on_mount(self):
        self.push_screen(MenuScreen())
        self.sign_in()
        self.set_interval(5, self.refresh_status)  # a host that went away shows before the next action

    @work(thread=True, exclusive=True, group="login")
    def sign_in(self):
        try:
            me = self.desk.login()
            entries = self.desk.menu()
        except Exception as err:
            self.call_from_thread(self.failed_login, failure(err))
            return
        self.call_from_thread(self.logged_in, me, entries)

    def logged_in(self, me, entries):
        self.entries = entries
        self.screen.fill(me, entries)
        self.refresh_status()

    def failed_login(self, message):
        self.error = message
        self.screen.query_one("#who", Static).update(
            Text(f"✗ {plain(message)}  (r: sign in again, q: quit)", style="bold red"))
        self.refresh_status()

    def action_sign_in_again(self):
        """After a failed sign-in (no ticket yet, a host down): kinit elsewhere, then r."""
        if self.error is not None:
            self.error = None
            self.screen.query_one("#who", Static).update("Signing in...")
            self.sign_in()

    def act(self, label, verb, args, check):
        """Run an action (after its confirmation, if it has one and is not a preview)."""
        if verb.confirm and not check:
            def answered(yes):
                if yes:
                    self.push_screen(RunScreen(label, verb, args, check))
            self.push_screen(ConfirmScreen(verb.confirm.format(**{k: args.get(k) for k in _fields(verb.confirm)})),
                             answered)
            return
        self.push_screen(RunScreen(label, verb, args, check))

    def back_to_menu(self):
        while len(self.screen_stack) > 2:  # the default screen, then the menu
            self.pop_screen()

    def refresh_status(self):
        self.desk.prune()
        marks = {"up": "[green]●[/]", "lost": "[red]✗ lost, reconnects on the next action[/]", "idle": "[dim]○[/]"}
        parts = [f"{safe(name.split('.')[0])} {marks[state]}" for name, state in self.desk.status()]
        who = self.desk.me.get("caller")
        text = (f"{safe(who)}  " if who else "") + "  ".join(parts)
        for status in self.screen.query("#status"):
            status.update(Text.from_markup(text))

    def on_unmount(self):
        self.desk.close()


def _fields(template: str) -> list[str]:
    import string
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]
