"""CamVid: registration on a generated tree in SegNet's layout, the frame preparation from 30 Hz
sources (extracted frames and a video file), clip files and the clip mapper."""
import os

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image

from ccnet_d2.data import ClipDatasetMapper, check_dataset_available
from ccnet_d2.data.clip_mapper import clip_frame_files
from ccnet_d2.data.datasets.camvid import parse_frame_name
from tests.common import TOY_VIDEO_CONFIG, build_cfg, load_tool

from .trees import CAMVID_NAMES, CAMVID_SEQUENCE_FRAMES, camvid_source_frame, make_camvid_tree


@pytest.fixture
def camvid(dataset_root):
    labels, source = make_camvid_tree(str(dataset_root))
    return os.path.join(str(dataset_root), "CamVid"), labels, source


def _prepare(camvid_root, source, *args):
    return load_tool("prepare_camvid").main([source, camvid_root, *args])


def test_metadata_names_the_eleven_classes_and_the_void_label(dataset_root):
    meta = MetadataCatalog.get("camvid_sem_seg_test")
    assert meta.stuff_classes == ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                                  "Car", "Pedestrian", "Bicyclist"]
    assert meta.ignore_label == 11 and meta.evaluator_type == "sem_seg"


def test_frame_names_give_sequence_and_index():
    assert parse_frame_name("CamVid/train/0001TP_006690.png") == ("0001TP", 6690)
    assert parse_frame_name("0006R0_f00930.png") == ("0006R0", 930)
    assert parse_frame_name("Seq05VD_f00000.png") == ("Seq05VD", 0)
    with pytest.raises(ValueError, match="sequence and frame index from 'picture.png'"):
        parse_frame_name("picture.png")


def test_records_follow_the_segnet_layout(camvid):
    camvid_root, labels, _ = camvid
    for split, names in CAMVID_NAMES.items():
        check_dataset_available(f"camvid_sem_seg_{split}")
        records = DatasetCatalog.get(f"camvid_sem_seg_{split}")
        assert [r["image_id"] for r in records] == sorted(names)
        for r in records:
            assert r["file_name"] == os.path.join(camvid_root, split, r["image_id"] + ".png")
            assert r["sem_seg_file_name"] == os.path.join(camvid_root, split + "annot", r["image_id"] + ".png")
            np.testing.assert_array_equal(read_image(r["sem_seg_file_name"], "L")[:, :, 0], labels[split][r["image_id"]])
            sequence, index = r["image_id"].split("_")[0], int(r["image_id"].split("_")[1].lstrip("f"))
            assert r["frames_dir"] == os.path.join(camvid_root, "frames", sequence) and r["frame_index"] == index
            assert r["sequence_frames"] is None  # frames not prepared yet


def test_missing_camvid_names_the_expected_tree_and_the_variable(dataset_root):
    with pytest.raises(FileNotFoundError) as error:
        DatasetCatalog.get("camvid_sem_seg_train")
    for expected in ("camvid_sem_seg_train", "CamVid/", "{train,val,test}annot/", "frames/<seq>/<frame:06d>.png",
                     "tools/prepare_camvid.py", "DETECTRON2_DATASETS", str(dataset_root)):
        assert expected in str(error.value)


def test_preparation_writes_the_neighbouring_frames_resized_and_the_sequence_length(camvid):
    camvid_root, _, source = camvid
    report = _prepare(camvid_root, source, "--max-offset", "3")
    for sequence, length in CAMVID_SEQUENCE_FRAMES.items():
        frames_dir = os.path.join(camvid_root, "frames", sequence)
        with open(os.path.join(frames_dir, "frame_count.txt")) as f:
            assert int(f.read()) == length
        labelled = [int(n.split("_")[1].lstrip("f")) for names in CAMVID_NAMES.values() for n in names
                    if n.startswith(sequence)]
        wanted = sorted({i + o for i in labelled for o in range(-3, 4) if 0 <= i + o < length})
        written = sorted(int(n[:-4]) for n in os.listdir(frames_dir) if n.endswith(".png"))
        assert written == wanted
        tolerance = 4.0 if sequence == "0016E5" else 0.0  # the video is MJPG, the extracted frames PNG
        for index in wanted:
            frame = cv2.imread(os.path.join(frames_dir, f"{index:06d}.png"))
            expected = cv2.resize(camvid_source_frame(sequence, index), (48, 36), interpolation=cv2.INTER_AREA)
            assert np.abs(frame.astype(float) - expected).mean() <= tolerance, (sequence, index)
        assert report[sequence][1] <= tolerance  # labelled images line up with their source frames
    records = DatasetCatalog.get("camvid_sem_seg_test")
    assert [r["sequence_frames"] for r in records] == [34, 34]


def test_misaligned_numbering_shows_in_the_report_and_bad_sources_are_refused(camvid):
    camvid_root, _, source = camvid
    with pytest.raises(SystemExit, match=r"must be numbered 1, 2, .* the lowest 0"):
        _prepare(camvid_root, source, "--first-number", "1")  # the files are numbered from 0
    folder = os.path.join(source, "0001TP")
    for i in reversed(range(CAMVID_SEQUENCE_FRAMES["0001TP"])):  # now numbered from 1, read from 0: one frame late
        os.rename(os.path.join(folder, f"{i:06d}.png"), os.path.join(folder, f"{i + 1:06d}.png"))
    with pytest.raises(SystemExit, match=r"must be numbered 0, 1, .* the lowest 1"):
        _prepare(camvid_root, source)
    os.rename(os.path.join(folder, f"{CAMVID_SEQUENCE_FRAMES['0001TP']:06d}.png"), os.path.join(folder, "000000.png"))
    report = _prepare(camvid_root, source, "--max-offset", "1")
    assert report["0001TP"][1] > 5 * max(report["0006R0"][1], report["0016E5"][1], 1.0)
    for i in (30, 31, 32, 33):
        os.remove(os.path.join(source, "Seq05VD", f"{i:06d}.png"))
    with pytest.raises(SystemExit, match=r"Seq05VD.*has 30 frames, but frames \[30\] are labelled"):
        _prepare(camvid_root, source)
    os.rename(os.path.join(source, "0006R0"), os.path.join(source, "elsewhere"))
    with pytest.raises(SystemExit, match="sequence 0006R0: expected one video file 0006R0.<ext> or a folder 0006R0/"):
        _prepare(camvid_root, source)


def test_clip_files_are_centred_and_clamped_to_the_sequence():
    record = {"file_name": "f.png", "frames_dir": "d", "frame_index": 30, "sequence_frames": 34}
    assert clip_frame_files(record, 5, 3) == ["d/000024.png", "d/000027.png", "f.png", "d/000033.png", "d/000033.png"]
    start = dict(record, frame_index=0)
    assert clip_frame_files(start, 3, 2) == ["f.png", "f.png", "d/000002.png"]
    assert clip_frame_files({"file_name": "f.png"}, 1, 1) == ["f.png"]
    with pytest.raises(ValueError, match="INPUT.CLIP_LENGTH must be an odd number"):
        clip_frame_files(record, 4, 1)
    with pytest.raises(FileNotFoundError, match="frame_count.txt' is missing"):
        clip_frame_files(dict(record, sequence_frames=None), 3, 1)


def _mapper(*overrides):
    cfg = build_cfg(TOY_VIDEO_CONFIG, "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "11", "MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "11",
                    "INPUT.CROP.SIZE", "(24, 32)", "INPUT.SCALE_RANGE", "(0.6, 1.6)", *overrides)
    return ClipDatasetMapper(cfg, is_train=True, augmentations=__import__(
        "ccnet_d2.data", fromlist=["build_semantic_train_augmentations"]).build_semantic_train_augmentations(cfg))


def test_clip_mapper_gives_every_frame_the_labelled_frames_augmentation(camvid):
    camvid_root, _, source = camvid
    _prepare(camvid_root, source, "--max-offset", "6")
    record = next(r for r in DatasetCatalog.get("camvid_sem_seg_train") if r["image_id"] == "0001TP_000030")
    frames_dir = record["frames_dir"]
    for index in (27, 33):  # the neighbours of a 3-frame clip with step 3: copies of the labelled image
        cv2.imwrite(os.path.join(frames_dir, f"{index:06d}.png"), cv2.imread(record["file_name"]))
    mapper = _mapper("INPUT.CLIP_LENGTH", "3", "INPUT.CLIP_FRAME_STEP", "3")
    crops = set()
    for seed in range(6):
        np.random.seed(seed)
        mapped = mapper(record)
        frames = mapped["frames"]
        assert frames.shape == (3, 3, 24, 32) and frames.dtype == torch.uint8
        assert torch.equal(frames[1], mapped["image"]) and mapped["sem_seg"].shape == (24, 32)
        assert torch.equal(frames[0], frames[1]) and torch.equal(frames[2], frames[1])
        crops.add(frames[1].float().sum().item())
    assert len(crops) > 1  # the augmentation is random: the equality above is not trivial
    # Real neighbours differ from the labelled frame but keep its size after augmentation.
    mapped = _mapper("INPUT.CLIP_LENGTH", "5", "INPUT.CLIP_FRAME_STEP", "1")(record)
    assert mapped["frames"].shape == (5, 3, 24, 32) and not torch.equal(mapped["frames"][0], mapped["frames"][2])


def test_clip_mapper_names_a_missing_frame(camvid):
    camvid_root, _, source = camvid
    _prepare(camvid_root, source, "--max-offset", "2")
    record = next(r for r in DatasetCatalog.get("camvid_sem_seg_train") if r["image_id"] == "0001TP_000030")
    with pytest.raises(FileNotFoundError, match=r"frame '.*0001TP/000024.png' of the clip around"):
        _mapper("INPUT.CLIP_LENGTH", "5", "INPUT.CLIP_FRAME_STEP", "3")(record)
