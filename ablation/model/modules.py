"""The GeneralizedAttention, deformable convolution and RoIAlign modules a sweep can choose, and the
implementations of ablation's attention: the one declaration that the sweep's settings, the rendered configs
and the modules themselves read (no torch here)."""

from __future__ import annotations

__all__ = ["ATTENTION_IMPLEMENTATIONS", "ATTENTION_MODULES", "DCN_MODULES", "ROI_ALIGN_MODULES"]

# The GeneralizedAttention each value of [model.attention] module selects: its name in mmdet's registry, and
# the Python module a config imports to register it (None: mmcv's, registered by mmcv itself).
ATTENTION_MODULES: dict[str, tuple[str, str | None]] = {
    "ablation": ("AblationGeneralizedAttention", "ablation.model.attention"),
    "mmcv": ("GeneralizedAttention", None),
}

# How ablation's module computes the attention (its ``implementation`` argument): "reference" materialises
# the energy of every (query, key) pair; "sdpa" gets the same numbers from the energy's separable factors,
# a piece at a time on CPU and through scaled_dot_product_attention on CUDA (GeneralizedAttention.sdpa_path).
ATTENTION_IMPLEMENTATIONS = ("reference", "sdpa")

# The deformable convolution each value of [model.dcn] module selects, as ATTENTION_MODULES: mmcv's
# DeformConv2dPack, or ablation's subclass of it that computes on CPU with torch ops (mmcv's op on CUDA).
DCN_MODULES: dict[str, tuple[str, str | None]] = {
    "mmcv": ("DCN", None),
    "ablation": ("AblationDCN", "ablation.model.deform"),
}

# The RoIAlign each value of [model.roi_align] module selects, as ATTENTION_MODULES: mmcv's, or ablation's
# subclass of it that computes on CPU with torch ops (mmcv's op on CUDA). The name is the RoI layer's type,
# which mmdet's RoI extractors look up in mmcv.ops (where importing ablation's module puts it).
ROI_ALIGN_MODULES: dict[str, tuple[str, str | None]] = {
    "mmcv": ("RoIAlign", None),
    "ablation": ("AblationRoIAlign", "ablation.model.roi_align"),
}
