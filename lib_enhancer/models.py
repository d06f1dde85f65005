"""Model manager: the weight files the scorers need, where they live, how they are fetched.

Every downloadable file is declared once in :data:`MODEL_FILES` with its URL, SHA-256, size and
license. :func:`ensure_file` finds a file already on disk (our cache, folders the caller names such
as the webui's ``models/`` directory, OpenAI's ``~/.cache/clip``) or downloads it with a progress bar
into ``<file>.part`` (resuming with an HTTP ``Range`` request), checks the SHA-256 and only then
moves it into place. Offline (``offline=True`` or ``LIB_ENHANCER_OFFLINE=1``) a missing file raises
:class:`ModelNotAvailableError` naming the file, its URL and the exact path to put it at.

Nothing here runs at import time: no network, no directory creation, no torch import.

The cache directory is the ``cache_dir`` argument, else ``$LIB_ENHANCER_MODELS``, else
``~/.cache/lib_enhancer``.

The CLI hooks :func:`add_models_subparser` and :func:`run_models_command` implement
``models list|download|verify [NAME...] [--models-dir DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import hashlib
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

ENV_MODELS_DIR = "LIB_ENHANCER_MODELS"
ENV_OFFLINE = "LIB_ENHANCER_OFFLINE"
USER_AGENT = "lib_enhancer-model-manager/0.1 (+urllib)"
_STAMP_FILE = ".verified.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    """One downloadable weight file.

    Attributes:
        name: file name, also the key in :data:`MODEL_FILES` and the name on disk.
        url: primary download URL.
        sha256: expected SHA-256 of the whole file (lower-case hex).
        size: size in bytes, ``None`` where no authoritative number is known.
        license: license of the weights.
        kind: ``"head"`` (aesthetic head), ``"nima"`` (full NIMA checkpoint) or ``"clip-openai"``
            (OpenAI CLIP TorchScript archive).
        description: one line for ``models list``.
        mirrors: further URLs tried in order when the primary one fails.
        default: fetched by ``models download`` when no name is given.
    """

    name: str
    url: str
    sha256: str
    size: int | None
    license: str
    kind: str
    description: str
    mirrors: tuple[str, ...] = ()
    default: bool = False

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)


_IAP = "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
_LAION_V1 = "https://github.com/LAION-AI/aesthetic-predictor/raw/main/"
_PYIQA_HF = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
_OPENAI = "https://openaipublic.azureedge.net/clip/models/"

#: Every weight file the scorers can use, by file name.
MODEL_FILES: dict[str, ModelFile] = {
    f.name: f
    for f in (
        ModelFile(
            "sac+logos+ava1-l14-linearMSE.pth",
            _IAP + "sac%2Blogos%2Bava1-l14-linearMSE.pth",
            "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0",
            3714759,
            "Apache-2.0",
            "head",
            "LAION improved aesthetic predictor MLP head (ViT-L/14 embedding, 1-10 rating)",
            mirrors=(_PYIQA_HF + "sac+logos+ava1-l14-linearMSE.pth",),
            default=True,
        ),
        ModelFile(
            "ava+logos-l14-linearMSE.pth",
            _IAP + "ava%2Blogos-l14-linearMSE.pth",
            "390a3aafaf3b37d57148f9b22f30556de38343064b7d915acfa80d3812b4c9ff",
            3714759,
            "Apache-2.0",
            "head",
            "LAION improved aesthetic predictor, AVA+logos variant (ViT-L/14)",
        ),
        ModelFile(
            "sa_0_4_vit_l_14_linear.pth",
            _LAION_V1 + "sa_0_4_vit_l_14_linear.pth",
            "2cd4e60f4f24ae3bcd57b847b13c1f3ba27edc28cc1a7f9ce74ee9f421243cba",
            4071,
            "MIT",
            "head",
            "LAION aesthetic predictor V1 linear head, ViT-L/14",
            default=True,
        ),
        ModelFile(
            "sa_0_4_vit_b_32_linear.pth",
            _LAION_V1 + "sa_0_4_vit_b_32_linear.pth",
            "c7b14cead230694acc7b9447974d3cad78003c72da032e402a303b6c2429e85f",
            3047,
            "MIT",
            "head",
            "LAION aesthetic predictor V1 linear head, ViT-B/32",
            default=True,
        ),
        ModelFile(
            "sa_0_4_vit_b_16_linear.pth",
            _LAION_V1 + "sa_0_4_vit_b_16_linear.pth",
            "8ad3923d7ecf019df20ecd2ab5542a3075fbba0278d239c0371345f3d7fcbde0",
            3047,
            "MIT",
            "head",
            "LAION aesthetic predictor V1 linear head, ViT-B/16",
            default=True,
        ),
        ModelFile(
            "NIMA_VGG16_ava-dc4e8265.pth",
            _PYIQA_HF + "NIMA_VGG16_ava-dc4e8265.pth",
            "dc4e8265bee9475027f321adcb4241bb0ec15722c955d53e3869492b7f33ab34",
            58889899,
            "CC-BY-NC-SA-4.0 (non-commercial)",
            "nima",
            "NIMA VGG16/AVA checkpoint retrained by pyiqa - NON-COMMERCIAL use only",
            mirrors=(
                "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/"
                "NIMA_VGG16_ava-dc4e8265.pth",
            ),
        ),
        ModelFile(
            "ViT-L-14.pt",
            _OPENAI + "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
            "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
            None,  # about 890 MB (fp16 TorchScript); no authoritative byte count published
            "MIT",
            "clip-openai",
            "OpenAI CLIP ViT-L/14 (TorchScript archive, fp16), backbone of the LAION heads",
        ),
        ModelFile(
            "ViT-B-32.pt",
            _OPENAI + "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
            "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
            None,  # about 340 MB
            "MIT",
            "clip-openai",
            "OpenAI CLIP ViT-B/32 (TorchScript archive, fp16)",
        ),
        ModelFile(
            "ViT-B-16.pt",
            _OPENAI + "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
            "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
            None,  # about 335 MB
            "MIT",
            "clip-openai",
            "OpenAI CLIP ViT-B/16 (TorchScript archive, fp16)",
        ),
    )
}

#: Sub-folders of a caller-given search directory (e.g. the webui's ``models/``) that are looked in.
SEARCH_SUBDIRS: tuple[str, ...] = ("", "lib_enhancer", "Enhancer")
_KIND_SUBDIRS: dict[str, tuple[str, ...]] = {"clip-openai": ("clip", "CLIP")}


class ModelNotAvailableError(FileNotFoundError):
    """A weight file is missing and cannot be downloaded (offline, or the download failed)."""


class ChecksumMismatchError(RuntimeError):
    """A file's SHA-256 differs from the expected one; it was refused."""


@dataclass(frozen=True)
class ModelRow:
    """One line of :func:`list_models`."""

    name: str
    size: int | None
    present: bool
    verified: bool | None  # None: not checked
    license: str
    path: Path
    kind: str


# ---------------------------------------------------------------------------------------------
# Locations and settings


def get_model_file(name: str) -> ModelFile:
    """The table entry for ``name``; unknown names raise with close-match suggestions."""
    try:
        return MODEL_FILES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(MODEL_FILES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown model file {name!r}.{hint} Known: {', '.join(MODEL_FILES)}") from None


def models_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The model cache directory: ``cache_dir``, else ``$LIB_ENHANCER_MODELS``, else ``~/.cache/lib_enhancer``.

    The directory is not created here.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_MODELS_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lib_enhancer"


def is_offline(offline: bool | None = None) -> bool:
    """Offline mode: the ``offline`` argument when given, else ``$LIB_ENHANCER_OFFLINE`` is truthy."""
    if offline is not None:
        return bool(offline)
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def openai_clip_cache_dir() -> Path:
    """Where OpenAI's ``clip`` package keeps its ``.pt`` archives (``~/.cache/clip``)."""
    return Path.home() / ".cache" / "clip"


def candidate_paths(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    search_dirs: Sequence[str | os.PathLike[str]] = (),
) -> list[Path]:
    """Every path where ``name`` is looked for, in order; the first is where downloads go.

    Args:
        name: a :data:`MODEL_FILES` key.
        cache_dir: model cache directory (see :func:`models_dir`).
        search_dirs: further folders, e.g. the webui's ``models/``; their sub-folders
            :data:`SEARCH_SUBDIRS` (and ``clip/`` for CLIP archives) are searched too.
    """
    entry = get_model_file(name)
    paths = [models_dir(cache_dir) / name]
    subdirs = SEARCH_SUBDIRS + _KIND_SUBDIRS.get(entry.kind, ())
    for folder in search_dirs:
        base = Path(folder).expanduser()
        paths.extend(base / sub / name if sub else base / name for sub in subdirs)
    if entry.kind == "clip-openai":
        paths.append(openai_clip_cache_dir() / name)
    unique: list[Path] = []
    for p in paths:
        if p not in unique:
            unique.append(p)
    return unique


def find_file(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    search_dirs: Sequence[str | os.PathLike[str]] = (),
) -> Path | None:
    """The first existing copy of ``name`` (not verified), or ``None``."""
    for path in candidate_paths(name, cache_dir, search_dirs):
        if path.is_file():
            return path
    return None


# ---------------------------------------------------------------------------------------------
# Hashing and the verification stamp


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _read_stamps(cache_dir: Path) -> dict[str, Any]:
    stamp = cache_dir / _STAMP_FILE
    if not stamp.is_file():
        return {}
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable verification stamp %s: %s", stamp, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _write_stamp(cache_dir: Path, path: Path, sha256: str) -> None:
    """Remember that ``path`` (at its current size and mtime) has hash ``sha256``."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.warning("could not create the model cache %s: %s", cache_dir, exc)
        return
    key, size, mtime = _stamp_key(path)
    stamps = _read_stamps(cache_dir)
    stamps[key] = {"size": size, "mtime_ns": mtime, "sha256": sha256}
    tmp = cache_dir / (_STAMP_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(stamps, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, cache_dir / _STAMP_FILE)
    except OSError as exc:  # a read-only cache only costs a re-hash next time
        logger.warning("could not write verification stamp in %s: %s", cache_dir, exc)


def _stamped(cache_dir: Path, path: Path, sha256: str) -> bool:
    key, size, mtime = _stamp_key(path)
    entry = _read_stamps(cache_dir).get(key)
    return (
        isinstance(entry, dict)
        and entry.get("size") == size
        and entry.get("mtime_ns") == mtime
        and entry.get("sha256") == sha256
    )


def check_file(
    path: str | os.PathLike[str],
    entry: ModelFile,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    use_stamp: bool = True,
) -> None:
    """Raise :class:`ChecksumMismatchError` unless ``path`` has ``entry``'s SHA-256.

    A successful check is remembered in ``<cache_dir>/.verified.json`` (keyed by path, size and
    mtime) so large files are hashed once.
    """
    path = Path(path)
    cache = models_dir(cache_dir)
    if use_stamp and _stamped(cache, path, entry.sha256):
        return
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise ChecksumMismatchError(
            f"refused {entry.name} at {path}: SHA-256 mismatch (expected {entry.sha256}, got {actual}). "
            f"The file is corrupt or a different version; delete it and download it again from {entry.url}"
        )
    _write_stamp(cache, path, actual)


def verify(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    search_dirs: Sequence[str | os.PathLike[str]] = (),
) -> bool:
    """Hash the local copy of ``name`` (always re-hashed) and compare with the table.

    Returns:
        True when the hash matches, False when it differs.

    Raises:
        ModelNotAvailableError: no local copy exists.
    """
    entry = get_model_file(name)
    path = find_file(name, cache_dir, search_dirs)
    if path is None:
        raise ModelNotAvailableError(missing_message(entry, models_dir(cache_dir) / name, "is not present"))
    try:
        check_file(path, entry, cache_dir, use_stamp=False)
    except ChecksumMismatchError as exc:
        logger.warning("%s", exc)
        return False
    return True


def list_models(
    cache_dir: str | os.PathLike[str] | None = None,
    search_dirs: Sequence[str | os.PathLike[str]] = (),
    *,
    verify_hashes: bool = False,
) -> list[ModelRow]:
    """One :class:`ModelRow` per table entry.

    Args:
        cache_dir: model cache directory.
        search_dirs: further folders to look in.
        verify_hashes: hash every present file; otherwise ``verified`` is True only for files whose
            earlier successful check is stamped, and None for unchecked ones.
    """
    rows = []
    cache = models_dir(cache_dir)
    for name, entry in MODEL_FILES.items():
        path = find_file(name, cache_dir, search_dirs)
        verified: bool | None = None
        if path is not None:
            if verify_hashes:
                verified = sha256_file(path) == entry.sha256
            elif _stamped(cache, path, entry.sha256):
                verified = True
        rows.append(
            ModelRow(
                name=name,
                size=path.stat().st_size if path is not None else entry.size,
                present=path is not None,
                verified=verified,
                license=entry.license,
                path=path if path is not None else cache / name,
                kind=entry.kind,
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# Downloading


def missing_message(entry: ModelFile, dest: Path, why: str) -> str:
    size = f"{entry.size:,} bytes" if entry.size else "size not published"
    return (
        f"model file {entry.name!r} {why}. Download it from {entry.url} and put it at {dest} "
        f"(SHA-256 {entry.sha256}, {size}, license {entry.license}), "
        f"or run `python -m lib_enhancer models download {entry.name}` while online."
    )


@contextlib.contextmanager
def _progress(total: int | None, initial: int, desc: str, enabled: bool) -> Iterator[Any]:
    """A tqdm bar (or a no-op stand-in when tqdm is missing or ``enabled`` is false)."""

    class _Null:
        def update(self, n: int) -> None:
            pass

    if not enabled:
        yield _Null()
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a declared dependency; tolerate its absence in odd installs
        yield _Null()
        return
    with tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc) as bar:
        yield bar


def _open(request: urllib.request.Request, opener: Any, timeout: float) -> IO[bytes]:
    if opener is not None:
        return opener.open(request, timeout=timeout)
    return urllib.request.urlopen(request, timeout=timeout)


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str,
    size: int | None = None,
    progress: bool = True,
    opener: Any = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` via ``<dest>.part``, resuming a partial file, SHA-256 checked.

    An existing ``.part`` is continued with ``Range: bytes=N-``; a server that ignores the range
    (answers 200) restarts the file. The finished file is hashed and moved into place only when
    the hash matches; on a mismatch the partial file is deleted.

    Args:
        url: http(s) or file URL.
        dest: final path.
        sha256: expected hex digest.
        size: expected size in bytes, used for the progress bar and to discard an oversized part.
        progress: show a tqdm bar on stderr.
        opener: object with ``open(request, timeout=)`` (``urllib.request.build_opener()``); default
            ``urllib.request.urlopen``.
        timeout: socket timeout in seconds.

    Returns:
        ``dest`` as a Path.

    Raises:
        ChecksumMismatchError: the downloaded bytes have another hash (nothing is kept).
        urllib.error.URLError, OSError: network or disk errors (the ``.part`` file is kept).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    digest = hashlib.sha256()
    if have:
        with open(part, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    complete = False
    try:
        response = _open(request, opener, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:  # 416: the part already holds every byte
            raise
        complete = True
    if not complete:
        with response:
            status = getattr(response, "status", None) or response.getcode()
            content_range = response.headers.get("Content-Range", "") if response.headers else ""
            resumed = have > 0 and status == 206 and content_range.startswith(f"bytes {have}-")
            if have and not resumed:
                logger.info("server did not resume %s (status %s); restarting", url, status)
                have = 0
                digest = hashlib.sha256()
            length = response.headers.get("Content-Length") if response.headers else None
            total = size if size is not None else (have + int(length) if length else None)
            with (
                open(part, "ab" if have else "wb") as f,
                _progress(total, have, dest.name, progress) as bar,
            ):
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    actual = digest.hexdigest()
    if actual != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"refused download of {dest.name} from {url}: SHA-256 mismatch "
            f"(expected {sha256}, got {actual}); the partial file was deleted"
        )
    os.replace(part, dest)
    return dest


def ensure_file(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    *,
    search_dirs: Sequence[str | os.PathLike[str]] = (),
    progress: bool = True,
    opener: Any = None,
) -> Path:
    """Path of a verified local copy of ``name``, downloading it into the cache if needed.

    Args:
        name: a :data:`MODEL_FILES` key.
        cache_dir: model cache directory (see :func:`models_dir`); downloads go there.
        offline: never touch the network (default: ``$LIB_ENHANCER_OFFLINE``).
        search_dirs: further folders to look in first, e.g. the webui's ``models/`` directory.
        progress: show a download progress bar.
        opener: URL opener for :func:`download_file` (tests use this).

    Raises:
        ModelNotAvailableError: missing and offline, or every download URL failed; the message
            names the file, its URL and the path to put it at.
        ChecksumMismatchError: a local copy or the download has the wrong SHA-256.
    """
    entry = get_model_file(name)
    found = find_file(name, cache_dir, search_dirs)
    if found is not None:
        check_file(found, entry, cache_dir)
        return found
    dest = models_dir(cache_dir) / name
    if is_offline(offline):
        raise ModelNotAvailableError(
            missing_message(entry, dest, f"is not available offline ({ENV_OFFLINE})")
        )
    errors = []
    for url in entry.urls:
        try:
            logger.info("downloading %s from %s", name, url)
            path = download_file(
                url, dest, sha256=entry.sha256, size=entry.size, progress=progress, opener=opener
            )
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        _write_stamp(models_dir(cache_dir), path, entry.sha256)
        return path
    raise ModelNotAvailableError(
        missing_message(entry, dest, "could not be downloaded") + " Errors: " + "; ".join(errors)
    )


# ---------------------------------------------------------------------------------------------
# Loading


def load_state_dict(
    path: str | os.PathLike[str], *, key: str | None = None, ignore: Iterable[str] = ()
) -> dict[str, torch.Tensor]:
    """Load a tensor dict safely: safetensors, or ``torch.load(weights_only=True)`` for pickles.

    TorchScript archives (the OpenAI CLIP ``.pt``) are not accepted here; the CLIP loader handles
    them explicitly.

    Args:
        path: ``.safetensors`` or a pickled state dict (``.pth``/``.pt``/``.bin``).
        key: unwrap ``checkpoint[key]`` (e.g. ``"params"`` for pyiqa checkpoints) when present.
        ignore: entries to drop (e.g. non-tensor metadata such as ``"input_resolution"``).

    Raises:
        ValueError: the file holds something other than a dict of tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if key is not None and isinstance(state, dict) and key in state and isinstance(state[key], dict):
        state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    import torch

    dropped = set(ignore)
    state = {k: v for k, v in state.items() if k not in dropped}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: entries that are not tensors: {', '.join(map(str, bad[:5]))}")
    return dict(state)


# ---------------------------------------------------------------------------------------------
# CLI: `models list|download|verify [NAME...] [--models-dir DIR]`


def add_models_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``models`` command (``list``, ``download``, ``verify``) to a CLI's subparsers.

    Sets ``func=run_models_command`` as the parser default.
    """
    parser = subparsers.add_parser(
        "models",
        help="list, download or verify model weight files",
        description="Manage the weight files of the neural scorers.",
    )
    actions = parser.add_subparsers(dest="models_command", metavar="{list,download,verify}")
    actions.required = True
    for action, help_text in (
        ("list", "show every known weight file, where it is and whether it is present"),
        ("download", "download files (default: the small default heads) into the cache"),
        ("verify", "re-hash local files and compare with the expected SHA-256"),
    ):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("names", nargs="*", metavar="NAME", help="file names (default: see above)")
        sub.add_argument(
            "--models-dir",
            default=None,
            help=f"cache directory (default: ${ENV_MODELS_DIR} or ~/.cache/lib_enhancer)",
        )
        sub.add_argument(
            "--search-dir", action="append", default=[], help="further folder to look in (repeatable)"
        )
        if action == "list":
            sub.add_argument("--verify", action="store_true", help="hash every present file")
    parser.set_defaults(func=run_models_command)
    return parser


def _format_size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    return str(size)


def _print_rows(rows: Iterable[ModelRow], out: IO[str]) -> None:
    marks = {True: "ok", False: "BAD", None: "-"}
    print(f"{'name':36} {'size':>9} {'present':7} {'verified':8} {'license':34} path", file=out)
    for r in rows:
        print(
            f"{r.name:36} {_format_size(r.size):>9} {'yes' if r.present else 'no':7} "
            f"{marks[r.verified]:8} {r.license:34} {r.path}",
            file=out,
        )


def run_models_command(args: argparse.Namespace) -> int:
    """Run ``models list|download|verify``; returns the process exit status (0 = success)."""
    out = sys.stdout
    cache = args.models_dir
    search = tuple(getattr(args, "search_dir", []) or ())
    names = list(args.names)
    try:
        for n in names:
            get_model_file(n)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    command = args.models_command
    if command == "list":
        rows = list_models(cache, search, verify_hashes=args.verify)
        if names:
            rows = [r for r in rows if r.name in names]
        _print_rows(rows, out)
        return 1 if any(r.verified is False for r in rows) else 0
    if command == "download":
        targets = names or [n for n, e in MODEL_FILES.items() if e.default]
        status = 0
        for n in targets:
            try:
                path = ensure_file(n, cache, search_dirs=search)
            except (ModelNotAvailableError, ChecksumMismatchError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                status = 1
                continue
            print(f"{n}: {path}", file=out)
        return status
    if command == "verify":
        targets = names or [r.name for r in list_models(cache, search) if r.present]
        status = 0
        for n in targets:
            try:
                ok = verify(n, cache, search)
            except ModelNotAvailableError as exc:
                print(f"error: {exc}", file=sys.stderr)
                status = 1
                continue
            print(f"{n}: {'ok' if ok else 'SHA-256 MISMATCH'}", file=out)
            status = status or (0 if ok else 1)
        return status
    print(f"error: unknown models command {command!r}", file=sys.stderr)
    return 2
