"""The command line: exit codes, one-line messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
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


def test_prepare_over_every_malformed_kind_prints_no_traceback(tmp_path):
    from tests.test_cache import malformed_survey

    root = tmp_path / "survey"
    good, bad, faulty = malformed_survey(root)
    proc = subprocess.run(
        [sys.executable, "-m", "deeptao.cli", "prepare", str(root), "--out", str(tmp_path / "c"), "--workers", "2"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    out = proc.stdout
    assert f"prepared {len(good) + len(faulty)} objects" in out
    assert f"skipped {len(bad)} bad file(s)" in out
    for path, words in bad.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{path}:"))
        assert words in line
    assert f"kept {len(faulty)} file(s) with faults: 5 image(s) or row(s) left out, 2 card(s) disagreeing" in out
    assert str(tmp_path / "c" / "warnings.csv") in out
    for path in faulty:
        assert f"  {path}: " in out
    assert "1 NON object(s) name a parent CRTS_ID that no transient here has" in out


def test_strict_prepare_stops_at_a_fault_inside_a_file(tmp_path, capsys):
    root = tmp_path / "survey"
    write_release_file(root, label="SN", name="CSS1")
    odd = write_release_file(root, label="AGN", name="CSS2", n=5, replace={1: np.ones((64, 32), np.uint16)})
    assert main(["prepare", str(root), "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    assert f"  {odd}: HDU " in capsys.readouterr().out
    assert main(["prepare", str(root), "--out", str(tmp_path / "strict"), "--workers", "1", "--strict"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"deeptao prepare: error: {odd}: HDU ")
    assert err.strip().endswith("image is 64x32, not 64x64")


def test_show_says_what_the_reader_left_out(tmp_path, capsys):
    path = write_release_file(tmp_path, label="NON", n=6, drop_hdus=1)
    assert main(["show", str(path), "--out", str(tmp_path / "grid.png")]) == 0
    captured = capsys.readouterr()
    assert "nonCSS:150.12+7.1899 (NON, 5 images)" in captured.out
    lines = captured.err.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"deeptao show: {path}: ") for line in lines)
    assert any("no such HDU" in line for line in lines) and any("N_IMAGES" in line for line in lines)
