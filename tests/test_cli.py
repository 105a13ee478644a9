"""The command line: exit codes, one-line messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deeptao.cli import main
from tests.fitsfactory import write_release_file


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("prepare", "show", "download", "evaluate"):
        assert command in out


@pytest.mark.parametrize("command", ["prepare", "show", "download", "evaluate"])
def test_each_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: deeptao " + command in capsys.readouterr().out


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["prepare"])
    assert info.value.code == 2


def test_prepare_reports_bad_files_and_strict_fails(tmp_path, capsys):
    root = tmp_path / "survey"
    write_release_file(root, label="SN", name="CSS1")
    write_release_file(root, label="NON", name="nonCSS:1+1")
    bad = root / "TAO_transients" / "data" / "SN" / "broken.fits"
    bad.write_bytes(b"")
    assert main(["prepare", str(root), "--out", str(tmp_path / "cache"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "prepared 2 objects" in out
    assert "skipped 1 bad file" in out and f"{bad}: file is empty" in out
    assert main(["prepare", str(root), "--out", str(tmp_path / "strict"), "--strict", "--workers", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"deeptao prepare: error: {bad}: file is empty"


def test_show_writes_png_and_fails_in_one_line(tmp_path, capsys):
    path = write_release_file(tmp_path, label="CV", n=6)
    out = tmp_path / "grid.png"
    assert main(["show", str(path), "--out", str(out)]) == 0
    assert out.stat().st_size > 5000
    assert "CV" in capsys.readouterr().out
    broken = tmp_path / "broken.fits"
    broken.write_bytes(path.read_bytes()[:4000])
    assert main(["show", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(broken) in err and "Traceback" not in err


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "deeptao.cli", "prepare", str(tmp_path / "missing"), "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"deeptao prepare: error: {tmp_path / 'missing'}: no such folder"


def test_download_offline_fails_in_one_line(tmp_path, capsys):
    # A closed local port stands in for an unreachable GitHub.
    code = main(["download", str(tmp_path / "dl"), "--method", "archive", "--base-url", "http://127.0.0.1:9", "--retries", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "127.0.0.1:9" in err


def test_evaluate_without_run_fails_in_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 1
    assert str(tmp_path) in capsys.readouterr().err
