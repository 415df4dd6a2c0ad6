"""What every text parameter refuses, whatever its pattern: pure logic of ceo/plugin.py."""

from __future__ import annotations

import pytest

from ceo.errors import BadInput
from ceo.plugin import Str, unsafe_text


@pytest.mark.parametrize("value", ["José", "Jose\u0301", "Nguyễn Văn", "Zoë", "O'Brien", "李小龍", "Ana-María"])
def test_real_names_pass(value):
    assert unsafe_text(value) is None
    assert Str("cn").convert(value) == value


@pytest.mark.parametrize("value, problem", [
    ("a\nb", "control character"), ("a\x85b", "control character"), ("\x1b[2J", "control character"),
    ("evil\u202etxt", "bidirectional"), ("a\u2066b\u2069", "bidirectional"), ("a\u200bb", "invisible"),
    ("\ufeffname", "invisible"), ("soft\u00adhyphen", "invisible"),
    ("\u0301abc", "no letter"), ("e\u0301\u0302\u0303", "stacked"),
])
def test_what_no_name_may_hold(value, problem):
    assert problem in unsafe_text(value)
    with pytest.raises(BadInput, match=problem):
        Str("cn").convert(value)


@pytest.mark.parametrize("value", ["", " ", "\u3000"])
def test_a_blank_value_is_refused_unless_the_pattern_allows_it(value):
    with pytest.raises(BadInput, match="cn: is empty"):
        Str("cn").convert(value)
    assert Str("holder", pattern=r"([a-z]+)?").convert("") == ""  # positions: '' means nobody



def test_ascii_text_is_judged_as_the_patterns_would_judge_it_without_them():
    """ASCII text skips the patterns (and their compiling): the verdict must be theirs."""
    import re
    from hypothesis import given, settings, strategies as st
    from ceo import plugin

    @settings(max_examples=3000, deadline=None)
    @given(st.text(alphabet=st.characters(max_codepoint=0x7f)))
    def check(value):
        control = re.search(plugin._CONTROL, value) or re.search(plugin._INVISIBLE, value)
        assert unsafe_text(value) == ("contains a control character (newline?)" if control else None)
    check()
