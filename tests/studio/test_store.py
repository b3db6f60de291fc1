"""The studio's project store: every method, its error messages, transactions, reopening, cleanup."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

import numpy as np
import pytest

from masklet.io.masks import mask_to_box_xywh
from masklet.studio.mask_files import encode_mask_file
from masklet.studio.store import Label, Project, ProjectError, Prompt
from masklet.studio.store_records import LABEL_PALETTE

H, W, N = 24, 32, 10


@pytest.fixture
def project(tmp_path):
    with Project.create(tmp_path / "proj") as p:
        yield p


@pytest.fixture
def clip(project):
    return project.add_media("video", "/data/clip.mp4", "clip", N, W, H, 25.0)


def random_mask(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w)) < 0.4


def mask_files(project) -> set[str]:
    return {p.stem for p in (project.path / "masks").glob("*/*.json")}


# -- folders, opening, closing ----------------------------------------------------------------------


def test_create_open_and_errors(tmp_path):
    folder = tmp_path / "new" / "proj"
    with Project.create(folder) as p:
        assert p.path == folder and (folder / "project.db").is_file() and (folder / "masks").is_dir()
        assert p.revision() == 0 and "revision 0" in repr(p)
    with pytest.raises(ProjectError, match="already holds a masklet studio project; open it"):
        Project.create(folder)
    with pytest.raises(ProjectError, match="does not exist or is not a folder"):
        Project.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProjectError, match="is not a masklet studio project \\(it has no project.db\\)"):
        Project.open(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProjectError, match="is a file; give a folder path"):
        Project.create(tmp_path / "file")
    with Project.open_or_create(tmp_path / "other") as p:  # creates
        p.set_setting("k", 1)
    with Project.open_or_create(tmp_path / "other") as p:  # opens
        assert p.get_setting("k") == 1


def test_open_refuses_foreign_and_newer_databases(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "project.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ProjectError, match="is not a masklet studio project database"):
        Project.open(junk)
    other = tmp_path / "other"
    other.mkdir()
    sqlite3.connect(other / "project.db").execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ProjectError, match="is not a masklet studio project database"):
        Project.open(other)
    Project.create(tmp_path / "p").close()
    for version, message in (
        ("99", "written by a newer masklet .*upgrade masklet"),
        ("x", "unknown project schema"),
    ):
        conn = sqlite3.connect(tmp_path / "p" / "project.db")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
        conn.commit()
        conn.close()
        with pytest.raises(ProjectError, match=message):
            Project.open(tmp_path / "p")


def test_a_version_1_project_opens_and_takes_machine_masks(tmp_path):
    """Schema 1 (masks of sources prompt/track/import/auto) is upgraded in place on open, its rows kept."""
    p = Project.create(tmp_path / "p")
    mid = p.add_media("video", str(tmp_path / "clip.mp4"), "clip", 3, W, H, None, None).id
    obj = p.new_object(mid, 0)
    p.put_masks([(obj.id, 0, random_mask(1), "track", 0.5)])
    p.close()
    conn = sqlite3.connect(tmp_path / "p" / "project.db")
    ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'masks'").fetchone()[0]
    conn.executescript(
        "ALTER TABLE masks RENAME TO m; DROP INDEX masks_by_frame;"
        + ddl.replace(", 'machine'", "")
        + "; CREATE INDEX masks_by_frame ON masks(media_id, frame); INSERT INTO masks SELECT * FROM m; "
        "DROP TABLE m; UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    with pytest.raises(sqlite3.IntegrityError):  # what schema 1 refuses
        conn.execute("UPDATE masks SET source = 'machine'")
    conn.close()
    p = Project.open(tmp_path / "p")
    try:
        assert p._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
        assert [(i.frame, i.source, i.score) for i in p.all_mask_infos(mid)] == [(0, "track", 0.5)]
        assert np.array_equal(p.mask(obj.id, 0), random_mask(1))
        p.put_masks([(obj.id, 1, random_mask(2), "machine", None)])
        assert [i.source for i in p.all_mask_infos(mid)] == ["track", "machine"]
    finally:
        p.close()


def test_database_settings(project):
    db = project._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_closed_project_says_so(tmp_path):
    p = Project.create(tmp_path / "p")
    p.close()
    p.close()  # twice is fine
    with pytest.raises(ProjectError, match="is closed; open it again"):
        p.media()
    assert "closed" in repr(p)


def test_reopen_keeps_everything(tmp_path):
    folder = tmp_path / "p"
    m = random_mask(1)
    with Project.create(folder) as p:
        clip = p.add_media("video", "/v.mp4", "v", N, W, H, 30.0)
        obj = p.new_object(clip.id, 2)
        p.set_prompts(obj.id, 2, [Prompt("point", 3.5, 4.0), Prompt("box", 1, 1, 9, 9)])
        p.put_masks([(obj.id, 2, m, "prompt", 0.75)])
        p.finish_object(obj.id, "car")
        p.set_setting("shape_mode", "polygon")
        rev = p.revision()
        before = (p.media(), p.labels(), p.objects(), p.prompts(obj.id), p.all_mask_infos(clip.id))
    with Project.open(folder) as p:
        assert (p.media(), p.labels(), p.objects(), p.prompts(obj.id), p.all_mask_infos(clip.id)) == before
        assert np.array_equal(p.mask(obj.id, 2), m)
        assert p.get_setting("shape_mode") == "polygon" and p.revision() == rev


def test_revision_grows_with_every_change_only(project, clip):
    revs = [project.revision()]
    obj = project.new_object(clip.id, 0)
    revs.append(project.revision())
    project.objects(), project.labels(), project.media()  # reads do not count
    assert project.revision() == revs[-1]
    project.set_prompts(obj.id, 0, [Prompt("point", 1, 1)])
    revs.append(project.revision())
    project.put_masks([(obj.id, 0, random_mask(0), "prompt", None)])
    revs.append(project.revision())
    with pytest.raises(ProjectError):
        project.finish_object(obj.id, "")
    assert project.revision() == revs[-1]  # a refused call changes nothing
    assert revs == sorted(set(revs)) and len(revs) == 4


# -- settings and media -----------------------------------------------------------------------------


def test_settings(project):
    assert project.get_setting("missing", "dflt") == "dflt"
    project.set_setting("polygon_tolerance", 1.5)
    project.set_setting("nested", {"a": [1, 2, None], "b": True})
    assert project.get_setting("polygon_tolerance") == 1.5
    assert project.get_setting("nested") == {"a": [1, 2, None], "b": True}
    with pytest.raises(ProjectError, match="must be JSON data"):
        project.set_setting("bad", object())
    with pytest.raises(ProjectError, match="must be JSON data"):
        project.set_setting("bad", float("nan"))
    with pytest.raises(ProjectError, match="a setting key must be a non-empty string"):
        project.set_setting("", 1)


def test_media(project, tmp_path, monkeypatch):
    clip = project.add_media("video", tmp_path / "clip.mp4", "clip", N, W, H, 25)
    assert clip.source == str(tmp_path / "clip.mp4") and clip.fps == 25.0 and clip.kind == "video"
    assert project.add_media("video", tmp_path / "sub" / ".." / "clip.mp4", "again", 3, 1, 1) == clip
    monkeypatch.chdir(tmp_path)
    assert project.add_media("video", "clip.mp4", "relative", 3, 1, 1) == clip
    photos = project.add_media(
        "images",
        tmp_path / "photos",
        "photos",
        2,
        320,
        240,
        frames=[("a.png", 320, 240), ("b.jpg", 200, 300)],
    )
    assert photos.fps is None
    assert project.media() == [clip, photos] and project.get_media(photos.id) == photos
    info = project.frame_info(clip.id, 7)
    assert (info.name, info.width, info.height, info.index, info.media_id) == ("000007", W, H, 7, clip.id)
    info = project.frame_info(photos.id, 1)
    assert (info.name, info.width, info.height) == ("b.jpg", 200, 300)
    with pytest.raises(ProjectError, match="no media 99 in this project \\(media ids: \\[1, 2\\]\\)"):
        project.get_media(99)
    with pytest.raises(
        ProjectError, match="frame 10 is out of range for media 1 \\('clip' has 10 frames\\): use 0..9"
    ):
        project.frame_info(clip.id, 10)
    with pytest.raises(ProjectError, match="frame index must be an integer"):
        project.frame_info(clip.id, 1.0)


@pytest.mark.parametrize(
    "args, message",
    [
        (("movie", "/a", "a", 1, 1, 1), "media kind must be 'video' or 'images'"),
        (("video", "", "a", 1, 1, 1), "a media source must be a file or folder path"),
        (("video", "/a", " ", 1, 1, 1), "a media name must be a non-empty string"),
        (("video", "/a", "a", 0, 1, 1), "num_frames must be >= 1"),
        (("video", "/a", "a", 1, 0, 1), "media width must be >= 1"),
        (("video", "/a", "a", 1, 1, 1, -2.0), "fps must be a positive number or None"),
        (("images", "/a", "a", 2, 1, 1, None, [("x", 1, 1)]), "frames lists 1 images but num_frames is 2"),
        (("images", "/a", "a", 1, 1, 1, None, [("x", 0, 1)]), "frames\\[0\\] width must be >= 1"),
        (("images", "/a", "a", 1, 1, 1, None, [("x", 1)]), "frames\\[0\\] must be \\(name, width, height\\)"),
    ],
)
def test_add_media_errors(project, args, message):
    with pytest.raises(ProjectError, match=message):
        project.add_media(*args)
    assert project.media() == [] and project.revision() == 0


# -- labels -----------------------------------------------------------------------------------------


def test_labels(project, clip):
    car = project.add_label("  car ")
    person = project.add_label("person", "#AABBCC")
    assert car == Label(car.id, "car", LABEL_PALETTE[0]) and person.color == "#aabbcc"
    assert project.add_label("Car").color == LABEL_PALETTE[1]  # names are case-sensitive
    assert project.add_label("bike").color == LABEL_PALETTE[2]  # the next unused palette colour
    assert [lb.name for lb in project.labels()] == ["car", "person", "Car", "bike"]
    assert project.label(person.id) == person and project.label_by_name(" car") == car
    assert project.label_by_name("truck") is None
    with pytest.raises(ProjectError, match="a label named 'car' already exists"):
        project.add_label("car")
    with pytest.raises(ProjectError, match="a label name cannot be empty"):
        project.add_label("   ")
    with pytest.raises(ProjectError, match="at most 100 characters, got 101"):
        project.add_label("x" * 101)
    with pytest.raises(ProjectError, match="a label color must be '#rrggbb'"):
        project.add_label("tree", "red")
    with pytest.raises(ProjectError, match="a label name must be a string"):
        project.add_label(3)
    with pytest.raises(ProjectError, match="there is no label 99 .*reload the label list"):
        project.label(99)


def test_auto_colors_are_distinct_then_cycle(project):
    colors = [project.add_label(f"l{i}").color for i in range(len(LABEL_PALETTE) + 2)]
    assert colors[: len(LABEL_PALETTE)] == list(LABEL_PALETTE)
    assert colors[-2:] == [LABEL_PALETTE[0], LABEL_PALETTE[1]]


def test_rename_recolor_merge_delete(project, clip):
    car, auto, person = project.add_label("car"), project.add_label("auto"), project.add_label("person")
    a, b = project.new_object(clip.id, 0), project.new_object(clip.id, 0)
    project.finish_object(a.id, "car")
    project.finish_object(b.id, "auto")
    assert project.rename_label(car.id, " vehicle ").name == "vehicle"
    assert project.rename_label(car.id, "vehicle").name == "vehicle"  # its own name: fine
    with pytest.raises(
        ProjectError, match="'auto' already exists; to combine the two, merge label 'vehicle'"
    ):
        project.rename_label(car.id, "auto")
    assert project.recolor_label(car.id, "#00FF00").color == "#00ff00"
    with pytest.raises(ProjectError, match="'#rrggbb'"):
        project.recolor_label(car.id, "#00ff0")
    assert project.label_counts() == {car.id: 1, auto.id: 1, person.id: 0}
    with pytest.raises(
        ProjectError, match="label 'auto' is used by 1 object\\(s\\); merge it into another label"
    ):
        project.delete_label(auto.id)
    assert project.merge_labels(auto.id, car.id) == project.label(car.id)
    assert project.get_object(b.id).label_id == car.id and project.label_counts() == {car.id: 2, person.id: 0}
    with pytest.raises(ProjectError, match="there is no label"):
        project.label(auto.id)
    with pytest.raises(ProjectError, match="cannot merge label 'vehicle' into itself"):
        project.merge_labels(car.id, car.id)
    with pytest.raises(ProjectError, match="there is no label 42"):
        project.merge_labels(42, car.id)
    project.delete_label(person.id)
    assert [lb.id for lb in project.labels()] == [car.id]
    with pytest.raises(ProjectError, match="there is no label"):
        project.recolor_label(person.id, "#000000")


# -- objects and prompts ----------------------------------------------------------------------------


def test_objects_and_track_ids_never_reused(project, clip):
    other = project.add_media("video", "/other.mp4", "other", 5, W, H)
    a, b = project.new_object(clip.id, 3), project.new_object(clip.id, 0)
    assert (a.status, a.label_id, a.track_id, a.created_frame, a.end_frame) == ("pending", None, 1, 3, None)
    assert b.track_id == 2 and project.new_object(other.id, 0).track_id == 1  # numbered per media
    project.delete_object(b.id)
    c = project.new_object(clip.id, 1)
    assert c.track_id == 3 and c.id != b.id  # neither the track id nor the object id comes back
    project.delete_object(c.id)
    assert project.new_object(clip.id, 1).track_id == 4
    assert [o.track_id for o in project.objects(clip.id)] == [1, 4]
    with pytest.raises(ProjectError, match="there is no object .* reload the frame"):
        project.get_object(b.id)
    with pytest.raises(ProjectError, match="there is no object"):
        project.delete_object(b.id)
    with pytest.raises(ProjectError, match="frame 10 is out of range"):
        project.new_object(clip.id, 10)
    with pytest.raises(ProjectError, match="there is no media 9"):
        project.new_object(9, 0)


def test_object_status_labels_and_filters(project, clip):
    a, b = project.new_object(clip.id, 0), project.new_object(clip.id, 0)
    assert project.pending_object(clip.id) == b
    done = project.finish_object(a.id, " dog ")
    assert done.status == "done" and done.track_id == a.track_id
    assert project.label(done.label_id).name == "dog"
    assert project.objects(status="done") == [done] and project.objects(clip.id, "pending") == [b]
    relabeled = project.set_object_label(a.id, "cat")
    assert relabeled.status == "done" and project.label(relabeled.label_id).name == "cat"
    assert project.set_object_label(b.id, "cat").status == "pending"
    with pytest.raises(ProjectError, match="object status must be 'pending' or 'done'"):
        project.objects(status="finished")
    with pytest.raises(ProjectError, match="a label name cannot be empty"):
        project.finish_object(b.id, "")
    assert project.get_object(b.id).status == "pending"
    project.finish_object(b.id, "cat")
    assert project.pending_object(clip.id) is None


def test_prompts(project, clip):
    a, b = project.new_object(clip.id, 0), project.new_object(clip.id, 0)
    pa = [Prompt("point", 1, 2), Prompt("point", 5.5, 6, positive=False), Prompt("box", 1, 1, 8, 9)]
    project.set_prompts(a.id, 4, pa)
    project.set_prompts(a.id, 1, [Prompt("point", 0, 0)])
    project.set_prompts(b.id, 4, [Prompt("box", 2, 2, 3, 3)])
    assert project.prompts(a.id) == {1: [Prompt("point", 0, 0)], 4: pa}
    assert list(project.prompts(a.id)) == [1, 4]
    assert project.prompts_on(clip.id, 4) == {a.id: pa, b.id: [Prompt("box", 2, 2, 3, 3)]}
    project.set_prompts(a.id, 4, pa[:1])  # replaces
    assert project.prompts(a.id)[4] == pa[:1]
    project.set_prompts(a.id, 4, [])  # removes
    assert 4 not in project.prompts(a.id)
    assert project.prompts_on(clip.id, 4) == {b.id: [Prompt("box", 2, 2, 3, 3)]}
    with pytest.raises(ProjectError, match="prompts\\[0\\] must be a Prompt"):
        project.set_prompts(a.id, 1, [{"kind": "point", "x": 1, "y": 1}])
    with pytest.raises(ProjectError, match="prompts must be a list of Prompt"):
        project.set_prompts(a.id, 1, Prompt("point", 1, 1))
    with pytest.raises(ProjectError, match="frame 10 is out of range"):
        project.set_prompts(a.id, 10, [])
    with pytest.raises(ProjectError, match="there is no object 99"):
        project.set_prompts(99, 1, [])
    assert project.prompts(a.id) == {1: [Prompt("point", 0, 0)]}


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("line", 1, 1), {}, "kind must be 'point' or 'box'"),
        (("point", float("nan"), 1), {}, "prompt x0 must be a finite number"),
        (("point", "1", 1), {}, "prompt x0 must be a number"),
        (("point", 1, 1, 2, 2), {}, "a point prompt has only x0, y0"),
        (("box", 1, 1), {}, "prompt x1 must be a number, got None"),
        (("box", 1, 1, 2, float("inf")), {}, "prompt y1 must be a finite number"),
        (("point", 1, 1), {"positive": 1}, "'positive' must be True or False"),
    ],
)
def test_prompt_validation(args, kwargs, message):
    with pytest.raises(ProjectError, match=message):
        Prompt(*args, **kwargs)


def test_prompt_dicts():
    point, box = Prompt("point", np.float32(1.5), 2, positive=np.bool_(False)), Prompt("box", 1, 2, 3, 4)
    assert point.x0 == 1.5 and type(point.x0) is float and point.positive is False
    assert point.to_dict() == {"kind": "point", "x": 1.5, "y": 2.0, "positive": False}
    assert box.to_dict() == {"kind": "box", "x0": 1.0, "y0": 2.0, "x1": 3.0, "y1": 4.0}
    assert Prompt.from_dict(point.to_dict()) == point and Prompt.from_dict(box.to_dict()) == box
    with pytest.raises(ProjectError, match="a box prompt needs x0, y0, x1, y1; missing y1"):
        Prompt.from_dict({"kind": "box", "x0": 1, "y0": 1, "x1": 2})
    with pytest.raises(ProjectError, match="a prompt must be a JSON object"):
        Prompt.from_dict([1, 2])


def test_delete_and_end_object(project, clip):
    a, b = project.new_object(clip.id, 0), project.new_object(clip.id, 0)
    for t in range(6):
        project.set_prompts(a.id, t, [Prompt("point", t, t)])
    project.put_masks([(a.id, t, random_mask(t), "track", None) for t in range(6)])
    project.put_masks([(b.id, 2, random_mask(9), "prompt", None)])
    ended = project.end_object_at(a.id, 3)
    assert ended.end_frame == 3 and project.get_object(a.id).end_frame == 3
    assert list(project.prompts(a.id)) == [0, 1, 2] and project.coverage(clip.id)[a.id] == [0, 1, 2]
    with pytest.raises(ProjectError, match="frame 10 is out of range"):
        project.end_object_at(a.id, 10)
    project.delete_object(a.id)
    assert project._one("SELECT COUNT(*) FROM prompts WHERE object_id = ?", (a.id,))[0] == 0
    assert project._one("SELECT COUNT(*) FROM masks WHERE object_id = ?", (a.id,))[0] == 0
    assert project.coverage(clip.id) == {b.id: [2]}


# -- masks ------------------------------------------------------------------------------------------


def test_masks_round_trip_exactly(project, clip):
    a, b = project.new_object(clip.id, 0), project.new_object(clip.id, 0)
    masks = {(a.id, t): random_mask(t) for t in range(N)}
    masks[b.id, 3] = np.zeros((H, W), bool)
    masks[b.id, 4] = np.ones((H, W), bool)
    uint8 = (random_mask(77) * 255).astype(np.uint8)
    infos = project.put_masks([(o, t, m, "track", 0.5 + t / 100) for (o, t), m in masks.items()])
    infos += project.put_masks([(b.id, 5, uint8, "auto", None)])
    masks[b.id, 5] = uint8 > 0
    for info in infos:
        m = masks[info.object_id, info.frame]
        assert info.area == int(m.sum()) and info.bbox == tuple(mask_to_box_xywh(m))
        assert info.digest == encode_mask_file(m)[1]
        stored = project.mask(info.object_id, info.frame)
        assert stored.dtype == np.bool_ and np.array_equal(stored, m)
    assert infos[3].score == pytest.approx(0.53) and infos[-1].score is None and infos[-1].source == "auto"
    assert project.mask(a.id, 0) is not None and project.mask(b.id, 0) is None
    assert [i.object_id for i in project.mask_infos(clip.id, 3)] == [a.id, b.id]
    on3 = project.masks_on(clip.id, 3)
    assert set(on3) == {a.id, b.id} and np.array_equal(on3[a.id], masks[a.id, 3])
    assert project.coverage(clip.id) == {a.id: list(range(N)), b.id: [4, 5]}  # the empty mask is not coverage
    assert [(i.object_id, i.frame) for i in project.all_mask_infos(clip.id)] == sorted(masks)


def test_put_masks_replaces_and_shares_files(project, clip):
    a, b = project.new_object(clip.id, 0), project.new_object(clip.id, 0)
    m1, m2 = random_mask(1), random_mask(2)
    project.put_masks([(a.id, 0, m1, "prompt", 0.9), (b.id, 0, m1, "prompt", 0.8)])
    assert len(mask_files(project)) == 1  # equal masks share one file
    (info,) = project.put_masks([(a.id, 0, m2, "track", None)])
    assert np.array_equal(project.mask(a.id, 0), m2) and project.mask_infos(clip.id, 0)[0] == info
    # the same (object, frame) twice in one call: the later one wins
    project.put_masks([(a.id, 1, m1, "track", None), (a.id, 1, m2, "track", None)])
    assert np.array_equal(project.mask(a.id, 1), m2)


def test_put_masks_checks_everything_first(project, clip):
    a = project.new_object(clip.id, 0)
    photos = project.add_media("images", "/photos", "photos", 2, 8, 6, frames=[("a", 8, 6), ("b", 5, 4)])
    p = project.new_object(photos.id, 0)
    good = (a.id, 0, random_mask(0), "track", None)
    bad_items = [
        (
            (a.id, 0, np.zeros((H, W + 1), bool), "track", None),
            "has shape \\(24, 33\\) but that frame is 24x32",
        ),
        ((p.id, 1, np.zeros((6, 8), bool), "track", None), "that frame is 4x5 \\(height x width\\)"),
        ((99, 0, random_mask(0), "track", None), "there is no object 99"),
        ((a.id, N, random_mask(0), "track", None), "frame 10 is out of range"),
        ((a.id, 0, random_mask(0), "guess", None), "source must be one of prompt, track, import, auto, mach"),
        ((a.id, 0, random_mask(0), "track", float("nan")), "a mask score must be a finite number"),
        ((a.id, 0, np.zeros((2, H, W)), "track", None), "must be an \\(H, W\\) numpy array, got shape"),
        ((a.id, 0, [[1]], "track", None), "must be an \\(H, W\\) numpy array, got list"),
        ((a.id, 0, random_mask(0)), "must be a tuple \\(object_id, frame, mask, source, score\\)"),
    ]
    rev = project.revision()
    for bad, message in bad_items:
        with pytest.raises(ProjectError, match=message):
            project.put_masks([good, bad])
    assert project.revision() == rev and project.all_mask_infos(clip.id) == []  # nothing half-stored
    assert mask_files(project) == set()  # and no file was written for a refused batch
    project.put_masks([(p.id, 1, np.ones((4, 5)), "import", None)])
    assert project.mask(p.id, 1).shape == (4, 5)


def test_delete_masks(project, clip):
    a = project.new_object(clip.id, 0)
    project.put_masks([(a.id, t, random_mask(t), "track", None) for t in range(N)])
    project.delete_masks(a.id, frames=[1, 3])
    assert project.coverage(clip.id)[a.id] == [0, 2, 4, 5, 6, 7, 8, 9]
    project.delete_masks(a.id, from_frame=6)
    assert project.coverage(clip.id)[a.id] == [0, 2, 4, 5]
    with pytest.raises(ProjectError, match="either frames or from_frame, not both"):
        project.delete_masks(a.id, frames=[0], from_frame=1)
    with pytest.raises(ProjectError, match="frame 12 is out of range"):
        project.delete_masks(a.id, frames=[0, 12])
    assert project.coverage(clip.id)[a.id] == [0, 2, 4, 5]  # the refused call removed nothing
    project.delete_masks(a.id)
    assert project.coverage(clip.id) == {a.id: []} and project.mask(a.id, 0) is None
    with pytest.raises(ProjectError, match="there is no object 99"):
        project.delete_masks(99)


def test_damaged_mask_files_are_reported(project, clip):
    a = project.new_object(clip.id, 0)
    (info,) = project.put_masks([(a.id, 0, random_mask(0), "prompt", None)])
    path = project.path / "masks" / info.digest[:2] / f"{info.digest}.json"
    path.write_text(path.read_text().replace('"size"', '"sizE"'))
    with pytest.raises(ProjectError, match="does not match its checksum .*restore it from a backup"):
        project.mask(a.id, 0)
    path.unlink()
    with pytest.raises(ProjectError, match="is missing, so the project is damaged"):
        project.mask(a.id, 0)


# -- transactions and threads -----------------------------------------------------------------------


def test_transaction_commits_together_or_not_at_all(project, clip):
    a = project.new_object(clip.id, 0)
    rev = project.revision()
    with pytest.raises(RuntimeError, match="boom"):
        with project.transaction():
            project.set_prompts(a.id, 0, [Prompt("point", 1, 1)])
            project.put_masks([(a.id, 0, random_mask(0), "prompt", None)])
            project.finish_object(a.id, "new-label")
            raise RuntimeError("boom")
    assert project.prompts(a.id) == {} and project.mask(a.id, 0) is None
    assert project.get_object(a.id).status == "pending" and project.labels() == []
    assert project.revision() == rev
    with project.transaction():
        project.set_prompts(a.id, 0, [Prompt("point", 1, 1)])
        with project.transaction():  # re-entrant
            project.put_masks([(a.id, 0, random_mask(0), "prompt", None)])
        assert project.revision() == rev  # not committed yet
    assert project.revision() == rev + 1  # one commit, one revision
    assert project.prompts(a.id) == {0: [Prompt("point", 1, 1)]} and project.mask(a.id, 0) is not None


def test_failed_step_inside_a_transaction_undoes_only_itself(project, clip):
    a = project.new_object(clip.id, 0)
    with project.transaction():
        project.set_prompts(a.id, 0, [Prompt("point", 1, 1)])
        with pytest.raises(ProjectError):
            project.put_masks(
                [(a.id, 1, random_mask(1), "track", None), (a.id, 2, np.zeros((1, 1)), "track", None)]
            )
        with pytest.raises(ProjectError):
            project.add_label("x" * 200)
        with pytest.raises(ProjectError, match="close after the block ends"):
            project.close()
    assert project.prompts(a.id) == {0: [Prompt("point", 1, 1)]} and project.coverage(clip.id) == {a.id: []}


def test_threads_share_one_project(project, clip):
    objs = [project.new_object(clip.id, 0) for _ in range(4)]
    errors = []

    def work(obj):
        try:
            for t in range(N):
                with project.transaction():
                    project.set_prompts(obj.id, t, [Prompt("point", t, t)])
                    project.put_masks([(obj.id, t, random_mask(obj.id * 100 + t), "track", None)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(o,)) for o in objs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for o in objs:
        assert project.coverage(clip.id)[o.id] == list(range(N))
        assert np.array_equal(project.mask(o.id, 5), random_mask(o.id * 100 + 5))


# -- cleanup on open --------------------------------------------------------------------------------


def _write_orphan(root, seed: int, mtime: float | None = None) -> str:
    data, digest = encode_mask_file(random_mask(seed))
    path = root / "masks" / digest[:2] / f"{digest}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return digest


def test_open_removes_unreferenced_files_only(tmp_path):
    folder = tmp_path / "p"
    with Project.create(folder) as p:
        clip = p.add_media("video", "/v.mp4", "v", N, W, H)
        a = p.new_object(clip.id, 0)
        (old,) = p.put_masks([(a.id, 0, random_mask(1), "prompt", None)])
        (kept,) = p.put_masks([(a.id, 0, random_mask(2), "prompt", None)])  # replaces: old is unreferenced
        (shared,) = p.put_masks([(a.id, 1, random_mask(3), "track", None)])
        p.put_masks([(a.id, 2, random_mask(3), "track", None)])
        b = p.new_object(clip.id, 0)
        (gone,) = p.put_masks([(b.id, 0, random_mask(4), "prompt", None)])
        p.delete_object(b.id)
        assert {old.digest, kept.digest, shared.digest, gone.digest} <= mask_files(p)
    orphan = _write_orphan(folder, 5)
    future = _write_orphan(folder, 6, time.time() + 3600)  # written "after the open": not touched
    (folder / "masks" / "notes.txt").write_text("not ours")
    (folder / "masks" / kept.digest[:2] / "readme").write_text("not ours either")
    with Project.open(folder) as p:
        assert mask_files(p) == {kept.digest, shared.digest, future}
        assert np.array_equal(p.mask(a.id, 0), random_mask(2))
        assert np.array_equal(p.mask(a.id, 2), random_mask(3))
    assert orphan not in mask_files(p)
    assert (folder / "masks" / "notes.txt").exists()
    assert (folder / "masks" / kept.digest[:2] / "readme").exists()


@pytest.mark.skipif(os.name == "nt", reason="folder locks need fcntl")
def test_no_cleanup_while_another_project_instance_is_open(tmp_path):
    folder = tmp_path / "p"
    first = Project.create(folder)
    orphan = _write_orphan(folder, 5)
    with Project.open(folder) as second:  # the first may be writing files it has not committed yet
        assert orphan in mask_files(second)
    first.close()
    with Project.open(folder) as third:
        assert orphan not in mask_files(third)


def test_mask_file_format_is_coco_rle_json(project, clip):
    a = project.new_object(clip.id, 0)
    m = random_mask(3)
    (info,) = project.put_masks([(a.id, 0, m, "prompt", None)])
    rle = json.loads((project.path / "masks" / info.digest[:2] / f"{info.digest}.json").read_text())
    assert rle["size"] == [H, W] and isinstance(rle["counts"], str)
    pycocotools = pytest.importorskip("pycocotools.mask")
    assert np.array_equal(pycocotools.decode({"size": rle["size"], "counts": rle["counts"].encode()}), m)


def test_failed_file_write_changes_nothing(project, clip, monkeypatch):
    from masklet.studio import mask_files as mf

    a = project.new_object(clip.id, 0)
    (before,) = project.put_masks([(a.id, 0, random_mask(0), "prompt", None)])

    def full_disk(file, data):
        file.write(data[:5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mf, "_write_bytes", full_disk)
    rev = project.revision()
    with pytest.raises(ProjectError, match="could not write mask files .*No space left.*nothing was changed"):
        project.put_masks(
            [(a.id, 0, random_mask(1), "track", None), (a.id, 1, random_mask(2), "track", None)]
        )
    assert project.revision() == rev and project.all_mask_infos(clip.id) == [before]
    assert mask_files(project) == {before.digest}
    assert not list((project.path / "masks").glob("*/.*.tmp"))  # the partial temp file is gone
