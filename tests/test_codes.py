from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ablation import ALL_CODES, FACTORS, AttentionCode, BadCodeError
from ablation.model.codes import factor_legend

codes = st.text(alphabet="01", min_size=4, max_size=4)


@given(codes)
def test_a_code_round_trips_through_its_factors(bits: str) -> None:
    code = AttentionCode(bits)
    assert str(code) == bits
    assert AttentionCode.from_factors(f.key for f in code.factors) == code
    assert [code.flags[f.key] for f in FACTORS] == [b == "1" for b in bits]


@given(st.text(max_size=8).filter(lambda s: not re.fullmatch(r"[01]{4}", s)))
def test_anything_else_is_rejected(text: str) -> None:
    with pytest.raises(BadCodeError, match=r"'0000'\.\.'1111'"):
        AttentionCode(text)


@pytest.mark.parametrize("text", ["10a1", "11111", "", "111", " 0010", "0010\n", "\uff11\uff10\uff11\uff10"])
def test_the_issue_s_bad_codes_are_rejected(text: str) -> None:
    with pytest.raises(BadCodeError):
        AttentionCode(text)


def test_non_strings_are_rejected() -> None:
    with pytest.raises(BadCodeError):
        AttentionCode(1010)  # type: ignore[arg-type]


def test_bit_1_is_the_leftmost_character_as_mmcv_reads_it() -> None:
    assert [f.name for f in AttentionCode("1000").factors] == ["query-key content"]
    assert [f.name for f in AttentionCode("0100").factors] == ["query content & relative position"]
    assert [f.name for f in AttentionCode("0010").factors] == ["key content only"]
    assert [f.name for f in AttentionCode("0001").factors] == ["relative position only"]


def test_the_grid_has_16_distinct_codes_in_order() -> None:
    assert len(set(ALL_CODES)) == 16
    assert [str(c) for c in ALL_CODES] == sorted(f"{i:04b}" for i in range(16))


def test_0000_is_the_baseline_without_attention() -> None:
    baseline = AttentionCode("0000")
    assert baseline.is_baseline and baseline.factors == ()
    assert baseline.label == "none"
    assert "no attention" in baseline.description
    assert not any(c.is_baseline for c in ALL_CODES[1:])


def test_the_codes_stock_mmcv_breaks_have_bit_2_without_bit_4() -> None:
    broken = [str(c) for c in ALL_CODES if c.breaks_stock_mmcv]
    assert broken == ["0100", "0110", "1100", "1110"]


def test_labels_and_descriptions() -> None:
    assert AttentionCode("1111").label == "qk+qpos+k+pos"
    assert AttentionCode("0010").description == "key content only"
    assert all(f.short in factor_legend() and f.name in factor_legend() for f in FACTORS)


def test_unknown_factor_names_are_rejected_with_the_valid_ones() -> None:
    with pytest.raises(BadCodeError, match="key_content"):
        AttentionCode.from_factors(["saliency"])
