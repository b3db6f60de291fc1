"""Export/import formats: COCO (against pycocotools), MOT, palette PNGs, overlay mp4, the dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet.io.exporters import object_colors
from masklet.io.masks import encode_rle, mask_to_uncompressed_rle
from masklet.studio.annotations import Annotation, AnnotationSet, ImageEntry
from masklet.studio.formats import FORMATS, export, export_coco, export_mot, export_png_masks, import_coco

from .format_cases import V_H, V_W, by_track, frame_rgb, iou, rect, sample_set

# pycocotools' own use of numpy's __array__ protocol, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_coco_rle_round_trip_is_exact(tmp_path):
    aset = sample_set()
    (path,) = export_coco(aset, tmp_path / "ann.json")
    back = import_coco(path)
    assert back.images == aset.images  # keys, file names, sizes, video and frame index
    assert back.labels == aset.labels and back.colors == aset.colors
    ours, theirs = by_track(aset), by_track(back)
    assert ours.keys() == theirs.keys()
    for k, a in ours.items():
        b = theirs[k]
        assert (b.label, b.bbox, b.rle, b.score) == (a.label, a.bbox, a.rle, a.score)


def test_coco_file_content_and_pycocotools(tmp_path):
    coco_api = pytest.importorskip("pycocotools.coco")
    aset = sample_set()
    (path,) = export_coco(aset, tmp_path / "ann.json")
    doc = json.loads(path.read_text())
    assert doc["videos"] == [{"id": 1, "name": "clip"}]
    assert [c["id"] for c in doc["categories"]] == [1, 2, 3]
    assert [c["name"] for c in doc["categories"]] == ["cat", "dog", "bird"]
    clip = [im for im in doc["images"] if "video_id" in im]
    assert [(im["video_id"], im["frame_id"]) for im in clip] == [(1, 0), (1, 1), (1, 2)]
    assert "video_id" not in doc["images"][0]
    first = doc["annotations"][0]
    assert first["bbox"] == [3, 5, 10, 10] and first["area"] == 100 and first["iscrowd"] == 0
    assert isinstance(first["segmentation"]["counts"], str) and first["track_id"] == 1
    assert [a.get("score") for a in doc["annotations"][:2]] == [None, 0.9]

    coco = coco_api.COCO(str(path))
    masks = {(a.image, a.track_id): a.mask() for a in aset.annotations}
    keys = {im["id"]: im["key"] for im in doc["images"]}
    assert len(coco.getAnnIds()) == len(masks) == 8
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert np.array_equal(coco.annToMask(ann).astype(bool), masks[keys[ann["image_id"]], ann["track_id"]])

    (poly_path,) = export_coco(aset, tmp_path / "poly.json", segmentation="polygon", tolerance=1.0)
    coco = coco_api.COCO(str(poly_path))
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert isinstance(ann["segmentation"], list) and all(len(r) >= 6 for r in ann["segmentation"])
        assert iou(coco.annToMask(ann).astype(bool), masks[keys[ann["image_id"]], ann["track_id"]]) >= 0.95
    two_parts = [a for a in coco.loadAnns(coco.getAnnIds()) if a["track_id"] == 7]
    assert len(two_parts[0]["segmentation"]) == 2


@pytest.mark.parametrize("tolerance, min_iou", [(0.0, 1.0), (1.0, 0.95)])
def test_coco_polygon_round_trip(tmp_path, tolerance, min_iou):
    aset = sample_set()
    (path,) = export_coco(aset, tmp_path / "poly.json", segmentation="polygon", tolerance=tolerance)
    back = by_track(import_coco(path))
    for k, a in by_track(aset).items():
        assert back[k].label == a.label
        assert iou(back[k].mask(), a.mask()) >= min_iou


def test_import_plain_coco_from_another_tool(tmp_path):
    h, w = 10, 12
    crowd = rect(h, w, 0, 4, 0, 5)
    doc = {
        "images": [{"id": 3, "file_name": "x/1.jpg", "width": w, "height": h}],
        "categories": [{"id": 7, "name": "person"}, {"id": 2, "name": "car"}, {"id": 9, "name": "car"}],
        "annotations": [
            {
                "id": 11,
                "image_id": 3,
                "category_id": 2,
                "iscrowd": 1,
                "segmentation": mask_to_uncompressed_rle(crowd),
            },
            {
                "id": 12,
                "image_id": 3,
                "category_id": 7,
                "segmentation": [[6, 5, 10, 5, 10, 9, 6, 9]],
                "bbox": [0] * 4,
            },
            {
                "id": 13,
                "image_id": 3,
                "category_id": 9,
                "segmentation": [6, 0, 8, 0, 8, 2, 6, 2],
            },  # unwrapped
            {"id": 14, "image_id": 3, "category_id": 7, "bbox": [1.5, 2, 3, 4]},
        ],
    }
    path = tmp_path / "other.json"
    path.write_text(json.dumps(doc))
    aset = import_coco(path)
    assert aset.images == [ImageEntry("x/1.jpg", "x/1.jpg", w, h)]
    assert aset.labels == ["person", "car"]
    got = {a.track_id: a for a in aset.annotations}
    assert sorted(got) == [11, 12, 13, 14]  # track ids are the COCO ids
    assert got[11].label == "car" and np.array_equal(got[11].mask(), crowd)
    assert got[11].rle == encode_rle(crowd)  # stored compressed
    assert np.array_equal(got[12].mask(), rect(h, w, 5, 9, 6, 10)) and got[12].bbox == (6, 5, 4, 4)
    assert got[13].label == "car" and np.array_equal(got[13].mask(), rect(h, w, 0, 2, 6, 8))
    assert got[14].rle is None and got[14].bbox == (1.5, 2, 3, 4)


def _coco(tmp_path, **changes) -> Path:
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
    }
    doc.update(changes)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}))
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"images": None}, "missing the 'images' list"),
        ({"annotations": [{"id": 5, "image_id": 2, "category_id": 1}]}, "annotation 5 refers to image_id 2"),
        ({"annotations": [{"id": 5, "image_id": 1, "category_id": 4}]}, "category_id 4, which is not in"),
        ({"annotations": [{"id": 5, "category_id": 1}]}, r"lacks \['image_id'\]"),
        ({"images": [{"id": 1, "file_name": "a.jpg"}]}, r"lacks \['width', 'height'\]"),
        (
            {"annotations": [{"id": 5, "image_id": 1, "category_id": 1}]},
            "neither a segmentation nor a 'bbox'",
        ),
        (
            {
                "annotations": [
                    {"id": 5, "image_id": 1, "category_id": 1, "segmentation": encode_rle(np.ones((2, 2)))}
                ]
            },
            r"RLE size \[2, 2\] differs from its image's \[height, width\] \[3, 4\]",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 1, "category_id": 1, "segmentation": {"size": [3, 4]}}]},
            "invalid RLE segmentation",
        ),
        (
            {"annotations": [{"id": 5, "image_id": 1, "category_id": 1, "segmentation": [[1, 2, 3]]}]},
            "even count",
        ),
    ],
)
def test_malformed_coco_errors_say_what_to_fix(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        import_coco(_coco(tmp_path, **changes))


def test_coco_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_coco(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text('{"images": [')
    with pytest.raises(ValueError, match=r"broken.json is not valid JSON .*line 1"):
        import_coco(tmp_path / "broken.json")


def test_mot_lines_and_label_map(tmp_path):
    aset = sample_set()
    aset.annotations.append(Annotation("clip/00000", "dog", 3, (1.25, 2.5, 4.125, 6.0), score=0.5))
    files = export_mot(aset, tmp_path)
    assert [f.name for f in files] == ["clip.txt", "clip.labels.json", "clip.frames.txt"]
    assert (tmp_path / "clip.frames.txt").read_text() == "1\n2\n3\n"
    assert (tmp_path / "clip.txt").read_text().splitlines() == [
        "1,1,2,4,8,8,1,-1,-1,-1",
        "1,3,1.25,2.5,4.125,6,0.5,-1,-1,-1",
        "2,1,6,4,8,8,1,-1,-1,-1",
        "2,5,20,15,12,10,1,-1,-1,-1",
        "3,1,10,4,8,8,1,-1,-1,-1",
        "3,5,20,15,12,10,1,-1,-1,-1",
    ]
    assert json.loads((tmp_path / "clip.labels.json").read_text()) == {"1": "cat", "3": "dog", "5": "dog"}
    # a set with some frames of the video: the frames file says which ones the lines cover
    first_last = [im for im in aset.images if im.key not in ("clip/00001",)]
    keep = [a for a in aset.annotations if a.image != "clip/00001"]
    export_mot(AnnotationSet(first_last, aset.labels, keep), tmp_path / "part")
    assert (tmp_path / "part" / "clip.frames.txt").read_text() == "1\n3\n"
    assert [r.split(",")[0] for r in (tmp_path / "part" / "clip.txt").read_text().splitlines()] == [
        "1",
        "1",
        "3",
        "3",
    ]
    images_only = AnnotationSet(sample_set().images[:2], ["cat"], [])
    with pytest.raises(ValueError, match="no video frames.*coco, yolo or labelme"):
        export_mot(images_only, tmp_path / "x")


def test_png_masks_values_palette_and_mapping(tmp_path):
    aset = sample_set()
    files = export_png_masks(aset, tmp_path)
    names = sorted(f.relative_to(tmp_path).as_posix() for f in files)
    assert names == [
        "clip/00000.png", "clip/00001.png", "clip/00002.png", "objects.json", "photos/a.png", "photos/b.png",
    ]  # fmt: skip
    doc = json.loads((tmp_path / "objects.json").read_text())
    assert doc["videos"]["clip"] == {
        "folder": "clip",
        "objects": {"1": {"track_id": 1, "label": "cat"}, "2": {"track_id": 5, "label": "dog"}},
    }
    assert doc["images"]["photos/b.png"] == {"image": "b", "objects": {"1": {"track_id": 7, "label": "dog"}}}
    masks = {(a.image, a.track_id): a.mask() for a in aset.annotations}
    for t in range(3):
        with Image.open(tmp_path / f"clip/{t:05d}.png") as im:
            assert im.mode == "P"
            palette = np.asarray(im.getpalette()[:9]).reshape(3, 3)
            values = np.asarray(im)
        assert np.array_equal(values == 1, masks[f"clip/{t:05d}", 1])
        assert np.array_equal(values == 2, masks.get((f"clip/{t:05d}", 5), np.zeros((V_H, V_W), bool)))
        assert np.array_equal(palette[1:], object_colors([1, 2]))
    with Image.open(tmp_path / "photos/a.png") as im:
        values = np.asarray(im)
    assert np.array_equal(values == 2, masks["a", 2])
    assert np.array_equal(values == 1, masks["a", 1] & ~masks["a", 2])  # higher value on top


def test_overlay_mp4_decodes_to_every_frame(tmp_path):
    av = pytest.importorskip("av")
    aset = sample_set()
    (path,) = export(aset, "mp4", tmp_path, reader=frame_rgb, fps=12)
    assert path == tmp_path / "clip.mp4"
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        rate = container.streams.video[0].average_rate
    assert len(frames) == 3 and frames[0].shape == (V_H, V_W, 3) and rate == 12
    # the cat square is drawn: its pixels differ from the plain frame, the corner does not
    plain = frame_rgb("clip/00000").astype(int)
    assert np.abs(frames[0][6:10, 4:8].astype(int) - plain[6:10, 4:8]).mean() > 20
    assert np.abs(frames[0][24:, :2].astype(int) - plain[24:, :2]).mean() < 8
    assert not list(tmp_path.glob(".*partial*"))


def test_dispatcher_writes_every_format(tmp_path):
    aset = sample_set()
    for fmt in FORMATS:
        files = export(aset, fmt, tmp_path / fmt, reader=frame_rgb)
        assert files and all(f.is_file() and f.stat().st_size > 0 for f in files if f.suffix != ".txt")
        assert not list((tmp_path / fmt).rglob(".*partial*")), fmt
    assert (tmp_path / "coco" / "annotations.json").is_file()
    assert isinstance(json.loads((tmp_path / "coco_polygon/annotations.json").read_text())["annotations"][0]
                      ["segmentation"], list)  # fmt: skip


def test_dispatcher_and_validation_errors(tmp_path):
    aset = sample_set()
    with pytest.raises(
        ValueError, match="unknown export format 'voc'; choose one of: coco, coco_polygon, yolo_seg"
    ):
        export(aset, "voc", tmp_path)
    with pytest.raises(ValueError, match="format 'mot' has no option 'tolerance'; its options are: none"):
        export(aset, "mot", tmp_path, tolerance=2)
    with pytest.raises(ValueError, match="its options are: tolerance"):
        export(aset, "coco", tmp_path, segmentation="polygon")
    with pytest.raises(ValueError, match="pass reader="):
        export(aset, "mp4", tmp_path)
    stray = AnnotationSet(aset.images, aset.labels, [Annotation.from_mask("zz", "cat", 1, np.ones((2, 2)))])
    with pytest.raises(ValueError, match="refers to image 'zz', which is not in the set's images"):
        export(stray, "coco", tmp_path)
    unlabeled = AnnotationSet(aset.images, ["cat"], aset.annotations)
    with pytest.raises(ValueError, match="label 'dog'.*add it to AnnotationSet.labels"):
        export(unlabeled, "yolo_det", tmp_path)
    wrong_size = AnnotationSet(aset.images, ["cat"], [Annotation.from_mask("a", "cat", 1, np.ones((3, 3)))])
    with pytest.raises(ValueError, match=r"is \[3, 3\] .* but the image is \[30, 40\]"):
        export(wrong_size, "png", tmp_path)
    with pytest.raises(ValueError, match="segmentation must be 'rle' or 'polygon'"):
        export_coco(aset, tmp_path / "x.json", segmentation="mask")


def test_failed_export_leaves_old_files_intact(tmp_path):
    aset = sample_set()
    (path,) = export(aset, "mp4", tmp_path, reader=frame_rgb)
    before = path.read_bytes()

    def broken(key):
        if key.endswith("2"):
            raise OSError("disk went away")
        return frame_rgb(key)

    with pytest.raises(OSError, match="disk went away"):
        export(aset, "mp4", tmp_path, reader=broken)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
