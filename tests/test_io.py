"""The reader against files written independently with astropy, and every malformed kind."""

from __future__ import annotations

import os

import fitsio
import numpy as np
import pytest
from astropy.io import fits

from deeptao.io import TaoFormatError, iter_fits_files, read_object
from tests.fitsfactory import make_images, write_release_file


def _expected(path):
    """Images in MJD order the slow, independent way: astropy, then sort by MJD."""
    with fits.open(path) as hdul:
        tab = hdul[1].data
        ext = np.array([int(v) for v in tab["HDU_Ext"]])
        mjd = np.array([float(v) for v in tab["MJD"]])
        order = np.lexsort((ext, mjd))
        images = np.stack([hdul[int(e)].data for e in ext[order]])
    return mjd[order], images


@pytest.mark.parametrize("label", ["SN", "AGN", "BZ", "CV", "OTHER", "NON"])
def test_matches_astropy_both_variants(tmp_path, label):
    path = write_release_file(tmp_path, label=label, n=21, seed=3)
    obj = read_object(path)
    mjd, images = _expected(path)
    assert obj.label == label
    assert obj.images.dtype == np.uint16 and obj.images.shape == (21, 64, 64)
    assert obj.mjd.dtype == np.float64
    np.testing.assert_array_equal(obj.mjd, mjd)
    np.testing.assert_array_equal(obj.images, images)
    assert np.all(np.diff(obj.mjd) >= 0)
    assert list(obj.table["mjd"]) == list(obj.mjd)
    assert obj.table["hdu_ext"].dtype == np.int64
    assert {"date", "field_id", "cutout", "blank", "duplicate"} <= set(obj.table.columns)


def test_images_follow_their_rows_not_the_storage_order(tmp_path):
    rng = np.random.default_rng(0)
    # Dates whose alphabetical order differs from time order: 05APR06 < 05DEC25 < 05FEB02.
    mjd = np.array([53466.3, 53729.3, 53403.3])  # 2005-04-06, 2005-12-25, 2005-02-02
    images = make_images(3, rng)
    for k in range(3):
        images[k, 0, 0] = 100 + k  # tag each image with its own index
    path = write_release_file(tmp_path, images=images, mjd=mjd)
    with fits.open(path) as hdul:
        assert list(hdul[1].data["Date"]) == ["05APR06", "05DEC25", "05FEB02"]
    obj = read_object(path)
    np.testing.assert_array_equal(obj.mjd, np.sort(mjd))
    assert list(obj.images[:, 0, 0]) == [102, 100, 101]


def test_transient_metadata_and_identity(tmp_path):
    obj = read_object(write_release_file(tmp_path, label="SN", name="CSS080101:120000-050000"))
    assert obj.crts_id == obj.group == obj.object_id == "CSS080101:120000-050000"
    assert obj.variant == "transient"
    assert obj.header["RA_(J2000)"] == "10:00:29.52"  # HIERARCH card
    assert obj.header["MAG"] == pytest.approx(18.6)
    assert obj.ra == pytest.approx(150.123, abs=1e-3)
    assert obj.dec == pytest.approx(7.18786, abs=1e-4)
    assert "TTYPE1" not in obj.header  # structure is not metadata


def test_non_transient_groups_with_its_parent(tmp_path):
    path = write_release_file(tmp_path, label="NON", name="nonCSS:150.12+7.1899", parent="CSS090101:100000+070000")
    obj = read_object(path)
    assert obj.variant == "non-transient"
    assert obj.object_id == obj.crts_id == "nonCSS:150.12+7.1899"
    assert obj.group == "CSS090101:100000+070000"
    assert obj.header["N_IMAGES"] == "12"  # stored as a string in this variant
    assert obj.ra == pytest.approx(150.12)


def test_label_comes_from_the_folder_never_the_class_card(tmp_path):
    path = write_release_file(tmp_path, label="AGN")
    assert read_object(path).label == "AGN"
    moved = tmp_path / "elsewhere.fits"
    os.replace(path, moved)
    assert read_object(moved).label is None


def test_duplicate_exposure_and_blank_images_are_kept_and_flagged(tmp_path):
    path = write_release_file(tmp_path, n=12, duplicate_last=True, blank=(4,))
    obj = read_object(path)
    assert len(obj) == 13
    assert obj.table["duplicate"].sum() == 1
    assert obj.blank.sum() == 1 and obj.table["blank"].sum() == 1
    assert obj.images[obj.blank].max() == 0


def test_agrees_with_fitsio(tmp_path):
    path = write_release_file(tmp_path, label="CV", n=30, seed=7)
    obj = read_object(path)
    with fitsio.FITS(str(path)) as f:
        tab = f[1].read()
        by_ext = {int(e): f[int(e)].read() for e in tab["HDU_Ext"]}
    for k, ext in enumerate(obj.table["hdu_ext"]):
        np.testing.assert_array_equal(obj.images[k], by_ext[ext])


def test_extra_cards_continue_and_odd_values(tmp_path):
    hdr = fits.Header()
    hdr["CRTS_ID"] = "CSS100101:000000+000000"
    hdr["OTHERS"] = "it's quoted"
    hdr["LC"] = "x" * 100  # long string: astropy writes CONTINUE cards
    hdr["FOLLOWED"] = True
    hdr["COMMENT"] = "ignored"
    cols = [fits.Column("HDU_Ext", "K", array=[2]), fits.Column("MJD", "D", array=[53000.5])]
    path = tmp_path / "odd.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, header=hdr), fits.ImageHDU(np.ones((64, 64), np.uint16))]
    ).writeto(path)
    obj = read_object(path)
    assert obj.header["OTHERS"] == "it's quoted"
    assert obj.header["LC"] == "x" * 100
    assert obj.header["FOLLOWED"] is True
    assert obj.blank.all()


# --- malformed input: one exception type, one line, naming the file and the fault ---


def _fails(path, fault):
    with pytest.raises(TaoFormatError) as info:
        read_object(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert fault in message
    return info.value


def test_empty_file(tmp_path):
    path = tmp_path / "empty.fits"
    path.write_bytes(b"")
    _fails(path, "empty")


def test_not_fits(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("hello, this is not FITS\n" * 200)
    _fails(path, "not a FITS file")


@pytest.mark.parametrize("keep", [100, 2880 * 3 + 17, -5000])
def test_truncated(tmp_path, keep):
    path = write_release_file(tmp_path, n=8)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    err = _fails(path, "")
    assert "truncated" in err.fault or "END" in err.fault or "fewer images" in err.fault


def test_no_table(tmp_path):
    path = tmp_path / "image_only.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((64, 64), np.uint16))]).writeto(path)
    _fails(path, "no binary table")
    only_primary = tmp_path / "primary.fits"
    fits.PrimaryHDU().writeto(only_primary)
    _fails(only_primary, "no binary table")


def test_image_not_64x64(tmp_path):
    _fails(write_release_file(tmp_path, image_shape=(32, 48)), "not 64x64")


def test_fewer_images_than_rows(tmp_path):
    _fails(write_release_file(tmp_path, n=8, drop_hdus=2), "fewer images (6) than table rows (8)")


def test_fewer_images_than_n_images(tmp_path):
    _fails(write_release_file(tmp_path, n=8, n_images_card=10), "than N_IMAGES (10)")


def test_non_finite_pixels(tmp_path):
    path = tmp_path / "nan.fits"
    img = np.full((64, 64), 2000.0, np.float32)
    img[3, 3] = np.nan
    cols = [fits.Column("HDU_Ext", "K", array=[2]), fits.Column("MJD", "D", array=[53000.5])]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols), fits.ImageHDU(img)]).writeto(path)
    _fails(path, "non-finite pixels")


def test_float_images_in_range_are_accepted(tmp_path):
    path = write_release_file(tmp_path, n=5, float_images=True)
    obj = read_object(path)
    mjd, images = _expected(path)
    np.testing.assert_array_equal(obj.images, images.astype(np.uint16))


def test_unreadable(tmp_path):
    path = tmp_path / "folder.fits"
    path.mkdir()
    _fails(path, "unreadable")
    _fails(tmp_path / "missing.fits", "unreadable")


def test_bad_mjd_string(tmp_path):
    path = tmp_path / "badmjd.fits"
    cols = [fits.Column("HDU_Ext", "4A", array=["2"]), fits.Column("MJD", "8A", array=["soon"])]
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols), fits.ImageHDU(np.ones((64, 64), np.uint16))]
    ).writeto(path)
    _fails(path, "'soon' is not a number")


def test_hdu_ext_out_of_range(tmp_path):
    path = tmp_path / "badext.fits"
    cols = [fits.Column("HDU_Ext", "K", array=[7]), fits.Column("MJD", "D", array=[53000.0])]
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols), fits.ImageHDU(np.ones((64, 64), np.uint16))]
    ).writeto(path)
    _fails(path, "HDU_Ext outside")


def test_iter_fits_files_finds_both_repositories_and_ignores_other_files(tmp_path):
    write_release_file(tmp_path, label="SN", name="CSS1")
    write_release_file(tmp_path, label="NON", name="nonCSS:1+1")
    write_release_file(tmp_path, label="AGN", name="CSS2")
    (tmp_path / "TAO_transients" / "data" / "SN" / "README.md").write_text("not data")
    found = iter_fits_files(tmp_path)
    assert [(p.name, label) for p, label in found] == [
        ("CSS1.fits", "SN"),
        ("CSS2.fits", "AGN"),
        ("nonCSS:1+1.fits", "NON"),
    ]
    assert [label for _, label in iter_fits_files(tmp_path / "TAO_transients")] == ["SN", "AGN"]
