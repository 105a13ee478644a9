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


# --------------------------------------------------------------------------- what each command imports

# Modules a command that does not plot, simulate or train must not pay for at start-up.
_HEAVY = ("matplotlib", "scipy", "pandas", "torch", "lightning", "sklearn", "astropy", "tqdm")
_HEAVY_DEEPTAO = ("deeptao.plotting", "deeptao.simulate", "deeptao.training", "deeptao.lightcurves", "deeptao.report", "deeptao.evaluation", "deeptao.replicate", "deeptao.models")


def _modules_imported_by(args: list[str], tmp_path) -> set[str]:
    """Modules loaded in a fresh interpreter after ``deeptao ARGS`` (whatever its exit status)."""
    listing = tmp_path / "modules.txt"
    code = (
        "import sys\nfrom deeptao.cli import main\n"
        "try:\n    main(sys.argv[2:])\nexcept SystemExit:\n    pass\n"
        "open(sys.argv[1], 'w').write('\\n'.join(sys.modules))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(listing), *args], capture_output=True, text=True, check=True)
    return set(listing.read_text().split())


def _heavy(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    roots = [m for m in _HEAVY if m not in allowed and any(n == m or n.startswith(m + ".") for n in modules)]
    ours = [m for m in _HEAVY_DEEPTAO if m not in allowed and m in modules]
    return roots + ours


def test_help_imports_nothing_heavy(tmp_path):
    modules = _modules_imported_by(["--help"], tmp_path)
    assert "deeptao.cli" in modules  # the listing did run
    assert _heavy(modules) == []
    assert "numpy" not in modules
    assert _heavy(_modules_imported_by(["prepare", "--help"], tmp_path)) == []


def test_a_command_with_bad_options_still_fails_in_usage(capsys):
    # Only the chosen command's arguments are built; an unknown command or a
    # missing argument is still argparse's one-line usage error.
    for argv in (["nope"], ["prepare", "--out"], ["simulate"], ["predict", "model.pt"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "usage: deeptao" in err and "Traceback" not in err


def test_prepare_imports_no_plotting_simulation_training_or_pandas(tmp_path):
    root = tmp_path / "survey"
    for k, label in enumerate(("SN", "CV", "NON")):
        write_release_file(root, label=label, name=f"CSS{k}" if label != "NON" else "nonCSS:1+1", seed=k)
    modules = _modules_imported_by(["prepare", str(root), "--out", str(tmp_path / "cache"), "--workers", "1"], tmp_path)
    assert "deeptao.data.cache" in modules
    assert _heavy(modules) == []
    from deeptao.data.cache import open_cache

    cache = open_cache(tmp_path / "cache")  # the tables written without pandas read back with it
    assert sorted(cache.objects.label) == ["CV", "NON", "SN"]
    assert len(cache.images) == cache.objects.n_images.sum() == 36


@pytest.mark.slow
def test_predict_with_a_saved_network_never_imports_lightning(tmp_path):
    from deeptao.models import create_model
    from tests._fake_cache import blob_survey

    cache, y = blob_survey(n_per_class=4, n_images=6, seed=0)
    model = create_model("seed-cnn", max_epochs=1, batch_size=8, progress=False)
    model.fit(cache, np.arange(len(y)), y, classes=("SN", "NON"), seed=0)
    stage = tmp_path / "stage"
    stage.mkdir()
    model.save(stage / "model.pt")
    files = [str(write_release_file(tmp_path / "new", label="SN", name="CSS9", seed=9))]
    modules = _modules_imported_by(["predict", str(stage), *files, "--out", str(tmp_path / "p.csv")], tmp_path)
    assert "deeptao.models.seed_cnn" in modules and (tmp_path / "p.csv").exists()
    assert _heavy(modules, allowed=("torch", "tqdm", "pandas", "deeptao.models")) == []  # torch.hub imports tqdm


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "{tmp}/survey", "--objects-per-class", "-1"],
        ["simulate", "{file}"],
        ["prepare", "{tmp}", "--out", "{file}"],
    ],
)
def test_bad_values_and_a_file_for_a_folder_fail_in_one_line(argv, tmp_path, capsys):
    file = tmp_path / "plain.txt"
    file.write_text("not a folder")
    argv = [a.format(tmp=tmp_path, file=file) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"deeptao {argv[0]}: error: ") and "\n" not in err and "Traceback" not in err
