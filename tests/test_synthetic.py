from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from ablation.data.synthetic import SHAPES, STAMP, SyntheticDataset, ensure, generate
from ablation.errors import DatasetError


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    """The default dataset: 16 train and 8 val images of the three shapes."""
    return generate(tmp_path_factory.mktemp("shapes") / "data")


def load(root: Path, split: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((root / "annotations" / f"{split}.json").read_text(encoding="utf-8"))
    return result


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def mtimes(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*")}


def test_the_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    generate(tmp_path / "a", train=5, val=3, seed=7)
    generate(tmp_path / "b", train=5, val=3, seed=7)
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert len(a) == 5 + 3 + 2 + 1  # images, annotation files, stamp
    assert a == b
    generate(tmp_path / "c", train=5, val=3, seed=8)
    assert files(tmp_path / "c")["train/000001.png"] != a["train/000001.png"]


def test_the_counts_and_files(shapes: SyntheticDataset) -> None:
    assert (shapes.train, shapes.val, shapes.classes) == (16, 8, SHAPES)
    train, val = load(shapes.root, "train"), load(shapes.root, "val")
    assert (len(train["images"]), len(val["images"])) == (16, 8)
    assert (len(train["annotations"]), len(val["annotations"])) == (shapes.train_boxes, shapes.val_boxes)
    assert train["images"][0]["file_name"] == "000001.png"
    assert val["images"][0]["file_name"] == "000017.png"  # ids run on: the splits may share a folder
    assert sorted(p.name for p in (shapes.root / "val").iterdir()) == [f"{i:06d}.png" for i in range(17, 25)]
    assert train["categories"] == val["categories"]
    assert [(c["id"], c["name"]) for c in train["categories"]] == [
        (1, "rectangle"),
        (2, "ellipse"),
        (3, "triangle"),
    ]
    per_image = Counter(a["image_id"] for a in train["annotations"] + val["annotations"])
    assert set(per_image) == set(range(1, 25)) and set(per_image.values()) <= {1, 2, 3, 4}


def test_images_are_not_square_and_match_their_entries(shapes: SyntheticDataset) -> None:
    sizes = set()
    for split in ("train", "val"):
        for image in load(shapes.root, split)["images"]:
            pixels = cv2.imread(str(shapes.root / split / image["file_name"]))
            assert pixels.shape == (image["height"], image["width"], 3)
            assert image["width"] != image["height"]
            assert 256 <= image["width"] <= 352 and 192 <= image["height"] <= 256
            sizes.add((image["width"], image["height"]))
    assert len(sizes) >= 3


def test_boxes_are_inside_their_image_and_tight_around_their_shape(shapes: SyntheticDataset) -> None:
    for split in ("train", "val"):
        coco = load(shapes.root, split)
        images = {image["id"]: image for image in coco["images"]}
        for ann in coco["annotations"]:
            image = images[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            assert all(isinstance(v, float) for v in ann["bbox"]) and ann["iscrowd"] == 0
            assert x >= 0 and y >= 0 and x + w <= image["width"] and y + h <= image["height"]
            assert 20 <= w <= 120 and 20 <= h <= 120
            assert 0.3 * w * h <= ann["area"] <= w * h
            # The shape is one saturated colour (plus mild noise) on a gradient: the pixels near the colour at
            # the box's centre, within the box and a 1-pixel ring around it, fill exactly the box.
            pixels = cv2.imread(str(shapes.root / split / image["file_name"])).astype(np.int16)
            x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            colour = np.median(pixels[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3), axis=0)
            left, top = max(x0 - 1, 0), max(y0 - 1, 0)
            region = pixels[top : y1 + 1, left : x1 + 1]
            near = np.abs(region - colour).max(axis=2) <= 20
            rows, cols = np.nonzero(near)
            assert (left + cols.min(), top + rows.min(), left + cols.max() + 1, top + rows.max() + 1) == (
                x0,
                y0,
                x1,
                y1,
            )
            assert abs(int(near.sum()) - ann["area"]) <= 0.02 * ann["area"]


def test_every_class_is_in_both_splits_and_classes_cycle_through_the_shapes(tmp_path: Path) -> None:
    classes = ("a", "b", "c", "d", "e", "f", "g")
    generate(tmp_path, train=2, val=2, classes=classes)  # 7 classes need 2 images of up to 4 shapes
    for split in ("train", "val"):
        coco = load(tmp_path, split)
        assert [c["name"] for c in coco["categories"]] == list(classes)
        assert {a["category_id"] for a in coco["annotations"]} == set(range(1, 8))
    with pytest.raises(DatasetError, match=r"^synthetic dataset: val: 1 images .* give at least 2 images$"):
        generate(tmp_path / "small", train=2, val=1, classes=classes)


def test_pycocotools_reads_both_splits(shapes: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    from pycocotools.coco import COCO

    for split, count in (("train", 16), ("val", 8)):
        coco = COCO(str(shapes.root / "annotations" / f"{split}.json"))
        assert len(coco.getImgIds()) == count
        assert coco.getCatIds(catNms=list(SHAPES)) == [1, 2, 3]
        assert len(coco.getAnnIds()) == len(coco.dataset["annotations"])


def test_mmdet_s_coco_dataset_loads_the_train_split(shapes: SyntheticDataset) -> None:
    from mmdet.datasets import CocoDataset

    dataset = CocoDataset(
        metainfo=dict(classes=SHAPES),
        data_root=str(shapes.root),
        ann_file="annotations/train.json",
        data_prefix=dict(img="train/"),
        pipeline=[],
    )
    assert len(dataset) == 16
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert sum(len(info["instances"]) for info in infos) == shapes.train_boxes
    assert Path(infos[0]["img_path"]).is_file()
    labels = {instance["bbox_label"] for info in infos for instance in info["instances"]}
    assert labels == {0, 1, 2}


def test_ensure_generates_once(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    assert ensure(root, train=3, val=2)
    stamp = json.loads((root / STAMP).read_text(encoding="utf-8"))
    assert stamp == {
        "generator": "ablation.data.synthetic",
        "version": 1,
        "complete": True,
        "train": 3,
        "val": 2,
        "seed": 0,
        "classes": list(SHAPES),
        "train_ann": "annotations/train.json",
        "train_images": "train/",
        "val_ann": "annotations/val.json",
        "val_images": "val/",
    }
    before = mtimes(root)
    assert not ensure(root, train=3, val=2)
    assert mtimes(root) == before
    assert ensure(root, train=2, val=2)  # different arguments: generated again, without the stale image
    assert sorted(p.name for p in (root / "train").iterdir()) == ["000001.png", "000002.png"]
    assert not ensure(root, train=2, val=2)


def test_nothing_is_written_into_a_folder_that_is_not_a_synthetic_dataset(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"mine")
    where = re.escape(str(tmp_path))
    message = rf"^synthetic dataset: {where}: not empty and has no \.synthetic\.json, .*new folder\)$"
    with pytest.raises(DatasetError, match=message):
        ensure(tmp_path)
    with pytest.raises(DatasetError, match=message):
        generate(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["photo.jpg"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"^synthetic dataset: train must be at least 1 image, got 0$"):
        ensure(tmp_path, train=0)
    with pytest.raises(
        DatasetError, match=r"^synthetic dataset: val_images '/data/val': give a relative path"
    ):
        ensure(tmp_path, val_images="/data/val")
    with pytest.raises(DatasetError, match=r"^synthetic dataset: classes must be distinct"):
        ensure(tmp_path, classes=("a", "a"))
    assert not any(tmp_path.iterdir())
