import pytest

from semver import compare, parse


def test_equal_versions():
    assert compare("1.2.3", "1.2.3") == 0
    assert compare("2.0.0", "1.0.0") == 1


def test_prerelease_sorts_before_its_release():
    assert compare("1.0.0-rc.1", "1.0.0") == -1


def test_invalid_versions_are_refused():
    for text in ["1.2", "a.b.c", "1.2.3.4", ""]:
        with pytest.raises(ValueError):
            parse(text)


def test_str_round_trip():
    assert str(parse("3.4.5-beta")) == "3.4.5-beta"
