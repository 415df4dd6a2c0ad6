"""The UI's pure logic: fields from declarations, checked as the helper checks them, and the
password read-out. (The screens themselves are driven against the sandbox in test_tui.py.)"""

from __future__ import annotations

from hypothesis import given, strategies as st

from ceo.plugin import Flag, Int, Plugin, Str, Term, Uid
from ceo.tui import forms, readout

plugin = Plugin("demo", "a plugin for these tests")


@plugin.verb("act", "Act", role="ldap", params=[
    Uid("uid", "who", positional=True), Term("term", "terms", multiple=True), Int("count", "how many", min=1, max=3),
    Flag("quiet", "say nothing"), Str("secret", "a secret", secret=True, pattern="[a-z]+", describe="letters"),
    Str("internal", "set by code", cli=False)])
def act(ctx, **args):
    pass


VERB = plugin.verbs["act"]


def test_a_form_has_the_fields_people_type_minus_the_presets():
    assert [p.name for p in forms.fields(VERB, {"quiet": True})] == ["uid", "term", "count", "secret"]


def test_values_are_taken_as_the_cli_takes_them():
    args, errors = forms.collect(VERB, {}, {"uid": "alice", "term": "w2027  s2027", "count": " 2 ", "quiet": True,
                                            "secret": ""})
    assert errors == {}
    assert args == {"uid": "alice", "term": ["w2027", "s2027"], "count": 2, "quiet": True}


def test_each_error_is_the_parameters_own_message_beside_its_field():
    _, errors = forms.collect(VERB, {}, {"uid": "", "term": "x2027", "count": "9", "secret": "S3CRET"})
    assert errors["uid"] == "required"
    assert errors["term"] == "term: 'x2027' is not a term: w, s or f and a four-digit year, e.g. w2027"
    assert errors["count"] == "count: 9 is outside 1..3"
    assert errors["secret"] == "secret: the value given is not letters"  # a secret is never echoed
    _, errors = forms.collect(VERB, {}, {"uid": "a", "term": "'w2027"})
    assert errors["term"].startswith("term: ") and "quotation" in errors["term"]


def test_labels_and_hints():
    uid = VERB.params[0]
    assert forms.label(uid) == "Uid *" and forms.hint(uid) == "who"
    assert forms.hint(VERB.params[1]) == "terms (one or more, separated by spaces)"
    assert forms.label(Str("cn", "full name", label="Full name")) == "Full name"


def test_a_password_is_spelled_for_reading_aloud():
    assert readout.spelled("kQ7xLm2p") == ["kQ7x   kilo, capital Quebec, seven, x-ray",
                                          "Lm2p   capital Lima, mike, two, papa"]


@given(st.text(alphabet="abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=1, max_size=64))
def test_the_read_out_groups_give_back_the_password(password):
    assert "".join(readout.groups(password)) == password
    assert len(readout.spelled(password)) == len(readout.groups(password))
    assert all(len(line.split("   ")[1].split(", ")) == len(line.split("   ")[0]) for line in readout.spelled(password))
