"""``ccnet://<source>/<model>``: published CCNet checkpoints by name, as ``detectron2://`` is for Detectron2's.

Resolving a name (``local_weights``): the publisher's file is downloaded (with a progress bar) into the
cache, checked (every byte the server announced arrived; the publisher's sha256 prefix where one is
published), converted with the converter of its source against the model of its config (every key and
shape), and the converted checkpoint is cached. The next use loads the cached file; nothing is
downloaded again. Files are written under a lock and renamed into place when complete, so a failed or
partial download is never used, and ranks of one machine download once.

The cache is ``$CCNET_D2_CACHE`` (default ``~/.cache/ccnet_d2``):

    downloads/<source>/<model>.pth    the publisher's file (put it there by hand to work offline)
    converted/<source>/<model>.pth    the ccnet_d2 checkpoint that MODEL.WEIGHTS loads

Importing ``ccnet_d2`` registers the scheme with Detectron2's ``PathManager``, so ``MODEL.WEIGHTS
ccnet://...`` works in ``tools/train_net.py``, ``DefaultPredictor`` and every ``DetectionCheckpointer``.
"""
import http.client
import logging
import os
import urllib.error
import urllib.request

import torch
from iopath.common.file_io import PathHandler, file_lock

from ..checkpoint.convert import file_sha256
from . import published
from .published import PublishedCheckpoint, published_checkpoint, table_key

__all__ = ["PublishedWeightsError", "cache_dir", "local_weights", "register_scheme"]

logger = logging.getLogger(__name__)
_CHUNK = 1 << 20


class PublishedWeightsError(RuntimeError):
    """A published checkpoint could not be downloaded, verified or converted; the message names the URL
    and the cache path."""


def cache_dir() -> str:
    """``$CCNET_D2_CACHE``, default ``~/.cache/ccnet_d2``."""
    return os.path.expanduser(os.getenv("CCNET_D2_CACHE", os.path.join("~", ".cache", "ccnet_d2")))


def _verified_sha256(path: str, entry: PublishedCheckpoint, origin: str) -> str:
    """The file's sha256, checked against the publisher's hash where one is published."""
    digest = file_sha256(path)
    if entry.sha256_prefix is not None and not digest.startswith(entry.sha256_prefix):
        raise PublishedWeightsError(
            f"{origin} has sha256 {digest}, but the publisher's hash for {entry.url} is {entry.sha256_prefix}...: "
            "the file is damaged or not the published one. It was not used; delete it and try again.")
    return digest


def _download(entry: PublishedCheckpoint, path: str) -> str:
    """Download ``entry.url`` to ``path``: into ``path + '.partial'``, renamed only once complete and verified.
    Returns the file's sha256."""
    from tqdm import tqdm

    partial = path + ".partial"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    logger.info("Downloading %s to %s", entry.url, path)
    try:
        with urllib.request.urlopen(entry.url, timeout=60) as response, open(partial, "wb") as out:
            if response.headers.get_content_type() == "text/html":
                raise PublishedWeightsError(
                    f"{entry.url} answered with a web page, not a checkpoint (a sign-in or quota page). Download "
                    f"it in a browser and save it as {path}; it is then used from there.")
            announced = response.headers.get("Content-Length")
            total = int(announced) if announced is not None else None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(path)) as progress:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
        if total is not None and received != total:
            raise PublishedWeightsError(f"the download of {entry.url} stopped after {received} of {total} bytes; "
                                        f"nothing was kept in {path}. Try again.")
        digest = _verified_sha256(partial, entry, f"the download of {entry.url}")
    except http.client.IncompleteRead as e:
        _remove(partial)
        raise PublishedWeightsError(f"the download of {entry.url} stopped after {len(e.partial)} bytes, "
                                    f"{e.expected} short; nothing was kept in {path}. Try again.") from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        _remove(partial)
        raise PublishedWeightsError(f"cannot download {entry.url} to {path} ({e}). Without a network, download it "
                                    f"elsewhere and save it as {path}.") from e
    except BaseException:
        _remove(partial)
        raise
    os.replace(partial, path)
    return digest


def _remove(path: str) -> None:
    if os.path.exists(path):
        os.remove(path)


def _convert(entry: PublishedCheckpoint, source_path: str, source_sha256: str, path: str) -> None:
    """Convert the publisher's file with the converter of its source, checked against its config's model."""
    from detectron2.modeling import build_model

    from ..checkpoint import conversion_problems, convert_ccnet_state_dict, load_source_state_dict
    from ..checkpoint.atomic import write_atomically
    from . import get_config

    try:
        state_dict = load_source_state_dict(source_path)
    except Exception as e:
        raise PublishedWeightsError(f"{source_path} (downloaded from {entry.url}) is not a readable checkpoint "
                                    f"({type(e).__name__}: {e}); delete it and try again.") from e
    result = convert_ccnet_state_dict(state_dict, entry.source)
    cfg = get_config(entry.config)
    cfg.MODEL.DEVICE = "cpu"
    model_state = build_model(cfg).state_dict()
    problems = conversion_problems(result, model_state)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        raise PublishedWeightsError(f"{source_path} (from {entry.url}) does not fit the model of {entry.config}: "
                                    f"{shown}. Nothing was written to {path}.")
    author = f"ccnet_d2 from {entry.url} (sha256 {source_sha256}), --format {entry.source}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, lambda f: torch.save({"model": result.model, "__author__": author}, f))


def local_weights(name: str) -> str:
    """The path of the converted checkpoint of a published name (``ccnet://mmseg/...``), fetching and
    converting it first where the cache lacks it."""
    entry, key = published_checkpoint(name), table_key(name)
    converted = os.path.join(cache_dir(), "converted", key + ".pth")
    download = os.path.join(cache_dir(), "downloads", key + ".pth")
    os.makedirs(os.path.dirname(converted), exist_ok=True)
    with file_lock(converted):
        if os.path.isfile(converted):
            return converted
        if os.path.isfile(download):  # an earlier download, or a file put there by hand
            digest = _verified_sha256(download, entry, download)
        else:
            digest = _download(entry, download)
        logger.info("Converting %s (%s) with %s", download, entry.source, entry.config)
        _convert(entry, download, digest, converted)
    return converted


class _PublishedWeightsHandler(PathHandler):
    """iopath handler of ``ccnet://``: the local path of the converted checkpoint."""

    def _get_supported_prefixes(self):
        return [published.SCHEME]

    def _get_local_path(self, path: str, force: bool = False, **kwargs) -> str:
        self._check_kwargs(kwargs)
        return local_weights(path)

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs):
        self._check_kwargs(kwargs)
        return open(local_weights(path), mode, buffering=buffering)

    def _isfile(self, path: str, **kwargs) -> bool:
        return False  # resolved on use: a check for a local file must not start a download


def register_scheme() -> None:
    """Register ``ccnet://`` with Detectron2's ``PathManager`` (once; ``import ccnet_d2`` does it)."""
    from detectron2.utils.file_io import PathManager

    if published.SCHEME not in PathManager._path_handlers:
        PathManager.register_handler(_PublishedWeightsHandler())
