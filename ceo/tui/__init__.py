"""The office's terminal UI (`ceo` with no arguments on a terminal, or `ceo tui`).

It is another face of the same verbs: its menus come from the helper's `whoami` answer (the
policy module), its forms from the verbs' declared parameters, and every action goes through
the runner the CLI uses. No operation exists only here.

  desk.py     the UI's client: one session per host for the UI's life, actions, host status
  forms.py    a verb's parameters as form fields, validated as the helper validates them
  readout.py  a password spelled out to be read aloud
  app.py      the textual screens: menu, form, new-member pages, result
"""


def main(config, inventory_path, keytab=None) -> int:
    from .desk import Desk
    desk = Desk(config, inventory_path, keytab)
    desk.sign_in_early()  # the SSH sign-in goes on while textual is imported (about as long)
    from .app import CeoApp
    app = CeoApp(desk)
    app.run()
    return app.return_code or 0
