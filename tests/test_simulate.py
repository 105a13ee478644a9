"""The simulated survey: release layout (read back with astropy and fitsio), cadence, physics.

Files are read here with the FITS libraries directly, never through deeptao.io,
and physics is checked with plain aperture sums.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import fitsio
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from deeptao.simulate import SurveyConfig, SurveySummary, _priors, _writer, simulate_survey
from deeptao.simulate._cadence import date_code, field_exposures, zero_point
from deeptao.simulate._physics import PointSource
from deeptao.simulate._render import render

TRANSIENT_COLUMNS = ["HDU_Ext", "Set_Number", "Date", "MJD", "Field_ID", "Obs_In_Seq", "Cutout"]
TRANSIENT_FORMATS = ["K", "2A", "7A", "D", "6A", "4A", "4A"]
NON_COLUMNS = ["HDU_Ext", "MJD", "DATE", "Field_ID", "Cutout"]
TRANSIENT_CARDS = ["CRTS_ID", "RA_(J2000)", "DEC_(J2000)", "N_IMAGES", "UT_DATE", "MAG",
                   "CSS_IMAGES", "SDSS", "OTHERS", "FOLLOWED", "LAST", "LC", "FC", "CLASS"]
NON_CARDS = ["CRTS_ID", "N_IMAGES", "RA_(J2000)", "DEC_(J2000)", "IMG_REF"]
TRANSIENT_NAME = re.compile(r"^CSS(\d{6}):(\d{6})([+-]\d{6})\.fits$")
NON_NAME = re.compile(r"^nonCSS:(\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)\.fits$")

# A survey without distractions, deep enough for aperture photometry to be exact.
CLEAN = SurveyConfig(
    faint_fraction=0.0, ambiguous_fraction=0.0, field_star_density=0.0, galaxy_density=0.0,
    cosmic_ray_rate=0.0, blank_fraction=0.0, edge_fraction=0.0, cloudy_fraction=0.0,
    duplicate_rate=0.0, limiting_mag=21.5, class_text_wrong_rate=0.0, mislabel_fraction=0.0,
    non_variable_fraction=0.0,
)


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> SurveySummary:
    return simulate_survey(tmp_path_factory.mktemp("default"), objects_per_class=2, seed=3)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> SurveySummary:
    return simulate_survey(tmp_path_factory.mktemp("clean"), objects_per_class=3, seed=5,
                           config=CLEAN)


@pytest.fixture(scope="module")
def quirky(tmp_path_factory: pytest.TempPathFactory) -> SurveySummary:
    cfg = SurveyConfig(duplicate_rate=0.15, blank_fraction=0.05, second_set_fraction=1.0)
    return simulate_survey(tmp_path_factory.mktemp("quirky"), objects_per_class=2, seed=11,
                           config=cfg)


def _files(summary: SurveySummary) -> list[Path]:
    return sorted(summary.out.glob("TAO_*/data/*/*.fits"))


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.glob("TAO_*/data/*/*.fits"))}


def _read(path: Path) -> tuple[pd.DataFrame, fits.Header, np.ndarray]:
    """Table (decoded, MJD as float), HDU-1 header and images in HDU order, by astropy."""
    with fits.open(path) as hdul:
        header = hdul[1].header.copy()
        data = hdul[1].data
        table = pd.DataFrame({name: np.asarray(data[name]).astype(data[name].dtype.newbyteorder("="))
                              for name in hdul[1].columns.names})
        images = np.stack([h.data for h in hdul[2:]])
    table["MJD"] = table["MJD"].astype(float)
    return table, header, images


def _photometry(images: np.ndarray, radius: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Sky-subtracted aperture sums at the cutout centre and their noise."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(xx - 31.5, yy - 31.5)
    aperture, annulus = r < radius, (r > 12) & (r < 20)
    data = images.astype(float)
    sky = np.median(data[:, annulus], axis=1)
    flux = (data[:, aperture] - sky[:, None]).sum(axis=1)
    mad = np.median(np.abs(data[:, annulus] - sky[:, None]), axis=1)
    return flux, 1.4826 * mad * np.sqrt(aperture.sum())


# --- layout -------------------------------------------------------------------

def test_folders_and_counts(survey: SurveySummary) -> None:
    for label in ("AGN", "BZ", "CV", "SN", "OTHER"):
        assert len(list((survey.out / "TAO_transients" / "data" / label).glob("*.fits"))) == 2
    assert len(list((survey.out / "TAO_non-transients" / "data" / "NON").glob("*.fits"))) == 2
    assert survey.counts == {"SN": 2, "AGN": 2, "BZ": 2, "CV": 2, "OTHER": 2, "NON": 2}
    assert not list(survey.out.rglob("*.part"))


def test_layout_read_by_astropy(survey: SurveySummary) -> None:
    for path in _files(survey):
        non = path.parent.name == "NON"
        with fits.open(path) as hdul:
            assert hdul[0].header["NAXIS"] == 0 and hdul[0].data is None
            assert isinstance(hdul[1], fits.BinTableHDU)
            cols = hdul[1].columns
            if non:
                assert cols.names == NON_COLUMNS
                assert all(fmt.endswith("A") for fmt in cols.formats)
            else:
                assert cols.names == TRANSIENT_COLUMNS
                assert [str(f) for f in cols.formats] == TRANSIENT_FORMATS
            header = hdul[1].header
            for card in NON_CARDS if non else TRANSIENT_CARDS:
                assert card in header, (path.name, card)
            n_images = len(hdul) - 2
            assert int(header["N_IMAGES"]) == n_images == len(hdul[1].data)
            if non:
                assert all(isinstance(header[c], str) for c in NON_CARDS)
            else:
                assert isinstance(header["N_IMAGES"], int) and isinstance(header["MAG"], float)
                assert isinstance(header["CSS_IMAGES"], int) and header["CLASS"].strip()
            assert [int(x) for x in hdul[1].data["HDU_Ext"]] == list(range(2, n_images + 2))
            for hdu in hdul[2:]:
                assert isinstance(hdu, fits.ImageHDU)
                assert hdu.header["BITPIX"] == 16 and hdu.header["BZERO"] == 32768
                assert hdu.data.dtype == np.uint16 and hdu.data.shape == (64, 64)
                if not non:  # transient images repeat the metadata; non-transient ones do not
                    assert hdu.header["CRTS_ID"] == header["CRTS_ID"]
                    assert hdu.header["RA_(J2000)"] == header["RA_(J2000)"]


def test_layout_read_by_fitsio(survey: SurveySummary) -> None:
    for path in _files(survey):
        non = path.parent.name == "NON"
        with fitsio.FITS(str(path)) as f:
            assert f[0].read_header()["NAXIS"] == 0
            assert f[1].get_exttype() == "BINARY_TBL"
            table = f[1].read()
            assert list(table.dtype.names) == (NON_COLUMNS if non else TRANSIENT_COLUMNS)
            if non:
                assert all(table.dtype[name].kind in "SU" for name in NON_COLUMNS)
            else:
                assert table.dtype["HDU_Ext"].kind == "i" and table.dtype["HDU_Ext"].itemsize == 8
                assert table.dtype["MJD"].kind == "f" and table.dtype["MJD"].itemsize == 8
                widths = [table.dtype[c].itemsize // (4 if table.dtype[c].kind == "U" else 1)
                          for c in TRANSIENT_COLUMNS[1:]]
                assert widths == [2, 7, 8, 6, 4, 4]
            header = f[1].read_header()
            assert int(header["N_IMAGES"]) == len(f) - 2 == table.size
            for ext in range(2, len(f)):
                assert f[ext].get_exttype() == "IMAGE_HDU"
                image = f[ext].read()
                assert image.dtype == np.uint16 and image.shape == (64, 64)


def test_hierarch_cards_in_raw_header(survey: SurveySummary) -> None:
    for path in _files(survey):
        raw = path.read_bytes()[2880:2880 * 3]  # the table header follows the primary's block
        assert b"HIERARCH RA_(J2000)" in raw and b"HIERARCH DEC_(J2000)" in raw
        if path.parent.name != "NON":
            assert b"HIERARCH CSS_IMAGES" in raw


def test_file_names_follow_the_release(survey: SurveySummary) -> None:
    for path in _files(survey):
        _, header, _ = _read(path)
        if path.parent.name == "NON":
            match = NON_NAME.match(path.name)
            assert match, path.name
            assert float(match.group(1)) == pytest.approx(float(header["RA_(J2000)"]), abs=1e-3)
            assert float(match.group(2)) == pytest.approx(float(header["DEC_(J2000)"]), abs=1e-3)
        else:
            match = TRANSIENT_NAME.match(path.name)
            assert match, path.name
            assert path.stem == header["CRTS_ID"]
            assert match.group(1) == f"{int(header['UT_DATE'])}"[2:]
            ra_h = float(header["RA_(J2000)"]) / 15.0
            assert int(match.group(2)[:2]) == int(ra_h) or abs(ra_h - round(ra_h)) < 1e-3


def test_non_transients_point_to_a_transient_of_their_field(survey: SurveySummary) -> None:
    transients = {p.stem: p for p in _files(survey) if p.parent.name != "NON"}
    for path in (survey.out / "TAO_non-transients" / "data" / "NON").glob("*.fits"):
        table, header, _ = _read(path)
        parent = header["CRTS_ID"]
        assert parent in transients
        parent_table, _, _ = _read(transients[parent])
        assert set(table["MJD"]) <= set(parent_table["MJD"])  # same exposures
        assert set(table["Field_ID"]) <= set(parent_table["Field_ID"])


# --- quirks -------------------------------------------------------------------

def test_rows_follow_the_date_string_not_time(survey: SurveySummary) -> None:
    out_of_time_order = 0
    for path in _files(survey):
        table, _, _ = _read(path)
        date = "DATE" if "DATE" in table else "Date"
        assert all(date_code(m) == d for m, d in zip(table["MJD"], table[date], strict=True))
        if "Set_Number" in table:
            keys = list(zip(table["Set_Number"], table[date], strict=True))
        else:
            keys = list(table[date])
        assert keys == sorted(keys)
        out_of_time_order += bool(np.any(np.diff(table["MJD"].to_numpy()) < 0))
    assert out_of_time_order >= len(_files(survey)) // 2


def test_duplicates_blanks_and_second_sets(quirky: SurveySummary) -> None:
    duplicates = blanks = second = 0
    for path in _files(quirky):
        table, _, images = _read(path)
        for _, rows in table.groupby("MJD"):
            if len(rows) > 1:
                duplicates += 1
                assert rows["Cutout"].nunique() == len(rows)
        flat = images.reshape(len(images), -1)
        blanks += int((flat.min(axis=1) == flat.max(axis=1)).sum())
        if "Set_Number" in table:
            sets = table["Set_Number"].tolist()
            second += "02" in sets
            assert sets == sorted(sets)
    assert duplicates > 0 and blanks > 0 and second > 0
    assert quirky.objects["n_blank"].sum() == blanks


# --- cadence --------------------------------------------------------------------

def test_nights_of_about_four_exposures_ten_minutes_apart(survey: SurveySummary) -> None:
    per_night, gaps, spans, seasonal = [], [], [], 0
    for path in _files(survey):
        table, _, _ = _read(path)
        mjd = np.unique(table["MJD"].to_numpy())  # duplicates are one exposure
        nights, counts = np.unique(np.floor(mjd), return_counts=True)
        per_night.extend(counts)
        for night in nights:
            t = mjd[np.floor(mjd) == night]
            gaps.extend(np.diff(t) * 1440.0)
        spans.append(mjd.max() - mjd.min())
        seasonal += bool(np.diff(nights).max() > 60)
    values, freq = np.unique(per_night, return_counts=True)
    assert values[np.argmax(freq)] == 4 and max(per_night) <= 8
    assert 7.0 < np.median(gaps) < 13.0
    assert np.median(spans) > 500 and max(spans) > 1000  # years, not weeks
    assert seasonal >= len(spans) - 1


def test_number_of_images_per_object() -> None:
    cfg = SurveyConfig()
    rng = np.random.default_rng(0)
    counts = [len(field_exposures(rng, rng.uniform(0, 360), 10.0, cfg, t_centre=55000.0,
                                  zp0=26.0)) for _ in range(300)]
    # duplicates (2.5 %) come on top of these exposures
    assert 65 < np.mean(counts) * (1 + cfg.duplicate_rate) < 90
    assert min(counts) >= cfg.min_images and max(counts) > 150


def test_clouds_and_centring_failures_follow_their_knobs() -> None:
    cfg = SurveyConfig(cloudy_fraction=0.5, cloud_extinction_mag=0.3,
                       centring_failure_fraction=0.2, astrometric_jitter_px=0.0)
    rng = np.random.default_rng(1)
    zp0 = 26.0
    loss, shifts = [], []
    for _ in range(60):
        e = field_exposures(rng, rng.uniform(0, 360), 10.0, cfg, t_centre=55000.0, zp0=zp0)
        main = e.set_number == 1
        # a night's cloud is shared by its exposures: take the nightly mean loss
        for night in np.unique(e.night[main]):
            loss.append(np.mean(zp0 - e.zp[main & (e.night == night)]))
        shifts.append(np.hypot(*e.shift.T))
    loss, shifts = np.asarray(loss), np.concatenate(shifts)
    cloudy = loss > 0.1  # clear nights scatter by 0.02 mag / sqrt(n)
    assert 0.3 < cloudy.mean() < 0.5  # half the nights, less the thinnest clouds
    # exponential depths of mean 0.3 mag: the mean above 0.1 mag is 0.1 + 0.3
    assert np.mean(loss[cloudy]) == pytest.approx(0.4, abs=0.06)
    assert loss.max() <= 2.0 * 1.4 + 0.1
    assert np.mean(shifts > 0) == pytest.approx(0.2, abs=0.03)


def test_mislabelled_transients_carry_the_catalogue_claim(tmp_path: Path) -> None:
    cfg = SurveyConfig(mislabel_fraction=1.0, class_text_wrong_rate=0.0)
    summary = simulate_survey(tmp_path / "mis", objects_per_class=2, seed=9, config=cfg)
    transients = summary.objects[summary.objects["variant"] == "transient"]
    assert (transients["physical_class"] != transients["label"]).all()
    for _, row in transients.iterrows():
        with fits.open(summary.out / row["path"]) as hdul:
            text = hdul[1].header["CLASS"]
        claim = _priors.catalogue_key(text).split(":")[0]
        if row["label"] == "OTHER" and "/" in text:
            continue  # an unclear note ('SN/CV?') is filed under OTHER
        assert claim == row["label"], text  # the folder follows the survey's text
    non = summary.objects[summary.objects["variant"] == "non-transient"]
    assert (non["physical_class"] == "NON").all()


# --- determinism ----------------------------------------------------------------

@pytest.mark.slow
def test_same_seed_same_bytes_any_workers(survey: SurveySummary, tmp_path: Path) -> None:
    again = simulate_survey(tmp_path / "again", objects_per_class=2, seed=3, workers=2)
    assert _digest(again.out) == _digest(survey.out)
    other = simulate_survey(tmp_path / "other", objects_per_class=2, seed=4)
    assert set(_digest(other.out)).isdisjoint(_digest(survey.out))


def test_existing_output_is_not_overwritten_silently(survey: SurveySummary) -> None:
    with pytest.raises(FileExistsError, match="overwrite"):
        simulate_survey(survey.out, objects_per_class=2, seed=3)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        simulate_survey("unused", objects_per_class=0)
    with pytest.raises(TypeError):
        simulate_survey("unused", workers="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="blank_fraction"):
        SurveyConfig(blank_fraction=1.5)


def test_every_config_field_documents_itself() -> None:
    for f in dataclasses.fields(SurveyConfig):
        assert f.metadata.get("help"), f.name
        assert f.type in ("float", "int", "bool", "str | None"), (f.name, f.type)


# --- physics --------------------------------------------------------------------

def _expected_flux(summary: SurveySummary, mag: float) -> float:
    zp = json.loads((summary.out / "simulation.json").read_text())["zero_point"]
    return 10 ** (-0.4 * (mag - zp))


def _object(summary: SurveySummary, row: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table, _, images = _read(summary.out / row["path"])
    flux, noise = _photometry(images)
    order = np.argsort(table["MJD"].to_numpy(), kind="stable")
    return table["MJD"].to_numpy()[order], flux[order], noise[order]


def test_supernova_absent_before_explosion_present_at_discovery(clean: SurveySummary) -> None:
    checked = 0
    for _, row in clean.objects[clean.objects["label"] == "SN"].iterrows():
        t_expl = json.loads(row["truth"])["t_explosion"]
        mjd, flux, noise = _object(clean, row)
        before = mjd < t_expl - 1.0
        found = np.floor(mjd) == np.floor(row["t_disc"])
        assert found.any()
        if before.sum() < 3:
            continue
        checked += 1
        base = np.median(flux[before])  # host light only
        scatter = 1.4826 * np.median(np.abs(flux[before] - base))
        assert scatter < 3.0 * np.median(noise)  # nothing comes and goes before explosion
        excess = np.mean(flux[found]) - base
        assert excess > 5.0 * np.median(noise)
        assert 0.5 < excess / _expected_flux(clean, row["m_disc"]) < 1.3
    assert checked >= 2


def test_cv_outburst_amplitude(clean: SurveySummary) -> None:
    for _, row in clean.objects[clean.objects["label"] == "CV"].iterrows():
        mjd, flux, noise = _object(clean, row)
        found = np.floor(mjd) == np.floor(row["t_disc"])
        outburst = np.mean(flux[found])
        assert 0.5 < outburst / _expected_flux(clean, row["m_disc"]) < 1.3
        quiescent = np.median(flux)
        assert quiescent < 0.3 * outburst  # two or more magnitudes of outburst


def test_non_transients_steady_blazars_not(clean: SurveySummary) -> None:
    def relative_scatter(label: str) -> tuple[list[float], list[float]]:
        scatter, noise_floor = [], []
        for _, row in clean.objects[clean.objects["label"] == label].iterrows():
            _, flux, noise = _object(clean, row)
            med = np.median(flux)
            scatter.append(1.4826 * np.median(np.abs(flux - med)) / med)
            noise_floor.append(np.median(noise) / med)
        return scatter, noise_floor

    (non, floor), (bz, _) = relative_scatter("NON"), relative_scatter("BZ")
    for s, f in zip(non, floor, strict=True):  # photon noise plus a few per cent from changing seeing
        assert s < 1.5 * f + 0.03
    assert np.median(non) < 0.5 * np.median(bz)


def test_zero_point_gives_the_limiting_magnitude() -> None:
    cfg = SurveyConfig(psf_halo_fraction=0.0, cosmic_ray_rate=0.0, blank_fraction=0.0,
                       edge_fraction=0.0)
    n = 600
    star = PointSource(np.zeros(n), np.zeros(n), np.full(n, cfg.limiting_mag))
    zp = np.full(n, zero_point(cfg))
    fwhm = np.full(n, cfg.seeing_fwhm_px)
    images = render([star], [], zp=zp, fwhm=fwhm, sky=np.full(n, cfg.sky_adu),
                    shift=np.zeros((n, 2)), bad=np.zeros(n, bool),
                    rng=np.random.default_rng(1), cfg=cfg).astype(float)
    # Sky level and its Poisson noise
    corner = images[:, :16, :16]
    assert np.median(corner) == pytest.approx(cfg.sky_adu, rel=0.01)
    assert corner.std() == pytest.approx(np.sqrt(cfg.sky_adu / cfg.gain + cfg.read_noise_adu**2),
                                         rel=0.05)
    # PSF-weighted flux of a limiting-magnitude star has S/N about 5
    yy, xx = np.mgrid[:64, :64]
    sigma = cfg.seeing_fwhm_px / 2.3548
    psf = np.exp(-((xx - 31.5) ** 2 + (yy - 31.5) ** 2) / (2 * sigma**2))
    psf /= psf.sum()
    est = ((images - cfg.sky_adu) * psf).sum(axis=(1, 2)) / (psf**2).sum()
    assert 4.0 < est.mean() / est.std() < 6.0
    # and a 9th-magnitude star saturates
    bright = PointSource(np.zeros(2), np.zeros(2), np.full(2, 9.0))
    sat = render([bright], [], zp=zp[:2], fwhm=fwhm[:2], sky=np.full(2, cfg.sky_adu),
                 shift=np.zeros((2, 2)), bad=np.zeros(2, bool), rng=np.random.default_rng(2),
                 cfg=cfg)
    assert sat.max() == int(cfg.saturation_adu)


# --- priors and writer ------------------------------------------------------------

def test_catalogue_classes() -> None:
    key = _priors.catalogue_key
    assert key("SN? SDSS mag 21,3") == "SN" and key("SN/AGN") == "SN"
    assert key("AGN? SDSS 22,1 mag Galaxy") == "AGN" and key("QSO") == "AGN"
    assert key("Blazar CRATES_J0001+2113") == "BZ" and key("CV/SN") == "CV"
    assert key("HPM LHS_2839") == "OTHER:hpm" and key("Ast?") == "OTHER:moving"
    assert key("Mira") == "OTHER:variable" and key("Flare?") == "OTHER:flare"
    assert key("Unknown") == "OTHER:unknown" and key(None) == "OTHER:unknown"


def test_priors_from_a_catalogue_and_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    mags = {"SN": rng.uniform(17, 19, 40), "CV": rng.uniform(13, 15, 40)}
    lines = ["#CRTS ID\tMag\tClassification"]
    for label, values in mags.items():
        lines += [f"CSS0\t{m:.2f}\t{label} note" for m in values]
    path = tmp_path / "cat.tsv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="built-in"):
        priors = _priors.load_priors(str(path))
    assert priors.source == str(path)
    draws = [priors.sample("SN", rng) for _ in range(500)]
    assert 17 <= min(draws) and max(draws) <= 19
    assert np.median(draws) == pytest.approx(np.median(np.round(mags["SN"], 2)), abs=0.2)
    with pytest.raises(FileNotFoundError):
        _priors.load_priors(str(tmp_path / "missing.tsv"))
    monkeypatch.setattr(_priors, "find_catalogue", lambda configured: None)
    assert _priors.load_priors(None).source == "built-in"
    # asked for by name, the built-in table is used even where a catalogue would be found
    monkeypatch.setattr(_priors, "find_catalogue", lambda configured: path)
    assert _priors.load_priors(None).source == str(path)
    builtin = _priors.load_priors("built-in")
    assert builtin.source == "built-in"
    assert builtin.quantiles["SN"][5] == _priors._BUILTIN_DECILES["SN"][5]


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = np.zeros(3, dtype=_writer.TRANSIENT_TABLE_DTYPE)
    images = np.zeros((3, 64, 64), dtype=np.uint16)
    target = tmp_path / "CSS071204:100029+071116.fits"
    calls = {"n": 0}
    real_write = fitsio.FITS.write

    def failing_write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(fitsio.FITS, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        _writer.write_object(target, table, images, {"CRTS_ID": "x"}, repeat_header=True)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(fitsio.FITS, "write", real_write)
    _writer.write_object(target, table, images, {"CRTS_ID": "x"}, repeat_header=True)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_release_like_counts_scale_the_release_and_keep_every_class():
    from deeptao import RELEASE_CLASS_COUNTS
    from deeptao.simulate import release_like_counts

    assert release_like_counts() == RELEASE_CLASS_COUNTS and sum(RELEASE_CLASS_COUNTS.values()) == 16307
    small = release_like_counts(0.002)
    assert small == {"SN": 3, "AGN": 1, "BZ": 1, "CV": 2, "OTHER": 2, "NON": 25}
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            release_like_counts(bad)


def test_a_release_like_survey_has_the_release_imbalance_and_shares_objects_with_a_larger_one(tmp_path):
    from deeptao.cli import main
    from deeptao.simulate import release_like_counts

    assert main(["simulate", str(tmp_path / "r"), "--release-like", "--fraction", "0.002", "--seed", "3"]) == 0
    counts = {label: len(list((tmp_path / "r").glob(f"*/data/{label}/*.fits"))) for label in release_like_counts()}
    assert counts == release_like_counts(0.002)
    # object i of a class does not depend on how many others there are
    simulate_survey(tmp_path / "big", seed=3, class_counts={**release_like_counts(0.002), "SN": 5, "NON": 0})
    for path in (tmp_path / "r").glob("*/data/SN/*.fits"):
        assert (tmp_path / "big" / path.relative_to(tmp_path / "r")).read_bytes() == path.read_bytes()
    assert main(["simulate", str(tmp_path / "x"), "--fraction", "0.5"]) == 2
    with pytest.raises(ValueError, match="class_counts"):
        simulate_survey(tmp_path / "y", class_counts={"SN": 2})
