from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from ablation.data.dataset import check, data_root, prepare
from ablation.data.synthetic import SHAPES
from ablation.errors import DatasetError, InputError
from ablation.grid.settings import DatasetSettings

SHAPES_SETTINGS = DatasetSettings(
    name="shapes",
    data_root="data/shapes/",
    train_ann="annotations/train.json",
    train_images="train/",
    val_ann="annotations/val.json",
    val_images="val/",
    classes=SHAPES,
)


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    """A small synthetic dataset at ``tmp_path/data/shapes``, as ``SHAPES_SETTINGS`` names it."""
    prepare(SHAPES_SETTINGS, tmp_path, (3, 2))
    return tmp_path / "data" / "shapes"


def rejects(settings: DatasetSettings, cwd: Path, message: str) -> None:
    """``check`` raises a one-line DatasetError that is exactly ``message``."""
    with pytest.raises(DatasetError, match=f"^{re.escape(message)}$") as raised:
        check(settings, cwd)
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, InputError)


def test_the_generated_dataset_passes(shapes: Path, tmp_path: Path) -> None:
    check(SHAPES_SETTINGS, tmp_path)
    assert data_root(SHAPES_SETTINGS, tmp_path) == shapes
    absolute = dataclasses.replace(SHAPES_SETTINGS, data_root=str(shapes))
    check(absolute, tmp_path / "elsewhere")


def test_a_missing_coco_says_where_it_is_expected(tmp_path: Path) -> None:
    coco = DatasetSettings()
    hint = (
        f"data_root 'data/coco/' is taken relative to {tmp_path}; "
        "point [dataset] data_root at a COCO 2017 with annotations/, train2017/, val2017/"
    )
    rejects(coco, tmp_path, f"dataset 'coco': {tmp_path}/data/coco: no such folder ({hint})")
    (tmp_path / "data" / "coco").mkdir(parents=True)
    ann = tmp_path / "data" / "coco" / "annotations" / "instances_train2017.json"
    rejects(coco, tmp_path, f"dataset 'coco': {ann}: no such file ({hint})")
    absolute = DatasetSettings(data_root=str(tmp_path / "data" / "coco"))
    rejects(
        absolute,
        tmp_path,
        f"dataset 'coco': {ann}: no such file "
        "(point [dataset] data_root at a COCO 2017 with annotations/, train2017/, val2017/)",
    )


def test_missing_parts_of_the_generated_dataset(shapes: Path, tmp_path: Path) -> None:
    hint = (
        f"data_root 'data/shapes/' is taken relative to {tmp_path}; "
        "point [dataset] data_root at a COCO-format dataset with annotations/, train/, val/"
    )
    (shapes / "val" / "000004.png").unlink()
    rejects(
        SHAPES_SETTINGS,
        tmp_path,
        f"dataset 'shapes': {shapes}/val/000004.png: no such file (the first image val_ann "
        "'annotations/val.json' lists; is val_images 'val/' the folder of its images?)",
    )
    (shapes / "val").rename(shapes / "elsewhere")
    rejects(SHAPES_SETTINGS, tmp_path, f"dataset 'shapes': {shapes}/val: no such folder ({hint})")
    (shapes / "annotations" / "val.json").unlink()
    rejects(
        SHAPES_SETTINGS, tmp_path, f"dataset 'shapes': {shapes}/annotations/val.json: no such file ({hint})"
    )


def test_malformed_annotation_files(shapes: Path, tmp_path: Path) -> None:
    path = shapes / "annotations" / "train.json"
    good = json.loads(path.read_text(encoding="utf-8"))
    prefix = f"dataset 'shapes': {path}: "

    path.write_text('{\n "images": [\n  oops\n', encoding="utf-8")
    rejects(SHAPES_SETTINGS, tmp_path, prefix + "not valid JSON (line 3: Expecting value)")

    path.write_text("[]", encoding="utf-8")
    rejects(
        SHAPES_SETTINGS,
        tmp_path,
        prefix
        + "not a COCO annotation file (a JSON array, not an object with images, annotations, categories)",
    )

    path.write_text(json.dumps({**good, "categories": None}), encoding="utf-8")
    rejects(
        SHAPES_SETTINGS,
        tmp_path,
        prefix + "'categories' is a JSON null, not a list "
        "(a COCO annotation file has lists images, annotations, categories)",
    )

    path.write_text(json.dumps({k: v for k, v in good.items() if k != "annotations"}), encoding="utf-8")
    rejects(
        SHAPES_SETTINGS,
        tmp_path,
        prefix + "'annotations' is missing, not a list "
        "(a COCO annotation file has lists images, annotations, categories)",
    )

    images = [dict(good["images"][0]), {k: v for k, v in good["images"][1].items() if k != "height"}]
    path.write_text(json.dumps({**good, "images": images}), encoding="utf-8")
    rejects(
        SHAPES_SETTINGS,
        tmp_path,
        prefix + "images[1] has no 'height' (each needs id, file_name, width, height)",
    )

    path.write_text(json.dumps({**good, "images": []}), encoding="utf-8")
    rejects(SHAPES_SETTINGS, tmp_path, prefix + "lists no images")


def test_a_class_that_is_not_a_category(shapes: Path, tmp_path: Path) -> None:
    settings = dataclasses.replace(SHAPES_SETTINGS, classes=("rectangle", "hexagon", "star"))
    rejects(
        settings,
        tmp_path,
        f"dataset 'shapes': {shapes}/annotations/train.json: [dataset] classes 'hexagon', 'star' not among "
        "its 3 categories ('rectangle', 'ellipse', 'triangle')",
    )
    check(dataclasses.replace(SHAPES_SETTINGS, classes=("triangle",)), tmp_path)


def test_prepare_generates_once_with_the_settings_file_names(tmp_path: Path) -> None:
    coco_layout = DatasetSettings(name="fake-coco")  # COCO's file names, classes unset: the three shapes
    prepare(coco_layout, tmp_path, (2, 1), seed=3)
    root = tmp_path / "data" / "coco"
    assert (root / "annotations" / "instances_val2017.json").is_file()
    assert (root / "train2017" / "000001.png").is_file() and (root / "val2017" / "000003.png").is_file()
    stamp = json.loads((root / ".synthetic.json").read_text(encoding="utf-8"))
    assert (stamp["seed"], stamp["classes"]) == (3, list(SHAPES))
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    prepare(coco_layout, tmp_path, (2, 1), seed=3)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    prepare(coco_layout, tmp_path, None)  # only checks


def test_prepare_refuses_a_real_dataset_folder(tmp_path: Path) -> None:
    root = tmp_path / "data" / "coco"
    (root / "annotations").mkdir(parents=True)
    with pytest.raises(DatasetError, match=rf"^synthetic dataset: {re.escape(str(root))}: not empty"):
        prepare(DatasetSettings(), tmp_path, (2, 1))
    assert [p.name for p in root.iterdir()] == ["annotations"]


def test_prepare_without_writing_says_what_it_would_generate_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "data" / "shapes"
    assert prepare(SHAPES_SETTINGS, tmp_path, (3, 2), write=False) == root
    assert list(tmp_path.iterdir()) == []
    assert prepare(SHAPES_SETTINGS, tmp_path, (3, 2)) == root  # generated now
    assert prepare(SHAPES_SETTINGS, tmp_path, (3, 2), write=False) is None  # there: only checked
    (root / "annotations" / "val.json").unlink()
    (root / ".synthetic.json").unlink()  # no longer the generator's folder: refused, not overwritten
    with pytest.raises(DatasetError, match=r"not empty and has no \.synthetic\.json"):
        prepare(SHAPES_SETTINGS, tmp_path, (3, 2), write=False)


def test_prepare_without_writing_checks_a_dataset_that_is_not_synthetic(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        prepare(SHAPES_SETTINGS, tmp_path, None, write=False)
    assert list(tmp_path.iterdir()) == []
