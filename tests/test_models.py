"""Model manager: cache location, offline errors, resumable SHA-256-checked downloads, CLI.

Everything runs offline: downloads come from a local HTTP server on 127.0.0.1 (with Range support),
and the real LAION head files from ../shared/weights are used where present.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lib_enhancer import models
from lib_enhancer.models import (
    ChecksumMismatchError,
    ModelFile,
    ModelNotAvailableError,
    add_models_subparser,
    candidate_paths,
    download_file,
    ensure_file,
    find_file,
    list_models,
    load_state_dict,
    models_dir,
    run_models_command,
    verify,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = REPO.parent / "shared" / "weights"
HEAD = "sa_0_4_vit_b_32_linear.pth"

PAYLOAD = bytes(range(256)) * 1000  # 256 kB, distinct bytes so a misplaced resume changes the hash
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """A tiny HTTP server serving ``PAYLOAD`` at ``/file`` (and junk at ``/junk``), honouring Range."""

    def __init__(self, honour_range: bool = True) -> None:
        self.requests: list[dict[str, str | None]] = []
        self.honour_range = honour_range
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append({"path": self.path, "range": self.headers.get("Range")})
                body = PAYLOAD if self.path == "/file" else b"not the file you want" * 100
                if self.path not in ("/file", "/junk"):
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                if rng and owner.honour_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    body = body[start:]
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture
def fake_entry(server: _Server, monkeypatch: pytest.MonkeyPatch) -> ModelFile:
    entry = ModelFile(
        name="test-file.bin",
        url=server.url + "/file",
        sha256=PAYLOAD_SHA,
        size=len(PAYLOAD),
        license="MIT",
        kind="head",
        description="test payload",
    )
    monkeypatch.setitem(models.MODEL_FILES, entry.name, entry)
    return entry


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the real ~/.cache or the caller's environment."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(models.ENV_MODELS_DIR, raising=False)
    monkeypatch.delenv(models.ENV_OFFLINE, raising=False)


# ---------------------------------------------------------------------------------------------
# Table and locations


def test_table_entries_are_complete() -> None:
    for name, entry in models.MODEL_FILES.items():
        assert entry.name == name
        assert entry.url.startswith("https://"), name
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0, name
        assert entry.license and entry.kind in {"head", "nima", "clip-openai"}, name
    nima = models.MODEL_FILES["NIMA_VGG16_ava-dc4e8265.pth"]
    assert "non-commercial" in nima.license.lower() and nima.size == 58889899
    # The OpenAI URLs embed the SHA-256 of the archive.
    for name in ("ViT-L-14.pt", "ViT-B-32.pt", "ViT-B-16.pt"):
        assert models.MODEL_FILES[name].sha256 in models.MODEL_FILES[name].url


def test_models_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert models_dir() == tmp_path / "home" / ".cache" / "lib_enhancer"
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path / "env"))
    assert models_dir() == tmp_path / "env"
    assert models_dir(tmp_path / "arg") == tmp_path / "arg"
    assert not (tmp_path / "env").exists()  # resolving never creates anything


def test_offline_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not models.is_offline()
    monkeypatch.setenv(models.ENV_OFFLINE, "1")
    assert models.is_offline()
    assert not models.is_offline(False)


def test_search_order_includes_webui_folder_and_openai_cache(tmp_path: Path) -> None:
    webui = tmp_path / "webui" / "models"
    paths = candidate_paths("ViT-L-14.pt", tmp_path / "cache", [webui])
    assert paths[0] == tmp_path / "cache" / "ViT-L-14.pt"
    assert webui / "ViT-L-14.pt" in paths and webui / "lib_enhancer" / "ViT-L-14.pt" in paths
    assert webui / "clip" / "ViT-L-14.pt" in paths
    assert paths[-1] == tmp_path / "home" / ".cache" / "clip" / "ViT-L-14.pt"
    target = webui / "lib_enhancer" / HEAD
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    assert find_file(HEAD, tmp_path / "cache", [webui]) == target
    assert find_file(HEAD, tmp_path / "cache") is None


# ---------------------------------------------------------------------------------------------
# Downloads


def test_download_verifies_and_moves_into_place(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "c" / "payload.bin"
    download_file(server.url + "/file", dest, sha256=PAYLOAD_SHA, size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "c" / "payload.bin.part").exists()
    assert server.requests == [{"path": "/file", "range": None}]


def test_download_resumes_partial_file_with_range(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "payload.bin"
    part = tmp_path / "payload.bin.part"
    part.write_bytes(PAYLOAD[:100_000])
    download_file(server.url + "/file", dest, sha256=PAYLOAD_SHA, size=len(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == "bytes=100000-"
    assert not part.exists()


def test_download_restarts_when_server_ignores_range(tmp_path: Path) -> None:
    srv = _Server(honour_range=False)
    try:
        part = tmp_path / "payload.bin.part"
        part.write_bytes(PAYLOAD[:5000])
        download_file(srv.url + "/file", tmp_path / "payload.bin", sha256=PAYLOAD_SHA, progress=False)
    finally:
        srv.close()
    assert (tmp_path / "payload.bin").read_bytes() == PAYLOAD  # not 5000 bytes + the whole file


def test_complete_part_file_is_accepted_after_416(server: _Server, tmp_path: Path) -> None:
    (tmp_path / "payload.bin.part").write_bytes(PAYLOAD)
    download_file(server.url + "/file", tmp_path / "payload.bin", sha256=PAYLOAD_SHA, progress=False)
    assert (tmp_path / "payload.bin").read_bytes() == PAYLOAD


def test_hash_mismatch_is_refused(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "payload.bin"
    with pytest.raises(ChecksumMismatchError) as err:
        download_file(server.url + "/junk", dest, sha256=PAYLOAD_SHA, progress=False)
    message = str(err.value)
    assert "refused" in message and PAYLOAD_SHA in message
    assert hashlib.sha256(b"not the file you want" * 100).hexdigest() in message  # the actual hash
    assert not dest.exists() and not (tmp_path / "payload.bin.part").exists()


def test_ensure_file_downloads_once_then_reuses(
    fake_entry: ModelFile, server: _Server, tmp_path: Path
) -> None:
    path = ensure_file(fake_entry.name, tmp_path / "cache", progress=False)
    assert path == tmp_path / "cache" / fake_entry.name and path.read_bytes() == PAYLOAD
    assert ensure_file(fake_entry.name, tmp_path / "cache", offline=True) == path
    assert len(server.requests) == 1


def test_ensure_file_tries_mirror(
    fake_entry: ModelFile, server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = ModelFile(
        **{**fake_entry.__dict__, "url": server.url + "/missing", "mirrors": (fake_entry.url,)}
    )
    monkeypatch.setitem(models.MODEL_FILES, broken.name, broken)
    assert ensure_file(broken.name, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert [r["path"] for r in server.requests] == ["/missing", "/file"]


def test_ensure_file_refuses_corrupt_local_copy(fake_entry: ModelFile, tmp_path: Path) -> None:
    (tmp_path / fake_entry.name).write_bytes(b"corrupt")
    with pytest.raises(ChecksumMismatchError, match="expected " + PAYLOAD_SHA):
        ensure_file(fake_entry.name, tmp_path, offline=True)


def test_offline_error_names_file_url_and_path(
    fake_entry: ModelFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(models.ENV_OFFLINE, "1")
    with pytest.raises(ModelNotAvailableError) as err:
        ensure_file(fake_entry.name, tmp_path / "cache")
    message = str(err.value)
    assert fake_entry.name in message and fake_entry.url in message
    assert str(tmp_path / "cache" / fake_entry.name) in message
    assert not (tmp_path / "cache").exists()


def test_network_failure_error_names_url_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = _Server()
    dead_url = srv.url + "/file"
    srv.close()  # nothing listens on that port any more
    entry = ModelFile("dead.bin", dead_url, PAYLOAD_SHA, None, "MIT", "head", "unreachable")
    monkeypatch.setitem(models.MODEL_FILES, entry.name, entry)
    with pytest.raises(ModelNotAvailableError) as err:
        ensure_file(entry.name, tmp_path, progress=False)
    assert dead_url in str(err.value) and str(tmp_path / "dead.bin") in str(err.value)


def test_unknown_name_suggests() -> None:
    with pytest.raises(KeyError, match=r"sa_0_4_vit_b_32_linear\.pth"):
        models.get_model_file("sa_0_4_vit_b32_linear.pth")


# ---------------------------------------------------------------------------------------------
# Real head files, verification, listing


@pytest.fixture
def real_head_cache(tmp_path: Path) -> Path:
    source = SHARED_WEIGHTS / HEAD
    if not source.is_file():
        pytest.skip(f"real head file not present at {source}")
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(source, cache / HEAD)
    return cache


def test_real_head_verifies_and_loads_weights_only(real_head_cache: Path) -> None:
    path = ensure_file(HEAD, real_head_cache, offline=True)
    assert verify(HEAD, real_head_cache)
    state = load_state_dict(path)
    assert set(state) == {"weight", "bias"} and state["weight"].shape == (1, 512)
    rows = {r.name: r for r in list_models(real_head_cache)}
    assert rows[HEAD].present and rows[HEAD].verified is True  # stamped by ensure_file
    assert rows["ViT-L-14.pt"].present is False and rows["ViT-L-14.pt"].verified is None


def test_verify_detects_tampering(real_head_cache: Path) -> None:
    with open(real_head_cache / HEAD, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    assert verify(HEAD, real_head_cache) is False
    with pytest.raises(ModelNotAvailableError):
        verify("sa_0_4_vit_l_14_linear.pth", real_head_cache)


def test_load_state_dict_formats_and_refuses_pickled_objects(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {"a": torch.arange(3.0)}
    save_file(tensors, str(tmp_path / "w.safetensors"))
    torch.save({"params": tensors}, tmp_path / "w.pth")
    assert torch.equal(load_state_dict(tmp_path / "w.safetensors")["a"], tensors["a"])
    assert torch.equal(load_state_dict(tmp_path / "w.pth", key="params")["a"], tensors["a"])
    torch.save({"a": argparse.Namespace(x=1)}, tmp_path / "evil.pth")
    with pytest.raises(Exception, match=r"(?i)weights_only|unsupported|global"):
        load_state_dict(tmp_path / "evil.pth")


# ---------------------------------------------------------------------------------------------
# CLI


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lib_enhancer")
    add_models_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    assert args.func is run_models_command
    return run_models_command(args)


def test_cli_list_verify_download(
    real_head_cache: Path, fake_entry: ModelFile, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_cli(["models", "list", "--models-dir", str(real_head_cache)]) == 0
    out = capsys.readouterr().out
    assert HEAD in out and "NIMA_VGG16_ava-dc4e8265.pth" in out and "non-commercial" in out
    assert _run_cli(["models", "verify", HEAD, "--models-dir", str(real_head_cache)]) == 0
    assert f"{HEAD}: ok" in capsys.readouterr().out
    assert _run_cli(["models", "verify", "ViT-B-32.pt", "--models-dir", str(real_head_cache)]) == 1
    assert _run_cli(["models", "download", fake_entry.name, "--models-dir", str(real_head_cache)]) == 0
    assert (real_head_cache / fake_entry.name).read_bytes() == PAYLOAD
    assert _run_cli(["models", "verify", "no-such-file", "--models-dir", str(real_head_cache)]) == 2


def test_cli_download_offline_fails_with_instructions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(models.ENV_OFFLINE, "1")
    assert _run_cli(["models", "download", "--models-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "sac+logos+ava1-l14-linearMSE.pth" in err and str(tmp_path) in err


def test_import_is_light() -> None:
    code = (
        "import sys, lib_enhancer.models as m; m.models_dir(); "
        "bad = [n for n in ('torch', 'open_clip', 'torchvision', 'tqdm') if n in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
