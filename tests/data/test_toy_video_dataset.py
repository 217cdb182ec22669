"""The built-in toy video dataset: deterministic, in CamVid's layout (read by the CamVid loader),
moving shapes whose labels match the frames, regenerated when incomplete."""
import os

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from ccnet_d2.data.datasets import toy_video

SMALL_SPLITS = {"train": (2, 11), "val": (1, 12)}


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(toy_video, "TOY_VIDEO_SPLITS", SMALL_SPLITS)


def test_generation_is_deterministic_and_in_camvid_layout(tmp_path, small):
    a = toy_video.ensure_toy_video_dataset(str(tmp_path / "a"))
    b = toy_video.ensure_toy_video_dataset(str(tmp_path / "b"))
    assert sorted(os.listdir(os.path.join(a, "train"))) == [
        f"toytrain{s:03d}_{i:06d}.png" for s in range(2) for i in toy_video.LABELLED_FRAMES]
    for rel in ["train/toytrain001_000018.png", "valannot/toyval000_000030.png", "frames/toytrain000/000011.png",
                "frames/toyval000/frame_count.txt"]:
        with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
            assert fa.read() == fb.read(), rel
    assert toy_video.ensure_toy_video_dataset(str(tmp_path / "a")) == a


def test_labelled_frames_are_frames_of_their_sequence_with_moving_shapes(tmp_path, small):
    base = toy_video.ensure_toy_video_dataset(str(tmp_path))
    frames = os.path.join(base, "frames", "toytrain000")
    np.testing.assert_array_equal(cv2.imread(os.path.join(base, "train", "toytrain000_000018.png")),
                                  cv2.imread(os.path.join(frames, "000018.png")))
    label = cv2.imread(os.path.join(base, "trainannot", "toytrain000_000018.png"), cv2.IMREAD_UNCHANGED)
    assert label.dtype == np.uint8 and set(np.unique(label)) <= {0, 1, 2, 3} and (label > 0).any()
    moved = [np.abs(cv2.imread(os.path.join(frames, "000018.png")).astype(int)
                    - cv2.imread(os.path.join(frames, f"{18 + d:06d}.png"))).mean() for d in (1, 6)]
    assert 0 < moved[0] < moved[1]  # shapes move a little per frame, more over six


def test_registration_reads_it_with_the_camvid_loader(tmp_path, small):
    names = ["ccnet_toy_video_train", "ccnet_toy_video_val"]
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    toy_video.register_all_toy_video(str(tmp_path))
    try:
        records = DatasetCatalog.get("ccnet_toy_video_val")
        assert len(records) == len(toy_video.LABELLED_FRAMES)
        assert [r["frame_index"] for r in records] == list(toy_video.LABELLED_FRAMES)
        assert all(r["sequence_frames"] == toy_video.SEQUENCE_FRAMES for r in records)
        assert MetadataCatalog.get("ccnet_toy_video_val").stuff_classes == ["background", "circle", "triangle", "square"]
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        toy_video.register_all_toy_video()


def test_an_incomplete_tree_is_generated_again(tmp_path, small, caplog):
    base = toy_video.ensure_toy_video_dataset(str(tmp_path))
    os.remove(os.path.join(base, "frames", "toyval000", "000020.png"))
    assert toy_video.ensure_toy_video_dataset(str(tmp_path)) == base
    assert "is incomplete" in caplog.text and "toyval000" in caplog.text
    assert os.path.isfile(os.path.join(base, "frames", "toyval000", "000020.png"))
