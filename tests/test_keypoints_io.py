"""Keypoint file IO (OpenPose, COCO results), tracking, frame sources and the video writer."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lift3d import formats
from lift3d.io_utils import LoadError
from lift3d.keypoints import (
    VideoWriter, open_frames, read_coco_results, read_openpose, track_people, write_coco_results,
    write_openpose,
)
from lift3d.types import Keypoints2D


def _people(T: int, fmt: str, centres: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """(T, P, J, 3) people walking slowly, each a random pose ~150 px tall around its centre."""
    rng = np.random.default_rng(seed)
    J = len(formats.names(fmt))
    data = np.zeros((T, len(centres), J, 3))
    for p, (cx, cy) in enumerate(centres):
        pose = rng.uniform(-75, 75, size=(J, 2))
        for t in range(T):
            data[t, p, :, :2] = pose + (cx + 3 * t, cy + rng.normal(0, 1))
            data[t, p, :, 2] = rng.uniform(0.3, 1.0, size=J)
    return data


def _openpose_file(path: Path, poses: list[np.ndarray]) -> None:
    people = [{"person_id": [-1], "pose_keypoints_2d": np.asarray(p).ravel().tolist()} for p in poses]
    path.write_text(json.dumps({"version": 1.3, "people": people}))


# ---------------------------------------------------------------- OpenPose


def test_openpose_roundtrip_two_people(tmp_path):
    kp = Keypoints2D(_people(5, "openpose25", [(150, 200), (450, 220)]), "openpose25", 25, (640, 480))
    paths = write_openpose(kp, tmp_path / "op")
    assert [p.name for p in paths][:2] == ["frame_000000000000_keypoints.json", "frame_000000000001_keypoints.json"]
    doc = json.loads(paths[0].read_text())
    assert len(doc["people"]) == 2 and len(doc["people"][0]["pose_keypoints_2d"]) == 75
    back = read_openpose(tmp_path / "op", fps=25, image_size=(640, 480))
    assert back.format == "openpose25" and back.fps == 25 and back.image_size == (640, 480)
    np.testing.assert_allclose(back.data, kp.data, atol=1e-3)
    assert not list((tmp_path / "op").glob(".*"))  # no temporary files left behind


def test_openpose_swapped_order_is_tracked(tmp_path):
    data = _people(6, "openpose25", [(150, 200), (450, 220)])
    for t in range(6):  # anonymous people (person_id -1), listed in a different order every other frame
        order = [1, 0] if t % 2 else [0, 1]
        _openpose_file(tmp_path / f"f{t}_keypoints.json", [data[t, i] for i in order])
    back = read_openpose(tmp_path)
    assert back.num_people == 2
    np.testing.assert_allclose(back.data, data, atol=1e-9)


def test_openpose_tracks_people_entering_and_leaving(tmp_path):
    data = _people(6, "openpose25", [(150, 200), (450, 220)])
    for t in range(6):  # person B is only in frames 2-3, and listed first
        _openpose_file(tmp_path / f"f{t:02d}.json", ([data[t, 1]] if t in (2, 3) else []) + [data[t, 0]])
    back = read_openpose(tmp_path)
    assert back.num_people == 2
    np.testing.assert_allclose(back.data[:, 0], data[:, 0])  # seen most: slot 0
    np.testing.assert_allclose(back.data[2:4, 1], data[2:4, 1])
    assert (back.confidence[[0, 1, 4, 5], 1] == 0).all()


def test_openpose_coco18_file(tmp_path):
    names18 = formats.names("openpose18")
    pose = np.zeros((18, 3))
    for j in range(len(names18)):
        pose[j] = (100 + 10 * j, 200 + 5 * j, 0.9)
    pose[names18.index("left_ear")] = 0  # OpenPose writes 0, 0, 0 for a joint it did not find
    _openpose_file(tmp_path / "img_keypoints.json", [pose])
    kp = read_openpose(tmp_path / "img_keypoints.json")
    assert kp.format == "openpose18" and kp.data.shape == (1, 1, 18, 3)
    np.testing.assert_allclose(kp.data[0, 0], pose)
    coco = read_openpose([tmp_path / "img_keypoints.json"], fmt="coco17")
    assert coco.format == "coco17"
    np.testing.assert_allclose(coco.data[0, 0, formats.index("coco17", "right_wrist")],
                               pose[names18.index("right_wrist")])
    assert coco.data[0, 0, formats.index("coco17", "left_ear"), 2] == 0


def test_openpose_nan_null_and_nobody(tmp_path):
    pose = _people(1, "openpose25", [(200, 200)])[0, 0].ravel().tolist()
    pose[0:3] = [None, None, None]
    text = json.dumps({"people": [{"pose_keypoints_2d": pose}]}).replace("null, null, null", "NaN, 1.0, NaN", 1)
    (tmp_path / "a_0.json").write_text(text)
    (tmp_path / "a_1.json").write_text(json.dumps({"version": 1.3, "people": []}))
    kp = read_openpose(tmp_path)
    assert kp.data.shape == (2, 1, 25, 3) and np.isfinite(kp.data).all()
    assert kp.data[0, 0, 0, 2] == 0 and (kp.confidence[1] == 0).all()
    assert kp.confidence[0, 0, 1:].min() > 0


def test_openpose_writer_converts_and_removes_stale_frames(tmp_path):
    kp = Keypoints2D(_people(3, "coco17", [(200, 200)]), "coco17", 30, (640, 480))
    write_openpose(Keypoints2D(np.tile(kp.data, (2, 1, 1, 1)), "coco17", 30, (640, 480)), tmp_path)
    write_openpose(kp, tmp_path)  # a shorter second run into the same folder
    back = read_openpose(tmp_path, fmt="coco17")
    assert back.num_frames == 3
    np.testing.assert_allclose(back.data, kp.data, atol=1e-3)


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ('{"version": 1.3, "people": [{"pose_keypoints_2d": [1.0, 2.0', "not valid JSON"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3, 4]}]}', "expected 75"),
    ('{"people": [{"pose_keypoints_2d": ["a"' + ", 0" * 74 + "]}]}", "non-numeric"),
    ('[1, 2, 3]', "no 'people'"),
])
def test_openpose_bad_files(tmp_path, content, message):
    path = tmp_path / "bad_keypoints.json"
    path.write_text(content)
    with pytest.raises(LoadError, match=message) as info:
        read_openpose(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_openpose_missing_and_empty_folder(tmp_path):
    with pytest.raises(LoadError, match="no OpenPose"):
        read_openpose(tmp_path)
    with pytest.raises(LoadError, match="not found"):
        read_openpose(tmp_path / "nope")


def test_openpose_mixed_models_rejected(tmp_path):
    _openpose_file(tmp_path / "f0.json", [np.ones((25, 3))])
    _openpose_file(tmp_path / "f1.json", [np.ones((18, 3))])
    with pytest.raises(LoadError, match="f1.json"):
        read_openpose(tmp_path)


# ---------------------------------------------------------------- COCO results


def test_coco_roundtrip_two_people(tmp_path):
    kp = Keypoints2D(_people(4, "coco17", [(150, 200), (450, 220)]), "coco17", 30, (640, 480))
    write_coco_results(kp, tmp_path / "res.json")
    entries = json.loads((tmp_path / "res.json").read_text())
    assert len(entries) == 8 and entries[0]["category_id"] == 1 and len(entries[0]["keypoints"]) == 51
    back = read_coco_results(tmp_path / "res.json", image_size=(640, 480))
    assert back.format == "coco17" and back.image_size == (640, 480)
    np.testing.assert_allclose(back.data, kp.data, atol=1e-3)


def test_coco_swapped_order_and_string_ids(tmp_path):
    data = _people(12, "coco17", [(150, 200), (450, 220)])
    entries = []
    for t in range(12):  # AlphaPose-style string ids, listed shuffled, people swapped on odd frames
        for p in ([1, 0] if t % 2 else [0, 1]):
            entries.append({"image_id": f"{t}.jpg", "category_id": 1,
                            "keypoints": data[t, p].ravel().tolist(), "score": 0.9})
    entries.append({"image_id": "3.jpg", "category_id": 2, "keypoints": [0] * 51, "score": 1.0})  # not a person
    rng = np.random.default_rng(1)
    entries = [entries[i] for i in rng.permutation(len(entries))]
    (tmp_path / "alphapose-results.json").write_text(json.dumps(entries))
    back = read_coco_results(tmp_path / "alphapose-results.json")  # natural order: 2.jpg before 10.jpg
    assert back.num_people == 2
    # Both people are in every frame, so which gets slot 0 follows the (shuffled) file order;
    # what matters is that each slot keeps one person throughout.
    perm = [0, 1] if np.allclose(back.data[0, 0], data[0, 0]) else [1, 0]
    np.testing.assert_allclose(back.data, data[:, perm])
    # An explicit frame list picks and orders frames; a listed id without detections is an empty frame.
    picked = read_coco_results(tmp_path / "alphapose-results.json", image_ids=["5.jpg", "4.jpg", "99.jpg"])
    assert picked.num_frames == 3
    perm = [0, 1] if np.allclose(picked.data[0, 0], data[5, 0]) else [1, 0]
    np.testing.assert_allclose(picked.data[:2], data[[5, 4]][:, perm])
    assert (picked.confidence[2] == 0).all()


def test_coco_annotation_file_gives_image_size(tmp_path):
    pose = _people(1, "coco17", [(200, 200)])[0, 0]
    pose[:, 2] = 2  # annotation visibility flag "labelled and visible"
    doc = {"images": [{"id": 7, "width": 640, "height": 360}],
           "annotations": [{"image_id": 7, "category_id": 1, "keypoints": pose.ravel().tolist()}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    kp = read_coco_results(tmp_path / "ann.json")
    assert kp.image_size == (640, 360) and (kp.confidence == 1).all()


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ('[{"image_id": 0, "category_id": 1, "keypoints": [1, 2', "not valid JSON"),
    ('[{"image_id": 0, "category_id": 1, "keypoints": [1, 2, 3]}]', "expected 51"),
    ('[{"image_id": 0, "category_id": 1, "keypoints": [' + ", ".join(['"x"'] * 51) + "]}]", "non-numeric"),
    ("[]", "no person"),
    ('{"foo": 1}', "not a COCO"),
])
def test_coco_bad_files(tmp_path, content, message):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(LoadError, match=message) as info:
        read_coco_results(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- tracking


def test_track_people_slots_gating_and_limits():
    a, b, c = _people(8, "coco17", [(100, 100), (400, 100), (250, 400)]).transpose(1, 0, 2, 3)
    empty = np.zeros((0, 17, 3))
    frames = [np.stack([a[0]])] + [np.stack([b[t], a[t]]) for t in range(1, 7)] + [np.stack([c[7], a[7]])]
    out = track_people(frames)
    assert out.shape == (8, 3, 17, 3)
    np.testing.assert_allclose(out[:, 0], a)          # 8 frames
    np.testing.assert_allclose(out[1:7, 1], b[1:7])   # 6 frames
    np.testing.assert_allclose(out[7, 2], c[7])       # 1 frame: a new person, not B's slot
    assert (out[0, 1:, :, 2] == 0).all() and (out[7, 1, :, 2] == 0).all()
    assert track_people(frames, max_people=1).shape == (8, 1, 17, 3)
    # Nobody anywhere: one empty slot; a person who leaves and comes back keeps the slot.
    assert track_people([empty, empty]).shape == (2, 1, 17, 3)
    back = track_people([a[0][None], empty, a[2][None]])
    assert back.shape == (3, 1, 17, 3) and (back[1, 0, :, 2] == 0).all()


# ---------------------------------------------------------------- frame sources


def _write_cv2_video(path: Path, colours_rgb: list[tuple[int, int, int]], fps: float, size=(64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for rgb in colours_rgb:
        writer.write(np.full((size[1], size[0], 3), rgb[::-1], np.uint8))  # OpenCV writes BGR
    writer.release()


def test_video_frame_source(tmp_path):
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)] * 3
    _write_cv2_video(tmp_path / "clip.mp4", colours, fps=12)
    with open_frames(tmp_path / "clip.mp4") as frames:
        assert frames.kind == "video" and frames.fps == pytest.approx(12)
        assert frames.num_frames == 9 and frames.image_size == (64, 48)
        assert iter(frames) is frames  # a stream, not a list
        first = next(frames)
        assert first.shape == (48, 64, 3) and first.dtype == np.uint8
        rest = list(frames)
    assert len(rest) == 8
    for frame, rgb in zip([first] + rest, colours):  # frames come out RGB
        np.testing.assert_allclose(frame.reshape(-1, 3).mean(0), rgb, atol=12)


def test_image_and_folder_sources(tmp_path):
    single = tmp_path / "one.png"
    cv2.imwrite(str(single), np.zeros((20, 30, 3), np.uint8))
    src = open_frames(single)
    assert (src.kind, src.num_frames, src.image_size, src.fps) == ("image", 1, (30, 20), 30.0)
    assert len(list(src)) == 1

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (10, 1, 2):  # natural order: 1, 2, 10
        cv2.imwrite(str(folder / f"img_{i}.png"), np.full((20, 30, 3), i, np.uint8))
    (folder / "notes.txt").write_text("not a frame")
    src = open_frames(folder)
    assert (src.kind, src.num_frames, src.image_size) == ("folder", 3, (30, 20))
    assert [int(f[0, 0, 0]) for f in src] == [1, 2, 10]


def test_bad_frame_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    for name, message in [("missing.mp4", "not found"), ("empty", "no image files"),
                          ("random.mp4", "video"), ("zero.mp4", "video"), ("broken.png", "cannot decode")]:
        with pytest.raises(LoadError, match=message) as info:
            open_frames(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)


def test_video_writer_is_atomic(tmp_path):
    frames = [np.full((48, 64, 3), (200, 30, 30), np.uint8)] * 4
    with VideoWriter(tmp_path / "out.mp4", fps=10) as writer:
        writer.write_all(frames)
        assert not (tmp_path / "out.mp4").exists()  # only appears on close
    with open_frames(tmp_path / "out.mp4") as back:
        assert (back.num_frames, back.image_size, back.fps) == (4, (64, 48), 10.0)
        np.testing.assert_allclose(next(back).reshape(-1, 3).mean(0), (200, 30, 30), atol=12)

    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "crash.mp4", fps=10) as writer:
        writer.write(frames[0])
        raise RuntimeError("crash mid-video")
    with pytest.raises(ValueError, match="64x48"), VideoWriter(tmp_path / "sizes.mp4", fps=10) as writer:
        writer.write(frames[0])
        writer.write(np.zeros((10, 10, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no partial files left
