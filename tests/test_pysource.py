from __future__ import annotations

import keyword
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ablation.grid.pysource import WIDTH, Ref, assignments, literal

names = st.from_regex(r"[a-z_][a-z0-9_]{0,11}", fullmatch=True).filter(lambda n: not keyword.iskeyword(n))
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(names, inner, max_size=5)
    ),
    max_leaves=40,
)


@given(values)
def test_a_value_reads_back_as_itself(value: Any) -> None:
    assert eval(literal(value), {"dict": dict}) == value


@given(st.dictionaries(names.filter(lambda n: n != "dict"), values, min_size=1, max_size=4))
def test_assignments_define_every_variable(variables: dict[str, Any]) -> None:
    namespace: dict[str, Any] = {"dict": dict}
    exec(assignments(variables), namespace)
    assert {k: namespace[k] for k in variables} == variables


@given(st.dictionaries(names, st.lists(st.integers(0, 10**6), max_size=30), max_size=6))
def test_lines_fit_where_values_can_be_broken(value: dict[str, list[int]]) -> None:
    text = literal(value)
    assert all(len(line) <= WIDTH for line in text.splitlines())


def test_references_are_bare_names() -> None:
    text = assignments({"a": [1], "b": dict(x=Ref("a"))})
    namespace: dict[str, Any] = {"dict": dict}
    exec(text, namespace)
    assert namespace["b"]["x"] is namespace["a"]


def test_one_element_tuples_stay_tuples() -> None:
    assert literal(("x",)) == "('x',)"


def test_numbers_that_cannot_read_back_are_refused() -> None:
    with pytest.raises(ValueError, match="only finite numbers"):
        literal([float("inf")])


def test_keys_that_are_not_python_names_are_refused() -> None:
    with pytest.raises(ValueError, match="must be Python names"):
        literal({"as": 1})
    with pytest.raises(ValueError, match="must be Python names"):
        assignments({"a-b": 1})
