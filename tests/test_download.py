"""deeptao.download against local sources only: a bare git repository and an HTTP server on 127.0.0.1.

The release's per-class counts below are copied from the dataset description,
not from the module, so a wrong constant fails here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import socket
import subprocess
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import deeptao.download as dl
from deeptao.download import DownloadError, check_counts, download

RELEASE = {"SN": 1372, "AGN": 606, "BZ": 239, "CV": 772, "OTHER": 818, "NON": 12500}

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")

# A few dummy objects per class; names carry the colon the real files have.
TRANSIENT_FILES = {"SN": 3, "AGN": 2, "BZ": 1, "CV": 2, "OTHER": 1}
NON_FILES = {"NON": 4}


def _populate(root: Path, per_class: dict[str, int], seed: int, size: int = 64) -> dict[str, bytes]:
    """Write placeholder .fits files under root/data/<CLASS>/; return {relative path: bytes}."""
    rng = random.Random(seed)
    files = {}
    for label, n in per_class.items():
        for i in range(n):
            rel = f"data/{label}/CSS0{seed}{i:02d}:1000{i:02d}+0711{i:02d}.fits"
            data = rng.randbytes(size)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            files[rel] = data
    (root / "README.md").write_text("dummy release\n")
    return files


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


# ---------------------------------------------------------------------------- git

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main"]


def _git(*args: str, cwd: Path) -> str:
    env = os.environ | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run([*GIT, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _make_source(tmp: Path, name: str, per_class: dict[str, int], seed: int) -> tuple[Path, Path, dict]:
    """A work repository with one commit and a bare repository cloned from it (the 'GitHub' side)."""
    work = tmp / "work" / name
    work.mkdir(parents=True)
    files = _populate(work, per_class, seed)
    _git("init", "-q", cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "release", cwd=work)
    bare = tmp / "src" / name
    bare.parent.mkdir(exist_ok=True)
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp)
    return work, bare, files


@pytest.fixture
def git_sources(tmp_path):
    t = _make_source(tmp_path, "TAO_transients", TRANSIENT_FILES, seed=1)
    n = _make_source(tmp_path, "TAO_non-transients", NON_FILES, seed=2)
    return f"file://{tmp_path / 'src'}", {"TAO_transients": t, "TAO_non-transients": n}


@needs_git
def test_git_clone_brings_both_repositories_and_counts(tmp_path, git_sources):
    base, sources = git_sources
    dest = tmp_path / "dest"
    report = download(dest, base_url=base, method="git", progress=False)

    assert [(r.name, r.method, r.action) for r in report.repos] == [
        ("TAO_transients", "git", "cloned"),
        ("TAO_non-transients", "git", "cloned"),
    ]
    for name, (_, _, files) in sources.items():
        assert _tree(dest / name) == files | {"README.md": b"dummy release\n"}
        # shallow: exactly one commit of history
        assert _git("rev-list", "--count", "HEAD", cwd=dest / name).strip() == "1"

    found = {c.label: (c.expected, c.found) for c in report.counts}
    assert found == {label: (RELEASE[label], n) for label, n in (TRANSIENT_FILES | NON_FILES).items()}
    assert not report.complete
    assert report.missing == found
    assert not (dest / ".partial").exists()


@needs_git
def test_git_rerun_resumes_restores_and_updates(tmp_path, git_sources):
    base, sources = git_sources
    dest = tmp_path / "dest"
    repo = "TAO_transients"
    work, bare, files = sources[repo]
    target = dest / repo

    # A clone killed during its transfer: repository initialised, remote set, no commit yet.
    target.mkdir(parents=True)
    _git("init", "-q", cwd=target)
    _git("remote", "add", "origin", f"{base}/{repo}", cwd=target)
    report = download(dest, base_url=base, method="git", repos=[repo], progress=False)
    assert report.repos[0].action == "resumed"
    assert _tree(target) == _tree(work)

    # A clone killed during checkout: files missing from the work tree come back.
    victim = next(iter(files))
    (target / victim).unlink()
    report = download(dest, base_url=base, method="git", repos=[repo], progress=False)
    assert report.repos[0].action == "verified"
    assert (target / victim).read_bytes() == files[victim]

    # The source moves on: a rerun follows it.
    (work / "data" / "SN" / "new:0+0.fits").write_bytes(b"late arrival")
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", "more", cwd=work)
    _git("push", "-q", str(bare), "HEAD", cwd=work)
    report = download(dest, base_url=base, method="git", repos=[repo], progress=False)
    assert report.repos[0].action == "updated"
    assert (target / "data" / "SN" / "new:0+0.fits").read_bytes() == b"late arrival"
    assert {c.label: c.found for c in report.counts}["SN"] == TRANSIENT_FILES["SN"] + 1


@needs_git
def test_git_broken_clone_is_replaced_with_a_warning(tmp_path, git_sources):
    base, sources = git_sources
    dest = tmp_path / "dest"
    repo = "TAO_non-transients"
    target = dest / repo
    (target / ".git").mkdir(parents=True)
    (target / ".git" / "HEAD").write_text("garbage\n")
    (target / "leftover.txt").write_text("x")

    with pytest.warns(RuntimeWarning, match="unusable git clone"):
        report = download(dest, base_url=base, method="git", repos=[repo], progress=False)
    assert report.repos[0].action == "recloned"
    assert _tree(target) == _tree(sources[repo][0])


@needs_git
def test_git_leaves_a_non_clone_folder_alone(tmp_path):
    dest = tmp_path / "dest"
    _populate(dest / "TAO_transients", {"SN": 2}, seed=9)
    base = f"file://{tmp_path / 'nowhere'}"  # not even asked
    report = download(dest, base_url=base, method="git", repos=["TAO_transients"], progress=False)
    assert report.repos[0].action == "present"
    assert {c.label: c.found for c in report.counts} == {"SN": 2, "AGN": 0, "BZ": 0, "CV": 0, "OTHER": 0}


@needs_git
def test_git_unreachable_source_is_one_line(tmp_path):
    base = f"file://{tmp_path / 'nowhere'}"
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError) as info:
        download(dest, base_url=base, method="git", progress=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{base}/TAO_transients" in msg
    assert "does not appear to be a git repository" in msg
    assert not (dest / "TAO_transients").exists()


@needs_git
def test_git_progress_is_shown_when_asked(tmp_path, git_sources, capfd):
    base, _ = git_sources
    download(tmp_path / "dest", base_url=base, method="git", repos=["TAO_transients"], progress=True)
    assert "Receiving objects" in capfd.readouterr().err


# --------------------------------------------------------------------------- HTTP


class _Source:
    """What the fake GitHub serves, and what it saw."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges = True  # honour Range requests
        self.drop_after: int | None = None  # close the connection after this many body bytes ...
        self.drops_left = 0  # ... this many times
        self.requests: list[dict[str, str]] = []
        self.sent: list[int] = []  # body bytes written per response


def _handler(src: _Source):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            src.requests.append({"path": self.path, **{k: v for k, v in self.headers.items()}})
            body = src.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            etag = '"' + hashlib.sha1(body).hexdigest() + '"'
            start, status = 0, 200
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if src.ranges and rng and (if_range is None or if_range == etag):
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            part = body[start:]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(part)))
            self.send_header("ETag", etag)
            if src.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            if src.drops_left > 0 and src.drop_after is not None:
                src.drops_left -= 1
                self.wfile.write(part[: src.drop_after])
                self.wfile.flush()
                src.sent.append(min(src.drop_after, len(part)))
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(part)
            src.sent.append(len(part))

    return Handler


@pytest.fixture
def http_source():
    src = _Source()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(src))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield src, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _targz(files: dict[str, bytes], top: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict[str, bytes], top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in sorted(files.items()):
            zf.writestr(f"{top}/{rel}", data)
    return buf.getvalue()


def _serve_release(src: _Source, tmp: Path, size: int = 64, fmt=_targz) -> dict[str, dict[str, bytes]]:
    trees = {}
    for seed, (name, per_class) in enumerate([("TAO_transients", TRANSIENT_FILES), ("TAO_non-transients", NON_FILES)]):
        root = tmp / "payload" / name
        trees[name] = _populate(root, per_class, seed, size=size) | {"README.md": b"dummy release\n"}
        src.files[f"/{name}/archive/HEAD.tar.gz"] = fmt(trees[name], f"{name}-0123abc")
    return trees


def test_archive_download_extracts_both_repositories(tmp_path, http_source):
    src, base = http_source
    trees = _serve_release(src, tmp_path)
    dest = tmp_path / "dest"
    report = download(dest, base_url=base, method="archive", progress=False)

    assert [(r.name, r.method, r.action) for r in report.repos] == [
        ("TAO_transients", "archive", "downloaded"),
        ("TAO_non-transients", "archive", "downloaded"),
    ]
    assert report.repos[0].url == f"{base}/TAO_transients/archive/HEAD.tar.gz"
    for name, files in trees.items():
        assert _tree(dest / name) == files
    assert {c.label: c.found for c in report.counts} == TRANSIENT_FILES | NON_FILES
    assert not (dest / ".partial").exists()

    # A second run finds both in place and asks the server nothing.
    n = len(src.requests)
    again = download(dest, base_url=base, method="archive", progress=False)
    assert [r.action for r in again.repos] == ["present", "present"]
    assert len(src.requests) == n


def test_archive_zip_is_accepted(tmp_path, http_source):
    src, base = http_source
    trees = _serve_release(src, tmp_path, fmt=_zip)
    dest = tmp_path / "dest"
    download(dest, base_url=base, method="archive", repos=["TAO_non-transients"], progress=False)
    assert _tree(dest / "TAO_non-transients") == trees["TAO_non-transients"]


def test_archive_resumes_after_a_dropped_connection(tmp_path, http_source):
    src, base = http_source
    trees = _serve_release(src, tmp_path, size=20_000)  # random bytes: the archive does not shrink
    path = "/TAO_transients/archive/HEAD.tar.gz"
    full = src.files[path]
    cut = len(full) // 2
    src.drop_after, src.drops_left = cut, 1
    dest = tmp_path / "dest"

    with pytest.raises(DownloadError) as info:
        download(dest, base_url=base, method="archive", repos=["TAO_transients"], progress=False, retries=0)
    msg = str(info.value)
    assert "\n" not in msg and path in msg and "resume" in msg
    partial = dest / ".partial" / "TAO_transients.archive"
    assert partial.read_bytes() == full[:cut]
    assert not (dest / "TAO_transients").exists()  # nothing half-made where the finished copy goes

    report = download(dest, base_url=base, method="archive", repos=["TAO_transients"], progress=False)
    assert report.repos[0].action == "resumed"
    assert src.requests[-1]["Range"] == f"bytes={cut}-"
    assert src.sent[-1] == len(full) - cut  # only the rest travelled
    assert _tree(dest / "TAO_transients") == trees["TAO_transients"]
    assert not (dest / ".partial").exists()


def test_archive_retries_within_one_call(tmp_path, http_source):
    src, base = http_source
    trees = _serve_release(src, tmp_path, size=20_000)
    full = src.files["/TAO_non-transients/archive/HEAD.tar.gz"]
    src.drop_after, src.drops_left = len(full) // 3, 2
    dest = tmp_path / "dest"
    report = download(dest, base_url=base, method="archive", repos=["TAO_non-transients"], progress=False, retries=2)
    assert report.repos[0].action == "resumed"
    assert [r.get("Range") for r in src.requests] == [None, f"bytes={len(full) // 3}-", f"bytes={2 * (len(full) // 3)}-"]
    assert sum(src.sent) == len(full)
    assert _tree(dest / "TAO_non-transients") == trees["TAO_non-transients"]


def test_archive_restarts_when_server_ignores_range(tmp_path, http_source):
    src, base = http_source
    trees = _serve_release(src, tmp_path, size=20_000)
    full = src.files["/TAO_transients/archive/HEAD.tar.gz"]
    src.ranges = False
    src.drop_after, src.drops_left = len(full) // 2, 1
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError):
        download(dest, base_url=base, method="archive", repos=["TAO_transients"], progress=False, retries=0)
    report = download(dest, base_url=base, method="archive", repos=["TAO_transients"], progress=False)
    assert report.repos[0].action == "downloaded"
    assert src.sent[-1] == len(full)
    assert _tree(dest / "TAO_transients") == trees["TAO_transients"]


def test_archive_changed_on_server_is_fetched_whole(tmp_path, http_source):
    src, base = http_source
    _serve_release(src, tmp_path, size=20_000)
    path = "/TAO_transients/archive/HEAD.tar.gz"
    src.drop_after, src.drops_left = len(src.files[path]) // 2, 1
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError):
        download(dest, base_url=base, method="archive", repos=["TAO_transients"], progress=False, retries=0)

    new_tree = _populate(tmp_path / "new", {"SN": 5}, seed=7, size=20_000)
    src.files[path] = _targz(new_tree, "TAO_transients-fedcba9")
    report = download(dest, base_url=base, method="archive", repos=["TAO_transients"], progress=False)
    assert src.requests[-1]["If-Range"].startswith('"')  # the old ETag went along with the Range
    assert src.sent[-1] == len(src.files[path])
    assert report.repos[0].action == "downloaded"
    assert _tree(dest / "TAO_transients") == new_tree


def test_archive_fully_fetched_but_not_extracted_needs_no_transfer(tmp_path, http_source):
    src, base = http_source
    trees = _serve_release(src, tmp_path)
    url = f"{base}/TAO_transients/archive/HEAD.tar.gz"
    full = src.files["/TAO_transients/archive/HEAD.tar.gz"]
    work = tmp_path / "dest" / ".partial"
    work.mkdir(parents=True)
    (work / "TAO_transients.archive").write_bytes(full)
    (work / "TAO_transients.archive.json").write_text(json.dumps({"url": url, "total": len(full)}))
    (work / "TAO_transients.extracting-x1y2").mkdir()  # debris of a run killed while extracting
    report = download(tmp_path / "dest", base_url=base, method="archive", repos=["TAO_transients"], progress=False)
    assert src.requests == []
    assert report.repos[0].action == "resumed"
    assert _tree(tmp_path / "dest" / "TAO_transients") == trees["TAO_transients"]
    assert not (tmp_path / "dest" / ".partial").exists()


def test_archive_partial_longer_than_source_starts_over(tmp_path, http_source):
    src, base = http_source
    trees = _serve_release(src, tmp_path)
    url = f"{base}/TAO_transients/archive/HEAD.tar.gz"
    full = src.files["/TAO_transients/archive/HEAD.tar.gz"]
    work = tmp_path / "dest" / ".partial"
    work.mkdir(parents=True)
    (work / "TAO_transients.archive").write_bytes(b"\0" * (len(full) + 10))
    (work / "TAO_transients.archive.json").write_text(json.dumps({"url": url, "total": None}))
    report = download(tmp_path / "dest", base_url=base, method="archive", repos=["TAO_transients"], progress=False)
    assert [r.get("Range") for r in src.requests] == [f"bytes={len(full) + 10}-", None]  # 416, then whole
    assert report.repos[0].action == "downloaded"
    assert _tree(tmp_path / "dest" / "TAO_transients") == trees["TAO_transients"]


def test_archive_corrupt_is_discarded(tmp_path, http_source):
    src, base = http_source
    src.files["/TAO_transients/archive/HEAD.tar.gz"] = b"\x1f\x8b" + random.Random(0).randbytes(5000)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="unreadable") as info:
        download(dest, base_url=base, method="archive", repos=["TAO_transients"], progress=False, retries=1)
    assert "\n" not in str(info.value)
    assert len(src.requests) == 2  # fetched again once, then gave up
    assert not (dest / "TAO_transients").exists()
    assert not any((dest / ".partial").glob("*"))


def test_archive_http_error_is_one_line(tmp_path, http_source):
    _, base = http_source
    with pytest.raises(DownloadError) as info:
        download(tmp_path / "dest", base_url=base, method="archive", progress=False)
    msg = str(info.value)
    assert msg == f"cannot download {base}/TAO_transients/archive/HEAD.tar.gz: HTTP 404 Not Found"


def test_archive_connection_refused_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/MachineLearningUniandes"
    with pytest.raises(DownloadError) as info:
        download(tmp_path / "dest", base_url=base, method="archive", progress=False, timeout=5)
    msg = str(info.value)
    assert "\n" not in msg
    assert not (tmp_path / "dest" / ".partial").exists()
    assert msg.startswith(f"cannot reach {base}/TAO_transients/archive/HEAD.tar.gz: ")
    assert "refused" in msg.lower()


def test_auto_uses_archive_without_git(tmp_path, http_source, monkeypatch):
    src, base = http_source
    _serve_release(src, tmp_path)
    monkeypatch.setattr(dl.shutil, "which", lambda name: None)
    report = download(tmp_path / "dest", base_url=base, repos=["TAO_transients"], progress=False)
    assert report.repos[0].method == "archive"
    with pytest.raises(DownloadError, match="git is not installed"):
        download(tmp_path / "dest", base_url=base, method="git", progress=False)


def test_archive_progress_bar_when_asked(tmp_path, http_source, capfd):
    src, base = http_source
    _serve_release(src, tmp_path)
    download(tmp_path / "dest", base_url=base, method="archive", repos=["TAO_transients"], progress=True)
    assert "TAO_transients" in capfd.readouterr().err


# ------------------------------------------------------------------------- counts


def test_check_counts_reports_missing_classes_and_lfs_pointers(tmp_path):
    dest = tmp_path / "dest"
    _populate(dest / "TAO_transients", {"SN": 4, "CV": 2}, seed=3)
    sn = dest / "TAO_transients" / "data" / "SN"
    (sn / "notes.txt").write_text("not a fits file")
    (sn / "nested").mkdir()
    (sn / "nested" / "deeper:1+1.fits").write_bytes(b"x")  # not directly in the class folder
    (sn / "folder.fits").mkdir()  # a folder is not a file
    (dest / "TAO_transients" / "data" / "CV" / "stub:2+2.fits").write_bytes(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 123456\n"
    )

    counts = check_counts(dest, ["TAO_transients"])
    got = {c.label: (c.expected, c.found, c.lfs_pointers) for c in counts}
    assert got == {
        "SN": (RELEASE["SN"], 4, 0),
        "AGN": (RELEASE["AGN"], 0, 0),
        "BZ": (RELEASE["BZ"], 0, 0),
        "CV": (RELEASE["CV"], 3, 1),
        "OTHER": (RELEASE["OTHER"], 0, 0),
    }

    # Against a release of exactly this size, only the pointer file is wrong.
    small = {"TAO_transients": {"SN": 4, "CV": 3}}
    counts = check_counts(dest, ["TAO_transients"], expected=small)
    report = dl.DownloadReport(dest=dest, repos=(), counts=counts)
    assert report.missing == {} and not report.complete
    assert "git lfs pull" in str(report)
    (dest / "TAO_transients" / "data" / "CV" / "stub:2+2.fits").write_bytes(b"SIMPLE  =                    T")
    report = dl.DownloadReport(dest=dest, repos=(), counts=check_counts(dest, ["TAO_transients"], expected=small))
    assert report.complete
    assert str(report).splitlines()[-1] == f"complete: 7 files in {dest}"


def test_release_constant_matches_dataset_description():
    flat = {label: n for per in dl.RELEASE_COUNTS.values() for label, n in per.items()}
    assert flat == RELEASE
    assert sum(flat.values()) == 16_307
    assert set(dl.RELEASE_COUNTS["TAO_non-transients"]) == {"NON"}


@pytest.mark.parametrize(
    "kwargs",
    [{"method": "svn"}, {"repos": ["TAO_other"]}, {"repos": []}, {"repos": ["TAO_transients"] * 2}, {"retries": -1}],
)
def test_bad_arguments_are_value_errors(tmp_path, kwargs):
    with pytest.raises(ValueError):
        download(tmp_path / "dest", **kwargs)
    assert not (tmp_path / "dest").exists()
