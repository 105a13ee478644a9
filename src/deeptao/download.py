"""Bring the Deep-TAO release (two GitHub repositories of FITS files) to a local folder.

The release is about 5 GB spread over 16,307 files, so a download is long and
likely to be interrupted: every route here resumes instead of starting over,
and nothing half-written is ever left where a finished copy belongs.

Two routes, one result (``DEST/TAO_transients`` and ``DEST/TAO_non-transients``):

- ``git``: a shallow clone (one commit, no history). A clone that was cut off
  is finished with ``git fetch --depth 1`` and a checkout; one git cannot read
  is removed (with a warning) and cloned afresh.
- ``archive``: where git is missing, the repository's archive of its default
  branch is streamed over HTTP(S) to ``DEST/.partial/``, resumed with an HTTP
  ``Range`` request when the server allows it, then extracted into a temporary
  folder and renamed into place only once complete.

Afterwards the ``*.fits`` files under ``data/<CLASS>/`` are counted against the
release's published counts, so a short or broken copy is reported, not
silently trained on.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from tqdm import tqdm

from deeptao import CLASSES, RELEASE_CLASS_COUNTS, TRANSIENT_CLASSES, __version__
from deeptao._options import option

__all__ = [
    "DEFAULT_BASE_URL",
    "REPOS",
    "RELEASE_COUNTS",
    "DownloadError",
    "DownloadDefaults",
    "RepoResult",
    "ClassCount",
    "DownloadReport",
    "download",
    "check_counts",
    "git_url",
    "archive_url",
]

DEFAULT_BASE_URL = "https://github.com/MachineLearningUniandes"
"""Where the release lives; each repository is ``{base_url}/{name}``."""

REPOS: tuple[str, ...] = ("TAO_transients", "TAO_non-transients")

RELEASE_COUNTS: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "TAO_transients": MappingProxyType({c: RELEASE_CLASS_COUNTS[c] for c in TRANSIENT_CLASSES}),
        "TAO_non-transients": MappingProxyType({"NON": RELEASE_CLASS_COUNTS["NON"]}),
    }
)
"""Objects (``*.fits`` files) per class folder ``data/<CLASS>/`` in the published release."""

Method = Literal["auto", "git", "archive"]
_METHODS = ("auto", "git", "archive")
_PARTIAL_DIR = ".partial"
_CHUNK = 1 << 20
_LFS_MAGIC = b"version https://git-lfs"
# Never let git stop to ask for a password: GitHub answers a missing repository
# with an authentication challenge, which must become an error, not a prompt.
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", "LC_ALL": "C"}


class DownloadError(RuntimeError):
    """The release could not be fetched; ``str(err)`` is one line naming the URL or path and the cause."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class DownloadDefaults:
    """Defaults of :func:`download`, one field per command-line flag."""

    base_url: str = option("where the repositories live: {base_url}/TAO_transients, ...", default=DEFAULT_BASE_URL)
    method: Method = option(
        "git (shallow clone), archive (HTTP download), or auto: git when installed", default="auto", choices=_METHODS
    )
    repos: tuple[str, ...] = option("which repositories to fetch", default=REPOS, choices=REPOS)
    retries: int = option("archive route: times to resume an interrupted transfer within one run", default=2)
    timeout: float = option("seconds to wait on a silent connection", default=60.0)


@dataclass(frozen=True)
class RepoResult:
    """What happened to one repository.

    ``action`` is one of: ``cloned``, ``resumed`` (an interrupted clone or
    transfer was finished), ``updated`` (the source moved on), ``verified``
    (an existing clone was checked out again), ``recloned`` (a broken clone
    was replaced), ``downloaded`` (archive), or ``present`` (a folder that is
    not a clone already existed and was left alone).
    """

    name: str
    url: str
    path: Path
    method: Literal["git", "archive"]
    action: str


@dataclass(frozen=True)
class ClassCount:
    """Files of one class folder against the release.

    ``lfs_pointers`` counts files that are Git LFS pointer stubs rather than
    FITS data: they exist but hold no images.
    """

    label: str
    repo: str
    expected: int
    found: int
    lfs_pointers: int = 0

    @property
    def missing(self) -> int:
        return max(self.expected - self.found, 0)

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.lfs_pointers == 0


@dataclass(frozen=True)
class DownloadReport:
    """Result of :func:`download`: per-repository actions and per-class counts."""

    dest: Path
    repos: tuple[RepoResult, ...]
    counts: tuple[ClassCount, ...]

    @property
    def complete(self) -> bool:
        """Whether every class folder holds at least the release's number of real files."""
        return all(c.ok for c in self.counts)

    @property
    def missing(self) -> dict[str, tuple[int, int]]:
        """``{label: (expected, found)}`` for the classes short of the release (empty when complete)."""
        return {c.label: (c.expected, c.found) for c in self.counts if c.missing}

    def lines(self) -> list[str]:
        """Human-readable summary, one line per repository, class and verdict."""
        out = [f"{r.name}: {r.action} ({r.method}) {r.url} -> {r.path}" for r in self.repos]
        out.append(f"{'class':<6} {'expected':>8} {'found':>8}")
        for c in self.counts:
            notes = []
            if c.missing:
                notes.append(f"{c.missing} missing")
            if c.lfs_pointers:
                notes.append(f"{c.lfs_pointers} Git LFS pointers")
            flag = "  <- " + ", ".join(notes) if notes else ""
            out.append(f"{c.label:<6} {c.expected:>8} {c.found:>8}{flag}")
        if self.complete:
            out.append(f"complete: {sum(c.found for c in self.counts)} files in {self.dest}")
        else:
            why = []
            if self.missing:
                why.append(", ".join(f"{label} {found} of {exp}" for label, (exp, found) in self.missing.items()))
            pointers = sum(c.lfs_pointers for c in self.counts)
            if pointers:
                why.append(f"{pointers} Git LFS pointer files (install git-lfs, run `git lfs pull` in the clone)")
            out.append("incomplete: " + "; ".join(why))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def git_url(base_url: str, repo: str) -> str:
    """The clone URL of ``repo`` under ``base_url``."""
    return f"{base_url.rstrip('/')}/{repo}"


def archive_url(base_url: str, repo: str) -> str:
    """The URL of the default branch's tar.gz archive (GitHub's ``archive/HEAD`` form)."""
    return f"{git_url(base_url, repo)}/archive/HEAD.tar.gz"


def download(
    dest: str | os.PathLike[str],
    *,
    base_url: str = DEFAULT_BASE_URL,
    method: Method = "auto",
    repos: Sequence[str] = REPOS,
    progress: bool | None = None,
    retries: int = 2,
    timeout: float = 60.0,
) -> DownloadReport:
    """Fetch the release repositories into ``dest`` and count what arrived.

    Safe to run again: finished repositories are checked, not fetched anew,
    and interrupted ones are resumed.

    Parameters
    ----------
    dest : path
        Folder that receives ``TAO_transients/`` and ``TAO_non-transients/``;
        created if missing.
    base_url : str, default=DEFAULT_BASE_URL
        Where the repositories live (a GitHub owner URL, a ``file://`` folder
        of git repositories, or an HTTP server laid out like GitHub).
    method : {"auto", "git", "archive"}, default="auto"
        ``auto`` uses git when it is installed, else the archive.
    repos : sequence of str, default=REPOS
        Which of the release's repositories to fetch.
    progress : bool or None, default=None
        Show progress on stderr; ``None`` shows it only on a terminal.
    retries : int, default=2
        Archive route: how many times an interrupted transfer is resumed (or a
        corrupt archive fetched again) before giving up.
    timeout : float, default=60.0
        Seconds to wait on a connection that sends nothing.

    Returns
    -------
    DownloadReport
        Per-repository actions and per-class file counts; ``report.complete``
        says whether the copy matches the release.

    Raises
    ------
    DownloadError
        The source is unreachable, refuses, or sends something unusable; the
        message is one line. Partial work is kept for the next run.
    ValueError
        Unknown ``method`` or repository name, negative ``retries``.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    repos = tuple(repos)
    unknown = [r for r in repos if r not in REPOS]
    if unknown or not repos or len(set(repos)) != len(repos):
        raise ValueError(f"repos must be distinct names among {REPOS}, got {repos!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, got {timeout!r}")

    have_git = shutil.which("git") is not None
    if method == "auto":
        method = "git" if have_git else "archive"
    elif method == "git" and not have_git:
        raise DownloadError("git is not installed; install it or use method 'archive'")
    show = sys.stderr.isatty() if progress is None else bool(progress)

    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"cannot create {dest}: {err}") from None

    results = []
    try:
        for repo in repos:
            target = dest / repo
            _drop_if_empty_dir(target)
            if method == "git":
                url = git_url(base_url, repo)
                action = _git_fetch(url, target, show=show)
            else:
                url = archive_url(base_url, repo)
                action = _archive_fetch(url, target, dest / _PARTIAL_DIR, show=show, retries=retries, timeout=timeout)
            results.append(RepoResult(name=repo, url=url, path=target, method=method, action=action))
    finally:
        _drop_if_empty_dir(dest / _PARTIAL_DIR)
    return DownloadReport(dest=dest, repos=tuple(results), counts=check_counts(dest, repos))


def check_counts(
    dest: str | os.PathLike[str],
    repos: Iterable[str] = REPOS,
    *,
    expected: Mapping[str, Mapping[str, int]] = RELEASE_COUNTS,
) -> tuple[ClassCount, ...]:
    """Count ``DEST/<repo>/data/<CLASS>/*.fits`` against ``expected`` (the release by default).

    Only regular files directly inside the class folder count, as the readers
    see them. Small files that are Git LFS pointers are counted separately.
    """
    dest = Path(dest)
    counts = []
    for repo in repos:
        per_class = expected[repo]
        for label in sorted(per_class, key=lambda c: CLASSES.index(c) if c in CLASSES else len(CLASSES)):
            folder = dest / repo / "data" / label
            files = [p for p in folder.glob("*.fits") if p.is_file()] if folder.is_dir() else []
            pointers = sum(_is_lfs_pointer(p) for p in files)
            counts.append(ClassCount(label, repo, int(per_class[label]), len(files), pointers))
    return tuple(counts)


# --------------------------------------------------------------------------- git


def _git_fetch(url: str, target: Path, *, show: bool) -> str:
    if target.exists() and not (target / ".git").exists():
        return "present"  # a tree from the archive route or put there by hand: not ours to replace
    remote_head = _remote_head(url)
    if not target.exists():
        _git_clone(url, target, show=show)
        return "cloned"

    local_head = _local_head(target)
    if local_head is _BROKEN:
        return _reclone(url, target, "git cannot read it", show=show)
    try:
        if not _has_commit(target, remote_head):
            _git(["fetch", "--depth", "1", *_progress_flag(show), url, "HEAD"], cwd=target, echo=show, check=True)
        # Restores files a killed checkout never wrote, and moves an old clone to the source's HEAD.
        _git(["reset", "--hard", "--quiet", remote_head], cwd=target, check=True)
    except _GitFailed as err:
        # The source answered ls-remote a moment ago, so the fault is the local clone.
        return _reclone(url, target, err.cause, show=show)
    if local_head is None:
        return "resumed"
    return "verified" if local_head == remote_head else "updated"


class _GitFailed(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


_BROKEN = object()


def _git(
    args: list[str], *, cwd: Path | None = None, echo: bool = False, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run git without a prompt; stderr is kept for the error line and, with ``echo``, shown live."""
    env = os.environ | _GIT_ENV
    cmd = ["git", *args]
    if not echo:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    else:
        with subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as pipe:
            assert pipe.stderr is not None
            tail = bytearray()
            while chunk := pipe.stderr.read1(65536):
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
                tail += chunk
                del tail[:-16384]
            rc = pipe.wait()
        proc = subprocess.CompletedProcess(cmd, rc, "", tail.decode(errors="replace"))
    if check and proc.returncode != 0:
        raise _GitFailed(_git_cause(proc))
    return proc


def _git_cause(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [s.strip() for s in re.split(r"[\r\n]+", proc.stderr or "") if s.strip()]
    for prefix in ("fatal:", "error:"):
        for line in lines:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
    return lines[-1] if lines else f"git {proc.args[1]} exited with status {proc.returncode}"


def _progress_flag(show: bool) -> list[str]:
    # git shows progress only on a terminal; we pipe its stderr, so ask explicitly.
    return ["--progress"] if show else ["--quiet"]


def _remote_head(url: str) -> str:
    proc = _git(["ls-remote", url, "HEAD"])
    if proc.returncode != 0:
        raise DownloadError(f"cannot reach {url}: {_git_cause(proc)}")
    for line in proc.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.strip() == "HEAD" and sha:
            return sha.strip()
    raise DownloadError(f"cannot download {url}: the repository has no commits")


def _git_clone(url: str, target: Path, *, show: bool) -> None:
    try:
        _git(["clone", "--depth", "1", *_progress_flag(show), url, str(target)], echo=show, check=True)
    except _GitFailed as err:
        raise DownloadError(f"cannot clone {url} into {target}: {err.cause}") from None


def _local_head(target: Path) -> object:
    """The checked-out commit, ``None`` for a clone cut off before its first commit, or ``_BROKEN``."""
    top = _git(["rev-parse", "--absolute-git-dir"], cwd=target)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != (target / ".git").resolve():
        return _BROKEN
    head = _git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], cwd=target)
    if head.returncode == 0:
        return head.stdout.strip()
    unborn = _git(["symbolic-ref", "--quiet", "HEAD"], cwd=target)
    return None if unborn.returncode == 0 else _BROKEN


def _has_commit(target: Path, sha: str) -> bool:
    return _git(["cat-file", "-e", f"{sha}^{{commit}}"], cwd=target).returncode == 0


def _reclone(url: str, target: Path, cause: str, *, show: bool) -> str:
    warnings.warn(
        f"{target}: unusable git clone ({cause}); removing it and cloning {url} afresh",
        RuntimeWarning,
        stacklevel=4,
    )
    shutil.rmtree(target)
    _git_clone(url, target, show=show)
    return "recloned"


# ----------------------------------------------------------------------- archive


class _Interrupted(Exception):
    """The transfer stopped early; the partial file is kept for resuming."""


class _Corrupt(Exception):
    """The archive cannot be read; it must be fetched again."""


def _archive_fetch(url: str, target: Path, work: Path, *, show: bool, retries: int, timeout: float) -> str:
    if target.exists():
        return "present"
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob(f"{target.name}.extracting-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a run killed mid-extraction
    archive = work / f"{target.name}.archive"
    meta = work / f"{target.name}.archive.json"
    resumed = False
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            resumed |= _fetch_resumable(url, archive, meta, show=show, timeout=timeout)
        except _Interrupted as err:
            if last:
                raise DownloadError(
                    f"transfer of {url} interrupted ({err}); {archive} is kept: run again to resume"
                ) from None
            continue
        try:
            _extract(archive, target, work)
        except _Corrupt as err:
            archive.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            if last:
                raise DownloadError(f"archive from {url} is unreadable ({err}); run again to fetch it afresh") from None
            continue
        archive.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        return "resumed" if resumed else "downloaded"
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_resumable(url: str, archive: Path, meta_path: Path, *, show: bool, timeout: float) -> bool:
    """Bring ``archive`` to the full content of ``url``; return whether earlier bytes were reused."""
    meta = _read_meta(meta_path)
    offset = archive.stat().st_size if archive.exists() else 0
    if offset and meta.get("url") != url:
        offset = 0  # a partial file from another source is useless
    if offset and meta.get("total") == offset:
        return True  # finished earlier, then the run stopped before extracting

    headers = {"User-Agent": f"deeptao/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator  # if the file changed, the server sends it whole
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()  # it holds the open response
        if err.code == 416 and offset:
            # Our partial file is not a prefix the server recognises: start over.
            archive.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            return _fetch_resumable(url, archive, meta_path, show=show, timeout=timeout)
        raise DownloadError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise DownloadError(f"cannot reach {url}: {_reason(err.reason)}{_kept(archive, offset)}") from None
    except (OSError, http.client.HTTPException) as err:
        raise DownloadError(f"cannot reach {url}: {_reason(err)}{_kept(archive, offset)}") from None

    with resp:
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range", ""))
            if start != offset:
                resp.close()
                archive.unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
                return _fetch_resumable(url, archive, meta_path, show=show, timeout=timeout)
            mode = "ab"
        else:
            offset, mode = 0, "wb"  # no Range support, or the file changed: start over
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        validators = {
            "etag": resp.headers.get("ETag") or (meta.get("etag") if mode == "ab" else None),
            "last_modified": resp.headers.get("Last-Modified") or (meta.get("last_modified") if mode == "ab" else None),
        }
        _write_meta(meta_path, {"url": url, "total": total, **validators})
        size = offset
        with open(archive, mode) as out, tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=archive.name.removesuffix(".archive"),
            disable=not show,
            file=sys.stderr,
        ) as bar:
            while True:
                try:
                    chunk = resp.read(_CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise _Interrupted(f"{size} of {total or '?'} bytes; {_reason(err)}") from None
                if not chunk:
                    break
                out.write(chunk)
                size += len(chunk)
                bar.update(len(chunk))
    if total is not None and size < total:
        raise _Interrupted(f"{size} of {total} bytes; connection closed early")
    return mode == "ab"


def _content_range(value: str) -> tuple[int | None, int | None]:
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value)
    if not m:
        return None, None
    return int(m[1]), (int(m[3]) if m[3] != "*" else None)


def _extract(archive: Path, target: Path, work: Path) -> None:
    """Unpack into a temporary folder beside ``target`` and rename it into place only when whole."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}.extracting-", dir=work))
    try:
        with open(archive, "rb") as fh:
            magic = fh.read(4)
        try:
            if magic == b"PK\x03\x04":
                with zipfile.ZipFile(archive) as zf:
                    bad = zf.testzip()
                    if bad is not None:
                        raise _Corrupt(f"bad CRC for {bad}")
                    zf.extractall(tmp)
            elif magic[:2] == b"\x1f\x8b":
                with tarfile.open(archive, "r:gz") as tf:
                    tf.extractall(tmp, filter="data")
            else:
                raise _Corrupt("neither a tar.gz nor a zip archive")
        except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise _Corrupt(f"{type(err).__name__}: {err}") from None
        except OSError as err:  # disk full, permissions: the archive itself is fine, keep it
            raise DownloadError(f"cannot extract {archive}: {err}") from None
        entries = list(tmp.iterdir())
        # GitHub archives hold one folder named like "TAO_transients-<commit>".
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        root.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_meta(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))


def _reason(err: object) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def _kept(archive: Path, offset: int) -> str:
    return f" ({offset} bytes kept in {archive}; run again to resume)" if offset else ""


# -------------------------------------------------------------------------- misc


def _is_lfs_pointer(path: Path) -> bool:
    try:
        if path.stat().st_size > 1024:
            return False
        with open(path, "rb") as fh:
            return fh.read(len(_LFS_MAGIC)) == _LFS_MAGIC
    except OSError:
        return False


def _drop_if_empty_dir(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
    except OSError:
        pass
