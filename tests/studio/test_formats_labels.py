"""Per-image label formats: YOLO (detect / segment), LabelMe / X-AnyLabeling, and the file stems."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from masklet.studio.annotations import Annotation, AnnotationSet, ImageEntry
from masklet.studio.formats import (
    export,
    export_labelme,
    export_yolo,
    image_stems,
    import_labelme,
    import_yolo,
)

from .format_cases import A_H, A_W, B_H, B_W, by_track, frame_rgb, iou, rect, sample_set

STEMS = ["photos/a", "photos/b", "clip_000000", "clip_000001", "clip_000002"]


def test_image_stems_rule_and_collisions():
    aset = sample_set()
    assert list(image_stems(aset.images).values()) == STEMS
    odd = [
        ImageEntry("k1", "x/y.jpg", 4, 4),
        ImageEntry("k2", "x/y.png", 4, 4),  # same stem: gets -2
        ImageEntry("k3", "../up/z.jpg", 4, 4),  # never leaves the export folder
        ImageEntry("k4", "f.jpg", 4, 4, video="a/b:c", frame_index=7),
        ImageEntry("k5", "X/Y.jpg", 4, 4),  # differs only in case from k1
    ]
    assert list(image_stems(odd).values()) == ["x/y", "x/y-2", "_/up/z", "a_b_c_000007", "X/Y-3"]


def test_yolo_detect_lines_and_round_trip(tmp_path):
    aset = sample_set()
    files = export_yolo(aset, tmp_path, task="detect")
    rel = [f.relative_to(tmp_path).as_posix() for f in files]
    assert rel == [f"labels/{s}.txt" for s in STEMS] + ["classes.txt", "data.yaml"]
    # cat rectangle of image a: columns 3..12, rows 5..14 of 40 x 30
    first = (tmp_path / "labels/photos/a.txt").read_text().splitlines()[0]
    assert first == f"0 {8 / 40:.6f} {10 / 30:.6f} {10 / 40:.6f} {10 / 30:.6f}"
    assert (tmp_path / "classes.txt").read_text() == "cat\ndog\nbird\n"
    assert 'names: ["cat", "dog", "bird"]' in (tmp_path / "data.yaml").read_text().splitlines()
    back = import_yolo(tmp_path, aset.images)
    assert back.labels == aset.labels and back.images == aset.images
    got = {(a.image, a.label): a for a in back.annotations}
    assert len(got) == len(back.annotations) == len(aset.annotations)
    for a in aset.annotations:
        b = got[a.image, a.label]
        assert b.rle is None
        assert np.allclose(b.bbox, a.bbox, rtol=1e-3, atol=1e-3 * max(A_W, A_H))


def test_yolo_segment_round_trip_keeps_multi_part_masks_on_one_line(tmp_path):
    aset = sample_set()
    export_yolo(aset, tmp_path, task="segment", tolerance=1.0)
    lines = (tmp_path / "labels/photos/b.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("1 ")  # the two-part dog is one instance
    values = np.array(lines[0].split()[1:], dtype=float)
    assert values.size % 2 == 0 and values.min() >= 0 and values.max() <= 1
    back = import_yolo(tmp_path / "labels", aset.images, classes=["cat", "dog", "bird"])
    got = {(a.image, a.label): a for a in back.annotations}
    for a in aset.annotations:
        assert iou(got[a.image, a.label].mask(), a.mask()) >= 0.95
    assert {a.track_id for a in back.annotations if a.image == "a"} == {1, 2}  # track id = line number


def test_yolo_box_only_and_images(tmp_path):
    aset = sample_set()
    aset.annotations.append(Annotation("b", "bird", 9, (4.0, 6.0, 8.0, 4.0)))
    export_yolo(aset, tmp_path, task="segment", tolerance=0, reader=frame_rgb)
    last = (tmp_path / "labels/photos/b.txt").read_text().splitlines()[-1]
    assert last.split()[0] == "2" and len(last.split()) == 9  # the box as a 4-corner polygon
    with Image.open(tmp_path / "images/clip_000001.jpg") as im:
        assert im.size == (36, 28)
    assert (tmp_path / "images/photos/b.png").is_file()


def test_yolo_import_reads_data_yaml_and_reports_bad_files(tmp_path):
    images = [ImageEntry("p", "p.jpg", 10, 20)]
    labels = tmp_path / "labels"
    labels.mkdir()
    (tmp_path / "data.yaml").write_text("path: .\nnames:\n  0: person\n  1: 'traffic light'\n")
    (labels / "p.txt").write_text("1 0.5 0.5 0.2 0.1\n\n0 0 0 1 0 1 1 0 1\n")
    aset = import_yolo(tmp_path, images)
    assert aset.labels == ["person", "traffic light"]
    box, poly = aset.annotations
    assert (box.label, box.track_id) == ("traffic light", 1) and np.allclose(box.bbox, (4, 9, 2, 2))
    assert poly.track_id == 2 and poly.mask().all()
    (tmp_path / "data.yaml").write_text("names: ['a', \"b c\", d]\n")
    assert import_yolo(tmp_path, images).labels == ["a", "b c", "d"]

    (labels / "p.txt").write_text("3 0.5 0.5 0.2 0.1\n")
    with pytest.raises(ValueError, match=r"p.txt, line 1: class 3 is out of range for the 3 classes"):
        import_yolo(tmp_path, images)
    (labels / "p.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(ValueError, match=r"line 1: 3 coordinates; expected 4 .* or an even count >= 6"):
        import_yolo(tmp_path, images)
    (labels / "p.txt").write_text("zero 0.5 0.5 0.2 0.1\n")
    with pytest.raises(ValueError, match="expected a class index and numbers"):
        import_yolo(tmp_path, images)
    with pytest.raises(ValueError, match=r"matches an image; expected names like \['q'\]"):
        import_yolo(tmp_path, [ImageEntry("q", "q.jpg", 10, 20)])
    (tmp_path / "data.yaml").unlink()
    with pytest.raises(ValueError, match=r"no class names .* classes.txt .* or pass classes="):
        import_yolo(tmp_path, images)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_yolo(tmp_path / "missing", images)
    with pytest.raises(ValueError, match="task must be 'segment' or 'detect'"):
        export_yolo(AnnotationSet(), tmp_path, task="pose")


def test_labelme_files_and_round_trip(tmp_path):
    aset = sample_set()
    files = export_labelme(aset, tmp_path, tolerance=1.0)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [f"{s}.json" for s in STEMS]
    doc = json.loads((tmp_path / "photos/a.json").read_text())
    assert doc["imagePath"] == "a.jpg" and doc["imageData"] is None
    assert (doc["imageHeight"], doc["imageWidth"], doc["flags"]) == (A_H, A_W, {})
    cat = doc["shapes"][0]
    assert cat == {
        "label": "cat",
        "points": [[3, 5], [13, 5], [13, 15], [3, 15]],
        "group_id": 1,
        "shape_type": "polygon",
        "flags": {},
        "description": "",
    }
    assert doc["shapes"][1]["score"] == 0.9
    assert json.loads((tmp_path / "clip_000001.json").read_text())["imagePath"] == "clip_000001.jpg"
    parts = json.loads((tmp_path / "photos/b.json").read_text())["shapes"]
    assert [(s["label"], s["group_id"]) for s in parts] == [("dog", 7), ("dog", 7)]

    back = import_labelme(tmp_path, images=aset.images, labels=aset.labels)
    assert back.labels == aset.labels
    theirs = by_track(back)
    for key, a in by_track(aset).items():
        assert theirs[key].label == a.label and iou(theirs[key].mask(), a.mask()) >= 0.95
    assert theirs["a", 2].score == 0.9

    plain = import_labelme(tmp_path / "photos")  # no image list: plain images keyed by stem
    assert plain.images == [ImageEntry("a", "a.jpg", A_W, A_H), ImageEntry("b", "b.png", B_W, B_H)]
    assert plain.labels == ["cat", "dog"]


def test_labelme_rectangles_and_foreign_shapes(tmp_path):
    aset = sample_set()
    export(aset, "labelme", tmp_path, shape="rectangle", reader=frame_rgb)
    cat = json.loads((tmp_path / "photos/a.json").read_text())["shapes"][0]
    assert cat["shape_type"] == "rectangle" and cat["points"] == [[3, 5], [13, 15]]
    assert (tmp_path / "photos/a.jpg").is_file() and (tmp_path / "clip_000002.jpg").is_file()
    back = by_track(import_labelme(tmp_path, images=aset.images))
    for key, a in by_track(aset).items():
        assert back[key].rle is None and back[key].bbox == a.bbox

    other = tmp_path / "other"
    other.mkdir()
    shapes = [
        {"label": "ball", "points": [[10, 10], [14, 10]], "shape_type": "circle"},
        {"label": "pt", "points": [[1, 1]], "shape_type": "point"},
        {"label": "car", "points": [[2, 2], [6, 2], [6, 5], [2, 5]], "group_id": 3, "shape_type": "polygon"},
        {"label": "car", "points": [[8, 1], [6, 0]], "group_id": 3, "shape_type": "rectangle"},
    ]
    doc = {"shapes": shapes, "imagePath": "img.png", "imageHeight": 20, "imageWidth": 20}
    (other / "img.json").write_text(json.dumps(doc))
    got = import_labelme(other)
    assert got.labels == ["ball", "car"] and got.images == [ImageEntry("img", "img.png", 20, 20)]
    ball, car = sorted(got.annotations, key=lambda a: a.label)
    assert ball.track_id == 4 and 45 <= ball.mask().sum() <= 55  # r = 4 disc, pi r^2 ~ 50
    assert car.track_id == 3 and np.array_equal(
        car.mask(), rect(20, 20, 2, 5, 2, 6) | rect(20, 20, 0, 1, 6, 8)
    )
    (other / "img.json").write_text(json.dumps({"imageHeight": 2, "imageWidth": 2}))
    with pytest.raises(ValueError, match="needs a 'shapes' list"):
        import_labelme(other)
    with pytest.raises(ValueError, match="shape must be 'polygon' or 'rectangle'"):
        export_labelme(aset, tmp_path, shape="circle")
