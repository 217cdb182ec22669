"""MODEL.WEIGHTS that is not a checkpoint: the error names the file and the accepted formats, whether
the weights are loaded for training (Trainer.resume_or_load) or for evaluation."""
import numpy as np
import pytest
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from ccnet_d2.checkpoint import explain_checkpoint_errors
from ccnet_d2.engine import Trainer
from tests.common import TOY_SEMANTIC_CONFIG, build_cfg


def _model():
    return build_model(build_cfg(TOY_SEMANTIC_CONFIG))


# Garbage of several kinds: unpickling fails with different exception types on each.
NOT_CHECKPOINTS = [("random.pth", np.random.default_rng(0).bytes(300)), ("utf8.pth", b"\x8f" + bytes(299)),
                   ("text.pkl", b"hello world\n"), ("empty.pth", b""), ("zip.pth", b"PK\x03\x04" + bytes(100))]


@pytest.mark.parametrize("name, content", NOT_CHECKPOINTS)
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"cannot load '{path}' as a checkpoint .* Detectron2 model-zoo \.pkl"):
        with explain_checkpoint_errors(str(path)):
            DetectionCheckpointer(_model()).load(str(path))


def test_a_real_checkpoint_loads_through_the_same_path(tmp_path):
    model = _model()
    torch.save({"model": model.state_dict()}, str(tmp_path / "model.pth"))
    with explain_checkpoint_errors(str(tmp_path / "model.pth")):
        DetectionCheckpointer(_model()).load(str(tmp_path / "model.pth"))


@pytest.mark.parametrize("content", [content for _, content in NOT_CHECKPOINTS[:2]])
def test_trainer_names_the_weights_file(tmp_path, monkeypatch, content):
    monkeypatch.setenv("CCNET_D2_TOY_ROOT", str(tmp_path / "toy"))
    weights = tmp_path / "weights.pth"
    weights.write_bytes(content)
    cfg = build_cfg(TOY_SEMANTIC_CONFIG, "MODEL.WEIGHTS", str(weights), "OUTPUT_DIR", str(tmp_path / "out"),
                    "DATALOADER.NUM_WORKERS", "0")
    trainer = Trainer(cfg)
    with pytest.raises(ValueError, match=rf"cannot load '{weights}' as a checkpoint"):
        trainer.resume_or_load(resume=True)  # no last_checkpoint yet: MODEL.WEIGHTS is loaded


def test_eval_only_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, monkeypatch, caplog):
    """``train_net --eval-only --resume`` evaluates the newest intact checkpoint of OUTPUT_DIR, naming the
    truncated one it skips, as training's --resume does."""
    from detectron2.engine import default_argument_parser

    from ccnet_d2.checkpoint import AtomicCheckpointer
    from tests.common import load_tool

    out = tmp_path / "out"
    out.mkdir()
    saved = _model()
    AtomicCheckpointer(saved, save_dir=str(out)).save("model_0000001", iteration=1)
    (out / "model_0000003.pth").write_bytes(b"PK\x03\x04 half a checkpoint")
    (out / "last_checkpoint").write_text("model_0000003.pth")
    train_net = load_tool("train_net")
    evaluated = []
    monkeypatch.setattr(train_net.Trainer, "test", classmethod(lambda cls, cfg, model: evaluated.append(model) or {}))
    for logging_setup in ("default_setup", "setup_logger"):  # they would stop the logs propagating to caplog
        monkeypatch.setattr(train_net, logging_setup, lambda *args, **kwargs: None)
    args = default_argument_parser().parse_args(["--config-file", TOY_SEMANTIC_CONFIG, "--eval-only", "--resume",
                                                 "OUTPUT_DIR", str(out), "MODEL.DEVICE", "cpu"])
    with caplog.at_level("WARNING"):
        train_net.main(args)
    assert f"Cannot resume from {out / 'model_0000003.pth'}" in caplog.text
    loaded = evaluated[0].state_dict()
    for name, value in saved.state_dict().items():
        torch.testing.assert_close(loaded[name], value, rtol=0, atol=0, msg=name)
