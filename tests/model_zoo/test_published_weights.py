"""``MODEL.WEIGHTS ccnet://<source>/<model>``: download from a local HTTP server (no internet), verify,
convert, cache and load; refuse a truncated download, a wrong hash and a web page, keeping nothing.

The served files are generated state dicts with the published key layouts (the reference networks of
``tests/checkpoint``, narrow), and the table entries point at the server and at narrow copies of the
entries' configs.
"""
import hashlib
import http.server
import io
import os
import threading

import pytest
import torch
import yaml

from ccnet_d2 import Predictor, model_zoo
from ccnet_d2.checkpoint import convert_ccnet_state_dict
from ccnet_d2.model_zoo import PUBLISHED_CHECKPOINTS, PublishedWeightsError, published
from tests.checkpoint.test_convert_ccnet import FAMILIES, _narrow_pair
from tests.common import REPO_ROOT, config_path


class _Server:
    """Serves ``files[path] = (bytes, how)``: how is "full", "truncated" (announces every byte, sends half)
    or "html" (a web page instead of the file). Counts the requests per path."""

    def __init__(self):
        self.files, self.requests = {}, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests[self.path] = server.requests.get(self.path, 0) + 1
                if self.path not in server.files:
                    self.send_error(404)
                    return
                body, how = server.files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if how == "html" else "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if how == "truncated" else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server():
    served = _Server()
    yield served
    served.httpd.shutdown()


def _narrow_config(tmp_path, family):
    """A yaml whose base is the family's real config, narrowed as the conversion tests narrow it."""
    overrides = ["MODEL.RESNETS.DEPTH", "101", "MODEL.RESNETS.NORM", "BN", "MODEL.SEM_SEG_HEAD.NORM", "BN",
                 *FAMILIES[family][3]]
    tree = {"_BASE_": config_path(FAMILIES[family][0])}
    for key, value in zip(overrides[::2], overrides[1::2]):
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    path = tmp_path / f"narrow_{family}.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def _published_file(family, seed=0):
    """(bytes of a checkpoint in the family's published layout, its state dict)."""
    _, state = _narrow_pair(family, seed=seed)
    state = {k: v.float() for k, v in state.items()}
    buffer = io.BytesIO()
    torch.save({"meta": {"note": "generated"}, "state_dict": state} if family == "mmseg" else state, buffer)
    return buffer.getvalue(), state


@pytest.fixture
def publish(server, tmp_path, monkeypatch):
    """publish(name, family, how="full", hash="right"|"wrong"|None) -> the served state dict; the entry
    ``ccnet://<name>`` points at the server, with the cache in tmp_path."""
    monkeypatch.setenv("CCNET_D2_CACHE", str(tmp_path / "cache"))

    def publish_one(name, family, how="full", hash="right", miou=50.0, seed=0):
        body, state = _published_file(family, seed)
        digest = hashlib.sha256(body).hexdigest()[:8]
        server.files[f"/{name}.pth"] = (body, how)
        prefix = {"right": digest, "wrong": "0" * 8 if digest != "0" * 8 else "1" * 8, None: None}[hash]
        monkeypatch.setitem(PUBLISHED_CHECKPOINTS, name, published.PublishedCheckpoint(
            family, f"{server.base}/{name}.pth", _narrow_config(tmp_path, family), "test", miou, prefix))
        return state

    return publish_one


def _cache_files(tmp_path):
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def _assert_loaded(model, state, family):
    loaded = model.state_dict()
    for key, value in convert_ccnet_state_dict(state, family).model.items():
        torch.testing.assert_close(loaded[key], value.to(loaded[key].dtype), rtol=0, atol=0, msg=key)


def test_mmseg_weights_by_name_download_verify_convert_and_load_in_a_predictor(publish, server, tmp_path):
    state = publish("mmseg/narrow_a", "mmseg")
    cfg = model_zoo.get_config(PUBLISHED_CHECKPOINTS["mmseg/narrow_a"].config)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "ccnet://mmseg/narrow_a"])
    predictor = Predictor(cfg)
    _assert_loaded(predictor.model, state, "mmseg")
    assert _cache_files(tmp_path) == ["converted/mmseg/narrow_a.pth", "downloads/mmseg/narrow_a.pth"]
    assert predictor(torch.randint(0, 256, (40, 56, 3), dtype=torch.uint8).numpy())["sem_seg"].shape[1:] == (40, 56)
    # The second use loads the cached conversion: no request reaches the server.
    Predictor(cfg)
    assert server.requests["/mmseg/narrow_a.pth"] == 1


def test_official_weights_by_name_through_model_zoo_get(publish, tmp_path):
    state = publish("official/narrow_b", "official", hash=None)
    model = model_zoo.get("ccnet://official/narrow_b", trained=True, device="cpu")
    _assert_loaded(model, state, "official")
    assert not model.training


def test_get_with_a_config_path_loads_its_best_published_checkpoint(publish):
    publish("mmseg/narrow_worse", "mmseg", miou=40.0, seed=1)
    best = publish("mmseg/narrow_best", "mmseg", miou=60.0, seed=2)
    config = PUBLISHED_CHECKPOINTS["mmseg/narrow_best"].config
    _assert_loaded(model_zoo.get(config, trained=True, device="cpu"), best, "mmseg")
    with pytest.raises(ValueError, match="no published checkpoint is for config"):
        model_zoo.get("Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml", trained=True, device="cpu")


@pytest.mark.parametrize("how, hash, message", [
    ("truncated", "right", "stopped after"),
    ("full", "wrong", "publisher's hash"),
    ("html", "right", "web page"),
])
def test_a_bad_download_is_refused_naming_the_url_and_the_cache_path_and_nothing_is_kept(publish, server, tmp_path,
                                                                                         how, hash, message):
    publish("mmseg/narrow_bad", "mmseg", how=how, hash=hash)
    with pytest.raises(PublishedWeightsError, match=message) as error:
        model_zoo.local_weights("ccnet://mmseg/narrow_bad")
    assert f"{server.base}/mmseg/narrow_bad.pth" in str(error.value)
    assert str(tmp_path / "cache" / "downloads" / "mmseg" / "narrow_bad.pth") in str(error.value) or hash == "wrong"
    assert _cache_files(tmp_path) == []
    # Served correctly afterwards, the same name works: nothing of the failed attempt was used.
    state = publish("mmseg/narrow_bad", "mmseg")
    model = model_zoo.get("ccnet://mmseg/narrow_bad", trained=True, device="cpu")
    _assert_loaded(model, state, "mmseg")


def test_a_file_put_in_the_cache_by_hand_is_used_offline_and_checked(publish, server, tmp_path):
    publish("mmseg/narrow_offline", "mmseg")
    body, _ = server.files.pop("/mmseg/narrow_offline.pth")  # the server no longer has it
    download = tmp_path / "cache" / "downloads" / "mmseg" / "narrow_offline.pth"
    download.parent.mkdir(parents=True)
    download.write_bytes(body[:-10] + b"0123456789")
    with pytest.raises(PublishedWeightsError, match="publisher's hash"):
        model_zoo.local_weights("ccnet://mmseg/narrow_offline")
    download.write_bytes(body)
    assert os.path.isfile(model_zoo.local_weights("ccnet://mmseg/narrow_offline"))
    assert "/mmseg/narrow_offline.pth" not in server.requests


def test_weights_that_do_not_fit_the_config_are_refused(publish, tmp_path):
    publish("official/narrow_misfit", "official", hash=None)
    entry = PUBLISHED_CHECKPOINTS["official/narrow_misfit"]
    misfit = tmp_path / "misfit.yaml"
    misfit.write_text(f"_BASE_: {entry.config}\nMODEL:\n  RESNETS:\n    DEPTH: 50\n")
    PUBLISHED_CHECKPOINTS["official/narrow_misfit"] = published.PublishedCheckpoint(
        "official", entry.url, str(misfit), "test", 50.0)
    with pytest.raises(PublishedWeightsError, match="does not fit the model of .*misfit.yaml"):
        model_zoo.local_weights("ccnet://official/narrow_misfit")
    assert _cache_files(tmp_path) == ["downloads/official/narrow_misfit.pth"]  # kept: the download was sound


def test_unknown_names_list_the_published_ones():
    with pytest.raises(KeyError, match="ccnet://mmseg/ccnet_r50-d8_512x1024_40k_cityscapes"):
        model_zoo.local_weights("ccnet://mmseg/no_such_model")


def test_every_entry_names_a_config_of_its_family_depth_and_dataset_and_the_doc_shows_the_table():
    """Each entry's config is one whose model takes the entry's layout (checked key for key by
    tests/checkpoint/test_convert_ccnet.py) for the depth and class count its name says."""
    classes = {"Cityscapes": 19, "ADE20K": 150, "VOC 2012 + aug": 21}
    assert len([k for k in PUBLISHED_CHECKPOINTS if k.startswith("mmseg/")]) == 16
    for name, entry in PUBLISHED_CHECKPOINTS.items():
        cfg = model_zoo.get_config(entry.config)
        assert f"_{entry.source}_" in entry.config and name.startswith(entry.source + "/"), name
        assert cfg.MODEL.RESNETS.DEPTH == (101 if "r101" in name else 50), name
        assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == classes[entry.dataset], name
        assert entry.url.startswith("https://") and (entry.sha256_prefix is None) == (entry.source == "official")
        if entry.source == "mmseg":  # the publisher's file name ends in its hash
            assert entry.url.endswith(f"-{entry.sha256_prefix}.pth") and name.split("/")[1] in entry.url
            assert ("769x769" in name) == ("769x769" in entry.config)
    with open(os.path.join(REPO_ROOT, "docs", "MODEL_ZOO.md")) as f:
        assert published.markdown_table() in f.read()


def test_a_failed_download_reaches_the_user_as_itself_through_the_checkpoint_loading(publish):
    """The trainer loads MODEL.WEIGHTS inside explain_checkpoint_errors, which turns unreadable files into
    "not a checkpoint"; a ccnet:// name that could not be fetched keeps its own message (URL, cache path)."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from ccnet_d2.checkpoint import explain_checkpoint_errors

    publish("mmseg/narrow_cut", "mmseg", how="truncated")
    cfg = model_zoo.get_config(PUBLISHED_CHECKPOINTS["mmseg/narrow_cut"].config)
    cfg.MODEL.DEVICE = "cpu"
    with pytest.raises(PublishedWeightsError, match="stopped after"):
        with explain_checkpoint_errors("ccnet://mmseg/narrow_cut"):
            DetectionCheckpointer(build_model(cfg)).load("ccnet://mmseg/narrow_cut")
