from archive import Lineage

#      r
#     / \
#    a   b
#   / \   \
#  c   d   e
#  |
#  f
EDGES = [
    ("r", None),
    ("a", "r"),
    ("b", "r"),
    ("c", "a"),
    ("d", "a"),
    ("e", "b"),
    ("f", "c"),
    ("x", None),
]


def test_path_ancestors_and_depth():
    lin = Lineage(EDGES)
    assert lin.path_to_root("f") == ["f", "c", "a", "r"]
    assert lin.ancestors("f") == ["r", "a", "c"]
    assert lin.ancestors("r") == []
    assert lin.depth("f") == 3
    assert lin.depth("x") == 0
    assert lin.parent("e") == "b"
    assert lin.parent("r") is None


def test_descendants_clade_children_roots():
    lin = Lineage(EDGES)
    assert lin.descendants("a") == {"c", "d", "f"}
    assert lin.clade("a") == {"a", "c", "d", "f"}
    assert lin.clade("f") == {"f"}
    assert lin.children("a") == ["c", "d"]
    assert lin.children("f") == []
    assert lin.roots() == ["r", "x"]
    assert len(lin) == 8
    assert "e" in lin and "zz" not in lin


def test_depths_in_one_pass():
    lin = Lineage(EDGES)
    depths = lin.depths()
    assert depths == {n: lin.depth(n) for n, _ in EDGES}
