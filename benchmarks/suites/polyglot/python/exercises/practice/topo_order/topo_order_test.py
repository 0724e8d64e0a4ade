import pytest
from topo_order import build_order


def test_chain():
    assert build_order({"c": ["b"], "b": ["a"], "a": []}) == ["a", "b", "c"]


def test_alphabetical_among_ready():
    deps = {"app": ["lib", "util"], "lib": ["util"], "util": [], "docs": []}
    assert build_order(deps) == ["docs", "util", "lib", "app"]


def test_needed_but_not_listed():
    assert build_order({"b": ["a"]}) == ["a", "b"]


def test_cycle():
    with pytest.raises(ValueError, match="cycle"):
        build_order({"a": ["b"], "b": ["a"]})
