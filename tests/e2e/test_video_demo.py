"""tools/demo.py with a video model: a video is segmented frame by frame with ClipPredictor over the clip
centred on each frame (checked against ClipPredictor called by hand); an image is refused with the reason."""
import cv2
import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from ccnet_d2 import ClipPredictor
from tests.common import TOY_VIDEO_CONFIG, build_cfg, load_tool
from tests.export.seeded import seeded_model

pytestmark = pytest.mark.slow

demo = load_tool("demo")


def test_centred_clips_repeat_the_ends():
    for count in (1, 2, 5, 9):
        for length, step in ((1, 1), (3, 1), (3, 2), (5, 2)):
            got = list(demo.centred_clips(iter(range(count)), length, step))
            expected = [(i, [min(max(i + k * step, 0), count - 1) for k in range(-(length // 2), length // 2 + 1)])
                        for i in range(count)]
            assert got == expected, (count, length, step)


def test_demo_segments_a_video_with_clips_and_refuses_an_image(tmp_path, monkeypatch):
    model = seeded_model(TOY_VIDEO_CONFIG)
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("seeded")
    weights = str(tmp_path / "seeded.pth")
    rng = np.random.RandomState(0)
    frames = [rng.randint(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(5)]
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for frame in frames:
        writer.write(frame)
    writer.release()

    calls = []
    monkeypatch.setattr(demo, "draw_predictions", lambda image, predictions, name: calls.append(predictions) or image)
    written = demo.main(["--config-file", TOY_VIDEO_CONFIG, "--input", video, "--output", str(tmp_path / "out"),
                         "--opts", "MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu"])
    assert len(written) == 1 and len(calls) == 5
    decoded = []
    capture = cv2.VideoCapture(video)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decoded.append(frame)
    cfg = build_cfg(TOY_VIDEO_CONFIG, "MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu")
    predictor, step = ClipPredictor(cfg), cfg.INPUT.CLIP_FRAME_STEP
    assert (predictor.clip_length, step) == (3, 3)
    for index in range(5):  # the clip of frame i: i-3, i, i+3 (T=3, step 3), the ends repeated
        clip = [decoded[min(max(index + k * step, 0), 4)] for k in (-1, 0, 1)]
        torch.testing.assert_close(calls[index]["sem_seg"], predictor(clip)["sem_seg"])
    # (negative control: the neighbours matter; frame 1 alone, repeated, gives another prediction)
    assert not torch.allclose(calls[1]["sem_seg"], predictor([decoded[1]] * 3)["sem_seg"], atol=1e-3)

    image = str(tmp_path / "frame.png")
    cv2.imwrite(image, frames[0])
    with pytest.raises(SystemExit, match=r"is a video model \(INPUT.CLIP_LENGTH 3\).*Give a video file"):
        demo.main(["--config-file", TOY_VIDEO_CONFIG, "--input", image, "--output", str(tmp_path / "out"),
                   "--opts", "MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu"])
