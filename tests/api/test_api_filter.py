"""The filter expression language (no server needed)."""

from __future__ import annotations

import pytest

from sinogate.api.filter import Filter, FilterSyntaxError, wildcard_match
from sinogate.api.selectors import Selector, SelectorError

MSG = {
    "position.speed": 72.5,
    "position.valid": True,
    "engine.ignition.status": True,
    "device.name": "truck-12345",
    "din": 3,
    "alarm.code": None,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("position.speed>60 && engine.ignition.status==true", True),
        ("position.speed>80 || engine.ignition.status==true", True),
        ("position.speed>80 || engine.ignition.status==false", False),
        ("!(position.speed>80)", True),
        ("not(position.speed>80)", True),
        ("(position.speed - 2.5) * 2 == 140", True),
        ("din % 2 == 1 && din / 3 == 1", True),
        ("device.name == 'truck*'", True),
        ('device.name == "truck-1234?"', True),
        ("device.name == 'car*'", False),
        ("device.name != 'car*'", True),
        ("missing.param > 1", False),
        ("missing.param == null", False),
        ("$missing.param == null", True),
        ("$missing.param > 1 || position.valid", True),
        ("missing.param > 1 || position.valid", True),
        ("!missing.param", False),
        ("alarm.code == null", True),
        ("position.speed / 0 > 1", False),
        ("device.name > 5", False),
        ("if(position.valid, position.speed, 0) > 70", True),
        ("abs(-3) == 3 && tonumber('42') == 42", True),
        ("-position.speed < 0", True),
        ("1e2 == 100", True),
        ("'a\\'b' == \"a'b\"", True),
        ("position.valid == 1", True),
    ],
)
def test_expressions(text: str, expected: bool) -> None:
    assert Filter(text).matches(MSG) is expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "position.speed >", "a &&", "(a", "a)", "a == = b", "foo(1)", "not(1, 2)", "a ; b", "'open",
     "(" * 100 + "1" + ")" * 100, "__import__('os')", "a.b.c[1]", "x" * 5000],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(FilterSyntaxError):
        Filter(text)


def test_never_evaluates_python() -> None:
    f = Filter("__class__ == 1")
    assert f.matches({}) is False  # a plain (missing) parameter name, nothing more


def test_wildcards() -> None:
    assert wildcard_match("35*", "352625333222111")
    assert wildcard_match("1?3", "123")
    assert not wildcard_match("1?3", "1223")
    assert wildcard_match("a[b]", "a[b]")  # only * and ? are special


def test_selectors() -> None:
    dev = {"id": 4, "name": "truck", "ident": "352625333222111", "protocol": "h02", "enabled": True,
           "connected": False, "settings": {}}
    assert Selector.parse("all").matches(dev)
    assert Selector.parse("1,4").matches(dev)
    assert not Selector.parse("1,2").matches(dev)
    assert Selector.parse("configuration.ident=3526*").matches(dev)
    assert Selector.parse("name=tr?ck,protocol=h02,enabled=true").matches(dev)
    assert not Selector.parse("name=truck,protocol=jt808").matches(dev)
    assert Selector.parse("{name=='tr*' && id==4}").matches(dev)
    for bad in ("", "foo", "unknown=1", "{a==}", "{a==1"):
        with pytest.raises(SelectorError):
            Selector.parse(bad)
