"""Checks that a sweep's COCO-format dataset is where the sweep says, before anything is launched.

``check`` reads both annotation files and looks for the image folders and their first images; each problem
is a one-line ``DatasetError`` naming the path. ``prepare`` first generates the synthetic dataset when asked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

from ablation.errors import DatasetError
from ablation.grid.settings import DatasetSettings

__all__ = ["check", "data_root", "prepare"]

_KEYS = ("images", "annotations", "categories")
_IMAGE_KEYS = ("id", "file_name", "width", "height")
_CATEGORY_KEYS = ("id", "name")
_DEFAULTS = DatasetSettings()


def data_root(settings: DatasetSettings, cwd: Path) -> Path:
    """The dataset folder: ``data_root`` as given when absolute, else under ``cwd``."""
    return cwd.absolute() / settings.data_root


def prepare(
    settings: DatasetSettings,
    cwd: Path,
    synthetic: tuple[int, int] | None = None,
    seed: int = 0,
    *,
    write: bool = True,
) -> Path | None:
    """Generate the synthetic dataset when ``synthetic`` (train, val counts) is given and its folder does not
    hold it yet; then ``check``. Returns the folder it generated, or None.

    ``write`` False writes nothing: it returns the folder it would generate (whose arguments it checks, and
    that it is not someone else's folder), else checks the dataset that is there. The synthetic classes
    are ``settings.classes``, else the three shapes.
    """
    if synthetic is not None:
        # here, not at the top: the generator loads numpy and OpenCV (0.1 s), which a check never needs
        from ablation.data.synthetic import SHAPES
        from ablation.data.synthetic import ensure as ensure_synthetic

        train, val = synthetic
        root = data_root(settings, cwd)
        generates = ensure_synthetic(
            root,
            train=train,
            val=val,
            seed=seed,
            classes=settings.classes or SHAPES,
            train_ann=settings.train_ann,
            train_images=settings.train_images,
            val_ann=settings.val_ann,
            val_images=settings.val_images,
            write=write,
        )
        if generates:
            if write:
                check(settings, cwd)
            return root
    check(settings, cwd)
    return None


def check(settings: DatasetSettings, cwd: Path) -> None:
    """Raise ``DatasetError`` unless both splits' annotations, image folders and first images are there."""
    root = data_root(settings, cwd)
    fail = _Failer(settings, cwd)
    if not root.is_dir():
        fail(root, "no such folder" if not root.exists() else "not a folder", hint=True)
    for ann, images, ann_key, images_key in (
        (settings.train_ann, settings.train_images, "train_ann", "train_images"),
        (settings.val_ann, settings.val_images, "val_ann", "val_images"),
    ):
        ann_path = root / ann
        coco = _load(ann_path, fail)
        folder = root / images
        if not folder.is_dir():
            fail(folder, "no such folder" if not folder.exists() else "not a folder", hint=True)
        if not coco["images"]:
            fail(ann_path, "lists no images")
        first = folder / str(coco["images"][0]["file_name"])
        if not first.is_file():
            fail(
                first,
                f"no such file (the first image {ann_key} {ann!r} lists; "
                f"is {images_key} {images!r} the folder of its images?)",
            )
        if settings.classes is not None:
            names = [category["name"] for category in coco["categories"]]
            missing = [name for name in settings.classes if name not in names]
            if missing:
                shown = ", ".join(repr(name) for name in names[:10]) + (", ..." if len(names) > 10 else "")
                fail(
                    ann_path,
                    f"[dataset] classes {', '.join(map(repr, missing))} not among its "
                    f"{len(names)} categories ({shown or 'none'})",
                )


class _Failer:
    """Raises the one-line ``DatasetError``s of one dataset."""

    def __init__(self, settings: DatasetSettings, cwd: Path) -> None:
        self.name = settings.name
        given = _layout(settings)
        kind = "a COCO 2017" if given == _layout(_DEFAULTS) else "a COCO-format dataset"
        point = f"point [dataset] data_root at {kind} with {', '.join(given)}"
        if Path(settings.data_root).is_absolute():
            self.hint = point
        else:
            self.hint = f"data_root {settings.data_root!r} is taken relative to {cwd.absolute()}; {point}"

    def __call__(self, path: Path, problem: str, *, hint: bool = False) -> NoReturn:
        suffix = f" ({self.hint})" if hint else ""
        raise DatasetError(f"dataset {self.name!r}: {path}: {problem}{suffix}")


def _load(path: Path, fail: _Failer) -> dict[str, Any]:
    """The annotation file at ``path``, checked to have the lists and keys a COCO file has."""
    if not path.is_file():
        fail(path, "no such file" if not path.exists() else "not a file", hint=True)
    try:
        coco = json.loads(path.read_bytes())
    except OSError as error:
        fail(path, f"cannot read ({error.strerror or error})")
    except json.JSONDecodeError as error:
        fail(path, f"not valid JSON (line {error.lineno}: {error.msg})")
    except ValueError as error:  # not UTF-8/16/32 text
        fail(path, f"not valid JSON ({error})")
    if not isinstance(coco, dict):
        fail(path, f"not a COCO annotation file (a JSON {_json_type(coco)}, not an object with {_list()})")
    for key in _KEYS:
        if not isinstance(coco.get(key), list):
            what = "missing" if key not in coco else f"a JSON {_json_type(coco[key])}"
            fail(path, f"{key!r} is {what}, not a list (a COCO annotation file has lists {_list()})")
    for key, needed in (("images", _IMAGE_KEYS), ("categories", _CATEGORY_KEYS)):
        for index, entry in enumerate(coco[key]):
            absent = [k for k in needed if not isinstance(entry, dict) or k not in entry]
            if absent:
                fail(
                    path,
                    f"{key}[{index}] has no {', '.join(map(repr, absent))} (each needs {', '.join(needed)})",
                )
    return dict(coco)


def _layout(settings: DatasetSettings) -> list[str]:
    """What the dataset folder holds: the annotation files' folders (or names) and the image folders."""
    anns = [settings.train_ann, settings.val_ann]
    shown = [f"{Path(ann).parent}/" if Path(ann).parent != Path() else ann for ann in anns]
    return list(dict.fromkeys([shown[0], settings.train_images, shown[1], settings.val_images]))


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), "null")


def _list() -> str:
    return ", ".join(_KEYS)
