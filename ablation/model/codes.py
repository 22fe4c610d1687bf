"""The 4-bit attention code of GeneralizedAttention and the factors it switches on.

mmcv reads ``attention_type`` left to right: the first character is bit 1 of the paper.

    bit 1  query-key content                   (the paper's E1, Transformer attention)
    bit 2  query content & relative position   (E2)
    bit 3  key content only                    (E3, a saliency over keys)
    bit 4  relative position only              (E4)

'0000' switches every factor off. mmcv would then average all keys uniformly, which is not the absence of
attention, so in this package '0000' means the plain detector without the GeneralizedAttention plugin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ablation.errors import BadCodeError

__all__ = ["ALL_CODES", "FACTORS", "AttentionCode", "Factor", "factor_legend"]


@dataclass(frozen=True)
class Factor:
    """One attention factor: its bit position (1-4), a Python identifier, its name and a short label."""

    bit: int
    key: str
    name: str
    short: str


FACTORS: tuple[Factor, ...] = (
    Factor(1, "query_key_content", "query-key content", "qk"),
    Factor(2, "query_content_position", "query content & relative position", "qpos"),
    Factor(3, "key_content", "key content only", "k"),
    Factor(4, "relative_position", "relative position only", "pos"),
)

_CODE = re.compile(r"[01]{4}")


@dataclass(frozen=True, order=True)
class AttentionCode:
    """A validated code such as ``AttentionCode('0010')``; orders and hashes by its string."""

    bits: str

    def __post_init__(self) -> None:
        if not isinstance(self.bits, str) or not _CODE.fullmatch(self.bits):
            raise BadCodeError(
                f"bad attention code {self.bits!r}: a code is 4 characters, each 0 or 1 ('0000'..'1111')"
            )

    @classmethod
    def parse(cls, value: str | AttentionCode) -> AttentionCode:
        return value if isinstance(value, AttentionCode) else cls(value)

    @classmethod
    def from_factors(cls, keys: Iterable[str]) -> AttentionCode:
        """The code whose switched-on factors are ``keys`` (factor keys, e.g. ``{'key_content'}``)."""
        wanted = set(keys)
        unknown = wanted - {f.key for f in FACTORS}
        if unknown:
            valid = ", ".join(f.key for f in FACTORS)
            raise BadCodeError(f"unknown attention factor(s) {', '.join(sorted(unknown))}; valid: {valid}")
        return cls("".join("1" if f.key in wanted else "0" for f in FACTORS))

    def __str__(self) -> str:
        return self.bits

    def is_on(self, factor: Factor) -> bool:
        return self.bits[factor.bit - 1] == "1"

    @property
    def factors(self) -> tuple[Factor, ...]:
        """The factors this code switches on, in bit order."""
        return tuple(f for f in FACTORS if self.is_on(f))

    @property
    def flags(self) -> dict[str, bool]:
        """Every factor's key mapped to whether this code switches it on."""
        return {f.key: self.is_on(f) for f in FACTORS}

    @property
    def is_baseline(self) -> bool:
        """'0000': no attention factor, i.e. the detector without the attention plugin."""
        return self.bits == "0000"

    @property
    def breaks_stock_mmcv(self) -> bool:
        """Whether mmcv 2.1.0's own GeneralizedAttention gets this code wrong: bit 2 on and bit 4 off (0100,
        0110, 1100, 1110) crash on non-square feature maps and are transposed on square ones
        (mmdetection issue #8179). ``ablation.model.attention`` computes them right."""
        return self.bits[1] == "1" and self.bits[3] == "0"

    @property
    def label(self) -> str:
        """Short factor labels joined by '+', or 'none' for the baseline."""
        return "+".join(f.short for f in self.factors) or "none"

    @property
    def description(self) -> str:
        """Full factor names, or a phrase saying there is no attention."""
        return ", ".join(f.name for f in self.factors) or "no attention (plain baseline)"


ALL_CODES: tuple[AttentionCode, ...] = tuple(AttentionCode(f"{i:04b}") for i in range(16))


def factor_legend() -> str:
    """One line explaining the short factor labels."""
    return "factors: " + ", ".join(f"{f.short} = {f.name} (bit {f.bit})" for f in FACTORS)
