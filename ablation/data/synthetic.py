"""A small synthetic detection dataset in COCO format, for smoke runs without COCO.

Each image is a non-square gradient with mild noise and 1-4 non-overlapping shapes; class ``i`` is drawn
as a rectangle, ellipse or triangle (``i % 3``). A box is the tight box of its shape's pixel mask and the
area its pixel count, so both are exact. Every class appears in both splits. The same arguments give
byte-identical files. ``root/.synthetic.json`` records the arguments: ``ensure`` regenerates only when they
change, and nothing here writes into a non-empty folder without that stamp.
"""

from __future__ import annotations

import colorsys
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from ablation.errors import DatasetError
from ablation.fsio import write_atomic

__all__ = ["SHAPES", "STAMP", "SyntheticDataset", "ensure", "generate"]

SHAPES = ("rectangle", "ellipse", "triangle")
STAMP = ".synthetic.json"
# Bump when the drawing changes, so that ensure() regenerates folders made by an older version.
_VERSION = 1
# (width, height): landscape, never square, around 320x240.
_SIZES = ((320, 240), (352, 256), (288, 224), (256, 192), (336, 240), (304, 224), (352, 240), (288, 192))
_MIN_SIDE, _MAX_SIDE = 24, 120
_MAX_SHAPES = 4
_GAP = 2  # pixels between shapes, and between a shape and the border
_TRIES = 60
_FILE_NAME = re.compile(r"[0-9]{6}\.png")


@dataclass(frozen=True)
class SyntheticDataset:
    """What ``generate`` wrote: image and box counts per split."""

    root: Path
    classes: tuple[str, ...]
    train: int
    val: int
    train_boxes: int
    val_boxes: int


def generate(
    root: Path,
    *,
    train: int = 16,
    val: int = 8,
    seed: int = 0,
    classes: Sequence[str] = SHAPES,
    train_ann: str = "annotations/train.json",
    train_images: str = "train/",
    val_ann: str = "annotations/val.json",
    val_images: str = "val/",
) -> SyntheticDataset:
    """Write the dataset under ``root``: two COCO annotation files, their PNG images and the stamp.

    Image ids and file names (``000001.png``) run on from train to val, so the splits may share a folder.
    """
    params = _params(train, val, seed, classes, train_ann, train_images, val_ann, val_images)
    _refuse_foreign(root)
    write_atomic(root / STAMP, _stamp_text(params, complete=False))
    names = tuple(params["classes"])
    written: dict[Path, set[str]] = {}
    boxes = []
    first_id = 1
    for split, count, ann, images in (
        (0, train, train_ann, train_images),
        (1, val, val_ann, val_images),
    ):
        folder = root / images
        coco = _split(folder, names, count, seed, split, first_id)
        write_atomic(root / ann, json.dumps(coco, indent=1) + "\n")
        written.setdefault(folder, set()).update(image["file_name"] for image in coco["images"])
        boxes.append(len(coco["annotations"]))
        first_id += count
    for folder, keep in written.items():  # images of an earlier, larger generation
        for path in folder.iterdir():
            if _FILE_NAME.fullmatch(path.name) and path.name not in keep:
                path.unlink()
    write_atomic(root / STAMP, _stamp_text(params, complete=True))
    return SyntheticDataset(root, names, train, val, boxes[0], boxes[1])


def ensure(
    root: Path,
    *,
    train: int = 16,
    val: int = 8,
    seed: int = 0,
    classes: Sequence[str] = SHAPES,
    train_ann: str = "annotations/train.json",
    train_images: str = "train/",
    val_ann: str = "annotations/val.json",
    val_images: str = "val/",
    write: bool = True,
) -> bool:
    """``generate`` unless ``root``'s stamp records these arguments; True when it generated. ``write`` False
    writes nothing: True when it would generate, after the checks ``generate`` makes first (its arguments,
    and that ``root`` is not a folder it did not make)."""
    params = _params(train, val, seed, classes, train_ann, train_images, val_ann, val_images)
    try:
        stamp = json.loads((root / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = None
    if stamp == json.loads(_stamp_text(params, complete=True)):
        return False
    if not write:
        _refuse_foreign(root)
        return True
    generate(
        root,
        train=train,
        val=val,
        seed=seed,
        classes=classes,
        train_ann=train_ann,
        train_images=train_images,
        val_ann=val_ann,
        val_images=val_images,
    )
    return True


def _params(
    train: int,
    val: int,
    seed: int,
    classes: Sequence[str],
    train_ann: str,
    train_images: str,
    val_ann: str,
    val_images: str,
) -> dict[str, Any]:
    for key, count in (("train", train), ("val", val)):
        if count < 1:
            raise DatasetError(f"synthetic dataset: {key} must be at least 1 image, got {count}")
        if count * _MAX_SHAPES < len(classes):
            raise DatasetError(
                f"synthetic dataset: {key}: {count} images of at most {_MAX_SHAPES} shapes cannot show all "
                f"{len(classes)} classes; give at least {-(-len(classes) // _MAX_SHAPES)} images"
            )
    names = [str(name) for name in classes]
    if not names or len(set(names)) != len(names) or not all(names):
        raise DatasetError(f"synthetic dataset: classes must be distinct non-empty names, got {names}")
    paths = {
        "train_ann": train_ann,
        "train_images": train_images,
        "val_ann": val_ann,
        "val_images": val_images,
    }
    for key, value in paths.items():
        pure = PurePosixPath(value)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise DatasetError(
                f"synthetic dataset: {key} {value!r}: give a relative path inside the dataset folder"
            )
    if PurePosixPath(train_ann) == PurePosixPath(val_ann):
        raise DatasetError(f"synthetic dataset: train_ann and val_ann are the same file {train_ann!r}")
    return {"train": train, "val": val, "seed": seed, "classes": names, **paths}


def _stamp_text(params: dict[str, Any], *, complete: bool) -> str:
    stamp = {"generator": "ablation.data.synthetic", "version": _VERSION, "complete": complete, **params}
    return json.dumps(stamp, indent=1) + "\n"


def _refuse_foreign(root: Path) -> None:
    """Raise unless ``root`` is missing, empty or made by this module."""
    if root.exists() and not root.is_dir():
        raise DatasetError(f"synthetic dataset: {root}: not a folder")
    if root.is_dir() and not (root / STAMP).is_file() and any(root.iterdir()):
        raise DatasetError(
            f"synthetic dataset: {root}: not empty and has no {STAMP}, so it is not a synthetic dataset; "
            "refusing to write into it (give an empty or new folder)"
        )


def _split(
    folder: Path, classes: tuple[str, ...], count: int, seed: int, split: int, first_id: int
) -> dict[str, Any]:
    """Draw and write one split's images; return its COCO annotation dict."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    owed = list(range(len(classes)))  # classes not yet drawn in this split
    for index in range(count):
        image_id = first_id + index
        rng = np.random.default_rng((seed, split, index))
        pixels, shapes = _image(rng, len(classes), owed)
        owed = [c for c in owed if c not in {label for label, _, _ in shapes}]
        name = f"{image_id:06d}.png"
        ok, png = cv2.imencode(".png", pixels)
        assert ok, "cv2 failed to encode a PNG"
        write_atomic(folder / name, png.tobytes())
        height, width = pixels.shape[:2]
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for label, bbox, area in shapes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": bbox,
                    "area": area,
                    "iscrowd": 0,
                }
            )
    assert not owed, f"classes {owed} were not drawn"  # _params ensures enough room
    return {
        "info": {"description": "ablation.data.synthetic", "version": str(_VERSION)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(classes)
        ],
    }


def _image(
    rng: np.random.Generator, n_classes: int, owed: list[int]
) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], list[tuple[int, list[float], float]]]:
    """One BGR image and its shapes as (class index, [x, y, w, h], area); classes in ``owed`` come first."""
    width, height = _SIZES[int(rng.integers(len(_SIZES)))]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = xs * np.cos(angle) + ys * np.sin(angle)
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    low, high = rng.uniform(60, 190, size=(2, 3)).astype(np.float32)
    canvas = low + (high - low) * ramp[..., None]

    wanted = max(int(rng.integers(1, _MAX_SHAPES + 1)), min(_MAX_SHAPES, len(owed)))
    labels = owed[:wanted] + [int(rng.integers(n_classes)) for _ in range(wanted - len(owed[:wanted]))]
    placed: list[tuple[int, int, int, int]] = []
    shapes = []
    for label in labels:
        side_w, side_h = rng.integers(_MIN_SIDE, _MAX_SIDE + 1, size=2)
        for attempt in range(_TRIES):
            shrink = 1 - 0.8 * attempt / _TRIES
            w = max(_MIN_SIDE, int(side_w * shrink))
            h = max(_MIN_SIDE, int(side_h * shrink))
            x0 = int(rng.integers(_GAP, width - w - _GAP + 1))
            y0 = int(rng.integers(_GAP, height - h - _GAP + 1))
            box = (x0, y0, x0 + w, y0 + h)
            if all(_apart(box, other) for other in placed):
                break
        else:
            continue  # no room left: an owed class stays owed for the next image
        placed.append(box)
        mask = _mask(label % len(SHAPES), w, h, rng)
        hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.75, 1), rng.uniform(0.8, 1)
        rgb = np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32) * 255
        canvas[y0 : y0 + h, x0 : x0 + w][mask] = rgb[::-1]
        rows, cols = np.nonzero(mask)
        bbox = [
            float(x0 + cols.min()),
            float(y0 + rows.min()),
            float(cols.max() - cols.min() + 1),
            float(rows.max() - rows.min() + 1),
        ]
        shapes.append((label, bbox, float(mask.sum())))
    canvas += rng.normal(0, 3, size=canvas.shape).astype(np.float32)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), shapes


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[2] + _GAP <= b[0] or b[2] + _GAP <= a[0] or a[3] + _GAP <= b[1] or b[3] + _GAP <= a[1]


def _mask(kind: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """A h x w mask of a rectangle (0), axis-aligned ellipse (1) or triangle (2), tested at pixel centres."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    if kind == 0:
        return np.ones((h, w), dtype=bool)
    if kind == 1:
        result: np.ndarray[Any, np.dtype[np.bool_]] = ((xs - w / 2) / (w / 2)) ** 2 + (
            (ys - h / 2) / (h / 2)
        ) ** 2 <= 1
        return result
    apex, base = (0.0, float(h)) if rng.uniform() < 0.5 else (float(h), 0.0)
    corners = ((rng.uniform(0.15, 0.85) * w, apex), (0.0, base), (float(w), base))
    edges = [
        (bx - ax) * (ys - ay) - (by - ay) * (xs - ax)
        for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True)
    ]
    inside: np.ndarray[Any, np.dtype[np.bool_]] = np.all([e >= 0 for e in edges], axis=0) | np.all(
        [e <= 0 for e in edges], axis=0
    )
    return inside
