import pytest

from ddbench.errors import DuplicateNameError, UnknownNameError
from ddbench.registry import Registry


def test_duplicate_names_both_suppliers():
    r = Registry("method")
    r.add("krrst", object(), origin="pkg-a 1.0")
    with pytest.raises(DuplicateNameError) as e:
        r.add("krrst", object(), origin="pkg-b 2.0")
    assert "pkg-a 1.0" in str(e.value) and "pkg-b 2.0" in str(e.value)


def test_unknown_name_lists_closest():
    r = Registry("method")
    for n in ("krrst", "random", "kmeans"):
        r.add(n, object(), origin="x")
    with pytest.raises(UnknownNameError) as e:
        r.get("krst")
    msg = str(e.value)
    assert "did you mean krrst" in msg and "ddbench ls methods" in msg


def test_iteration_sorted_and_origin():
    r = Registry("task")
    r.add("b", 1, origin="o1")
    r.add("a", 2, origin="o2")
    assert [e.name for e in r] == ["a", "b"]
    assert r.entry("b").origin == "o1" and len(r) == 2 and "a" in r
