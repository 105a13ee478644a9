"""The reader against files written independently with astropy, and every malformed kind."""

from __future__ import annotations

import os

import fitsio
import numpy as np
import pytest
from astropy.io import fits

from deeptao.io import (
    ReadFault,
    TaoFormatError,
    count_nights,
    counted_exposures,
    duplicate_exposures,
    iter_fits_files,
    read_object,
)
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
    assert obj.parent_id is None
    assert obj.variant == "transient"
    assert obj.faults == ()
    assert obj.header["RA_(J2000)"] == "10:00:29.52"  # HIERARCH card
    assert obj.header["MAG"] == pytest.approx(18.6)
    assert obj.ra == pytest.approx(150.123, abs=1e-3)
    assert obj.dec == pytest.approx(7.18786, abs=1e-4)
    assert "TTYPE1" not in obj.header  # structure is not metadata


def test_header_keywords_are_read_whatever_their_case(tmp_path):
    path = write_release_file(tmp_path, label="SN", n=8, n_images_card=6)
    upper = read_object(path)
    raw = path.read_bytes()
    for card in (b"N_IMAGES", b"RA_(J2000)", b"CRTS_ID "):
        assert card in raw
        raw = raw.replace(card, card.lower())
    path.write_bytes(raw)
    obj = read_object(path)
    assert obj.header["RA_(J2000)"] == "10:00:29.52" and obj.ra == pytest.approx(150.123, abs=1e-3)
    assert obj.crts_id == upper.crts_id is not None
    assert obj.header == upper.header
    assert obj.faults == upper.faults == (ReadFault(None, None, "N_IMAGES is 6 but the file has 8 image HDUs"),)


def test_non_transient_groups_with_its_parent(tmp_path):
    path = write_release_file(tmp_path, label="NON", name="nonCSS:150.12+7.1899", parent="CSS090101:100000+070000")
    obj = read_object(path)
    assert obj.variant == "non-transient"
    assert obj.object_id == "nonCSS:150.12+7.1899"
    assert obj.crts_id is None  # a non-transient has no CRTS ID of its own
    assert obj.parent_id == obj.group == "CSS090101:100000+070000"
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


def test_a_blank_cutout_of_an_exposure_gives_way_to_its_twin(tmp_path):
    path = write_release_file(tmp_path, n=12, duplicate_last=True, blank=(11,))  # the first copy lost, the second good
    obj = read_object(path)
    twins = np.flatnonzero(obj.mjd == obj.mjd.max())
    assert len(twins) == 2
    assert list(obj.blank[twins]) == list(obj.table["duplicate"].to_numpy()[twins])  # the blank one is the duplicate
    assert obj.table["duplicate"].sum() == 1 and obj.blank.sum() == 1


@pytest.mark.parametrize("seed", range(5))
def test_duplicate_rule_keeps_the_first_good_cutout_of_each_exposure(seed):
    rng = np.random.default_rng(seed)
    mjd = np.sort(rng.integers(0, 12, 40)).astype(float)
    blank = rng.random(40) < 0.4
    expected = np.ones(40, dtype=bool)
    for t in np.unique(mjd):
        members = np.flatnonzero(mjd == t)
        good = members[~blank[members]]
        expected[good[0] if len(good) else members[0]] = False
    np.testing.assert_array_equal(duplicate_exposures(mjd, blank), expected)
    np.testing.assert_array_equal(duplicate_exposures(mjd), np.r_[False, mjd[1:] == mjd[:-1]])
    with pytest.raises(ValueError, match="blank has shape"):
        duplicate_exposures(mjd, blank[:-1])
    counted = counted_exposures(blank, duplicate_exposures(mjd, blank))
    assert len(np.unique(mjd[counted])) == counted.sum()  # at most one cutout of each exposure counts
    assert set(np.unique(mjd[counted])) == set(np.unique(mjd[~blank]))  # and every exposure with a good cutout does
    with pytest.raises(ValueError, match="one value per image"):
        counted_exposures(blank, blank[:-1])
    # nights: the counted exposures' MJDs chained by gaps of at most half a day (here one per integer MJD)
    assert count_nights(mjd, blank, duplicate_exposures(mjd, blank)) == len(np.unique(mjd[~blank]))
    assert count_nights(mjd, np.ones(40, bool), np.zeros(40, bool)) == 0


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


def test_no_image_of_the_right_shape(tmp_path):
    _fails(write_release_file(tmp_path, image_shape=(32, 48)), "no usable image: HDU 2, row 0: image is 32x48, not 64x64")


def test_only_image_has_non_finite_pixels(tmp_path):
    path = tmp_path / "nan.fits"
    img = np.full((64, 64), 2000.0, np.float32)
    img[3, 3] = np.nan
    cols = [fits.Column("HDU_Ext", "K", array=[2]), fits.Column("MJD", "D", array=[53000.5])]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols), fits.ImageHDU(img)]).writeto(path)
    _fails(path, "no usable image: HDU 2, row 0: image has non-finite or undefined pixels")


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
    _fails(path, "no usable image: HDU 2, row 0: MJD 'soon' is not a number")


def test_hdu_ext_out_of_range(tmp_path):
    path = tmp_path / "badext.fits"
    cols = [fits.Column("HDU_Ext", "K", array=[7]), fits.Column("MJD", "D", array=[53000.0])]
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols), fits.ImageHDU(np.ones((64, 64), np.uint16))]
    ).writeto(path)
    _fails(path, "no usable image: HDU 7, row 0: no such HDU (the file's image HDUs are 2..2); and 1 more")


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


# --- legal variants of the format: read as astropy reads them ---


def _tagged(n, seed=0):
    """Sky images whose pixel (0, 0) is 100 + k, so each can be found again after sorting."""
    images = make_images(n, np.random.default_rng(seed))
    images[:, 0, 0] = 100 + np.arange(n)
    return images


def _write(path, columns, images, header=None):
    """A file with the given table columns and image HDUs (any shape or type), written by astropy."""
    hdus = [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns, header=header)]
    hdus += [fits.ImageHDU(img) for img in images]
    fits.HDUList(hdus).writeto(path)
    return path


def _astropy_table(path):
    with fits.open(path) as hdul:
        return {name.lower(): np.array(hdul[1].data[name]) for name in hdul[1].columns.names}


def test_unsigned_hdu_ext_is_read_through_its_tzero(tmp_path):
    images = _tagged(5)
    mjd = 53000.3 + np.array([3, 1, 4, 0, 2])
    cols = [
        fits.Column("HDU_Ext", "I", bzero=32768, array=np.arange(2, 7, dtype=np.uint16)),
        fits.Column("MJD", "D", array=mjd),
    ]
    path = _write(tmp_path / "u16.fits", cols, images)
    with fits.open(path) as hdul:
        assert hdul[1].header["TFORM1"] == "I" and hdul[1].header["TZERO1"] == 32768  # stored offset by 32768
    obj = read_object(path)
    assert obj.faults == ()
    assert list(obj.images[:, 0, 0]) == [103, 101, 104, 100, 102]
    assert list(obj.table["hdu_ext"]) == [5, 3, 6, 2, 4]


def test_scaled_columns_that_land_in_range_are_not_misread(tmp_path):
    # Raw HDU_Ext 0..4 with TZERO 2 are HDUs 2..6; raw 2, 3, 4 would point at the wrong images.
    images = _tagged(5)
    raw_mjd = np.array([4000, 1500, 3000, 500, 2000])  # MJD = 53000 + raw / 1000
    cols = [fits.Column("HDU_Ext", "I", array=np.arange(5, dtype=np.int16)), fits.Column("MJD", "J", array=raw_mjd)]
    path = _write(tmp_path / "scaled.fits", cols, images)
    fits.setval(path, "TZERO1", value=2, ext=1)
    fits.setval(path, "TSCAL2", value=0.001, ext=1)
    fits.setval(path, "TZERO2", value=53000.0, ext=1)
    truth = _astropy_table(path)
    order = np.argsort(truth["mjd"])
    obj = read_object(path)
    assert obj.faults == ()
    np.testing.assert_allclose(obj.mjd, truth["mjd"][order], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(obj.table["hdu_ext"], truth["hdu_ext"][order])
    assert list(obj.images[:, 0, 0]) == [103, 101, 104, 102, 100]


def test_read_bintable_matches_astropy_for_unsigned_and_scaled_columns(tmp_path):
    from deeptao.io._fits import read_bintable, scan_hdus

    cols = [
        fits.Column("u8", "K", bzero=2**63, array=np.array([0, 2**63 + 5, 2**64 - 1], dtype=np.uint64)),
        fits.Column("u4", "J", bzero=2**31, array=np.array([0, 7, 2**32 - 1], dtype=np.uint32)),
        fits.Column("i1", "B", array=np.array([0, 9, 255], dtype=np.uint8)),
        fits.Column("f", "E", bscale=2.0, bzero=1.5, array=np.array([1.5, 3.5, -0.5], dtype=np.float32)),
    ]
    path = tmp_path / "columns.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    buf = path.read_bytes()
    ours = read_bintable(buf, scan_hdus(buf)[1])
    truth = _astropy_table(path)
    for name in ("u8", "u4", "i1", "f"):
        np.testing.assert_array_equal(ours[name], truth[name], err_msg=name)
    assert ours["u8"].dtype == np.uint64 and ours["u4"].dtype == np.int64


def test_tnull_marks_a_row_without_image(tmp_path):
    images = _tagged(4)
    ext = np.array([2, -1, 4, 5])
    cols = [fits.Column("HDU_Ext", "J", null=-1, array=ext), fits.Column("MJD", "D", array=53000.3 + np.arange(4.0))]
    obj = read_object(_write(tmp_path / "tnull.fits", cols, images))
    assert list(obj.images[:, 0, 0]) == [100, 102, 103]
    assert obj.faults == (
        ReadFault(3, None, "image HDU that no table row names"),
        ReadFault(None, 1, "HDU_Ext is undefined (TNULL)"),
    )


def test_lowercase_reordered_and_extra_columns(tmp_path):
    images = _tagged(4)
    mjd = 53000.3 + np.array([2.0, 0.0, 3.0, 1.0])
    cols = [
        fits.Column("cutout", "4A", array=["a", "b", "c", "d"]),
        fits.Column("mjd", "D", array=mjd),
        fits.Column("seeing", "E", array=np.ones(4)),
        fits.Column("hdu_ext", "K", array=np.arange(2, 6)),
        fits.Column("date", "7A", array=["x2", "x0", "x3", "x1"]),
        fits.Column("Notes", "20A", array=["extra"] * 4),
        fits.Column("flags", "11X", array=[[1] * 11] * 4),  # formats the reader skips, not decodes
        fits.Column("phase", "C", array=[1 + 2j] * 4),
        fits.Column("history", "PJ()", array=[[1], [1, 2], [], [3]]),
    ]
    obj = read_object(_write(tmp_path / "lower.fits", cols, images))
    assert obj.faults == ()
    assert list(obj.images[:, 0, 0]) == [101, 103, 100, 102]
    assert list(obj.table["date"]) == ["x0", "x1", "x2", "x3"]
    assert list(obj.table["cutout"]) == ["b", "d", "a", "c"]


def test_single_precision_mjd(tmp_path):
    images = _tagged(4)
    mjd = (53000.3 + np.array([2.0, 0.0, 3.0, 1.0])).astype(np.float32)
    cols = [fits.Column("HDU_Ext", "K", array=np.arange(2, 6)), fits.Column("MJD", "E", array=mjd)]
    path = _write(tmp_path / "mjd32.fits", cols, images)
    obj = read_object(path)
    assert obj.mjd.dtype == np.float64
    np.testing.assert_array_equal(obj.mjd, np.sort(_astropy_table(path)["mjd"]).astype(np.float64))
    assert list(obj.images[:, 0, 0]) == [101, 103, 100, 102]


def test_blank_padded_string_columns(tmp_path):
    images = _tagged(3)
    cols = [
        fits.Column("HDU_Ext", "6A", array=["  2", " 3  ", "4"]),
        fits.Column("MJD", "20A", array=["   53002.25", "53000.5   ", "  53001.0  "]),
        fits.Column("DATE", "7A", array=["c", "a", "b"]),
    ]
    obj = read_object(_write(tmp_path / "padded.fits", cols, images))
    assert obj.faults == ()
    assert list(obj.mjd) == [53000.5, 53001.0, 53002.25]
    assert list(obj.images[:, 0, 0]) == [101, 102, 100]


def test_a_transient_folder_decides_the_variant_whatever_the_columns(tmp_path):
    folder = tmp_path / "TAO_transients" / "data" / "SN"
    folder.mkdir(parents=True)
    header = fits.Header([("CRTS_ID", "CSS090909:000000+000000")])
    cols = [fits.Column("HDU_Ext", "4A", array=["2"]), fits.Column("MJD", "20A", array=["53000.5"])]
    obj = read_object(_write(folder / "CSS090909:000000+000000.fits", cols, _tagged(1), header))
    assert (obj.variant, obj.crts_id, obj.parent_id) == ("transient", "CSS090909:000000+000000", None)


def test_two_columns_of_one_name_case_aside_are_refused(tmp_path):
    cols = [
        fits.Column("HDU_Ext", "K", array=[2]),
        fits.Column("hdu_ext", "K", array=[2]),
        fits.Column("MJD", "D", array=[53000.5]),
    ]
    _fails(_write(tmp_path / "twice.fits", cols, _tagged(1)), "table has two HDU_EXT columns")


# --- faults of one image or row drop that image or row, never the file ---


@pytest.mark.parametrize("label", ["SN", "NON"])
@pytest.mark.parametrize("card", [10, 6])
def test_n_images_is_a_cross_check_only(tmp_path, label, card):
    path = write_release_file(tmp_path, label=label, n=8, n_images_card=card)
    obj = read_object(path)
    mjd, images = _expected(path)
    np.testing.assert_array_equal(obj.images, images)
    shown = repr(card) if label == "SN" else repr(str(card))
    assert obj.faults == (ReadFault(None, None, f"N_IMAGES is {shown} but the file has 8 image HDUs"),)
    assert not obj.faults[0].drops


def test_one_image_of_the_wrong_shape_is_dropped(tmp_path):
    images = list(_tagged(5))
    images[2] = images[2][:32, :48]
    cols = [fits.Column("HDU_Ext", "K", array=np.arange(2, 7)), fits.Column("MJD", "D", array=53000.3 + np.arange(5.0))]
    obj = read_object(_write(tmp_path / "odd.fits", cols, images))
    assert list(obj.images[:, 0, 0]) == [100, 101, 103, 104]
    assert obj.faults == (ReadFault(4, 2, "image is 32x48, not 64x64"),)
    assert str(obj.faults[0]) == "HDU 4, row 2: image is 32x48, not 64x64" and obj.faults[0].drops


def test_images_with_non_finite_or_out_of_range_pixels_are_dropped(tmp_path):
    tagged = _tagged(5)
    images = [img for img in tagged]
    images[1] = tagged[1].astype(np.float32)
    images[1][5, 5] = np.nan
    images[2] = tagged[2].astype(np.float32)  # finite and in range: kept, as astropy reads it
    images[3] = tagged[3].astype(np.float32)
    images[3][0, 1] = -3.0
    cols = [fits.Column("HDU_Ext", "K", array=np.arange(2, 7)), fits.Column("MJD", "D", array=53000.3 + np.arange(5.0))]
    obj = read_object(_write(tmp_path / "nan.fits", cols, images))
    assert obj.images.dtype == np.uint16
    np.testing.assert_array_equal(obj.images, tagged[[0, 2, 4]])
    assert obj.faults == (
        ReadFault(3, 1, "image has non-finite or undefined pixels"),
        ReadFault(5, 3, "image has pixel values outside 0..65535"),
    )


def test_integer_image_with_blank_pixels_is_dropped(tmp_path):
    tagged = _tagged(3)
    images = [img for img in tagged]
    undefined = fits.ImageHDU(tagged[1].astype(np.int16))
    undefined.header["BLANK"] = -32768
    undefined.data[7, 7] = -32768
    cols = [fits.Column("HDU_Ext", "K", array=np.arange(2, 5)), fits.Column("MJD", "D", array=53000.3 + np.arange(3.0))]
    path = tmp_path / "blank.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols), fits.ImageHDU(images[0]), undefined, fits.ImageHDU(images[2])]
    ).writeto(path)
    with fits.open(path) as hdul:
        assert np.isnan(hdul[3].data[7, 7])  # astropy agrees the pixel is undefined
    obj = read_object(path)
    np.testing.assert_array_equal(obj.images, tagged[[0, 2]])
    assert obj.faults == (ReadFault(3, 1, "image has non-finite or undefined pixels"),)


def test_rows_whose_image_hdu_is_missing_are_dropped(tmp_path):
    path = write_release_file(tmp_path, n=8, drop_hdus=2)
    obj = read_object(path)
    with fits.open(path) as hdul:
        present = [int(e) for e in hdul[1].data["HDU_Ext"] if int(e) < len(hdul)]
        expected = sorted((float(hdul[1].data["MJD"][k]), k) for k in range(8) if int(hdul[1].data["HDU_Ext"][k]) in present)
        images = np.stack([hdul[int(hdul[1].data["HDU_Ext"][k])].data for _, k in expected])
    np.testing.assert_array_equal(obj.images, images)
    assert obj.faults == (
        ReadFault(None, None, "N_IMAGES is 8 but the file has 6 image HDUs"),
        ReadFault(8, 6, "no such HDU (the file's image HDUs are 2..7)"),
        ReadFault(9, 7, "no such HDU (the file's image HDUs are 2..7)"),
    )


def test_image_hdus_no_row_names_and_repeated_rows(tmp_path):
    images = _tagged(5)
    ext = np.array([2, 3, 3, 5])  # HDU 4 and 6 named by no row; row 2 repeats row 1
    cols = [fits.Column("HDU_Ext", "K", array=ext), fits.Column("MJD", "D", array=53000.3 + np.arange(4.0))]
    obj = read_object(_write(tmp_path / "extra.fits", cols, images))
    assert list(obj.images[:, 0, 0]) == [100, 101, 103]
    assert obj.faults == (
        ReadFault(4, None, "image HDU that no table row names"),
        ReadFault(6, None, "image HDU that no table row names"),
        ReadFault(3, 2, "HDU_Ext 3 repeats row 1"),
    )


def test_hdu_ext_in_a_format_the_reader_does_not_decode_is_refused(tmp_path):
    cols = [fits.Column("HDU_Ext", "PJ()", array=[[2]]), fits.Column("MJD", "D", array=[53000.5])]
    _fails(_write(tmp_path / "heap.fits", cols, _tagged(1)), "table column 'HDU_Ext' has a format the reader does not decode")


def test_rows_whose_hdu_ext_or_mjd_is_not_usable_are_dropped(tmp_path):
    cols = [
        fits.Column("HDU_Ext", "D", array=[2.0, 3.5, 4.0, 1e30, 6.0]),
        fits.Column("MJD", "D", array=[53000.5, 53001.5, np.nan, 53003.5, 53004.5]),
    ]
    obj = read_object(_write(tmp_path / "cells.fits", cols, _tagged(5)))
    assert list(obj.images[:, 0, 0]) == [100, 104]
    assert obj.faults == (
        ReadFault(3, None, "image HDU that no table row names"),
        ReadFault(5, None, "image HDU that no table row names"),
        ReadFault(None, 1, "HDU_Ext 3.5 is not an extension number"),
        ReadFault(4, 2, "MJD nan is not a number"),
        ReadFault(None, 3, "HDU_Ext 1e+30 is not an extension number"),
    )


def test_first_nights_keeps_the_exposures_of_the_first_k_usable_nights_in_time_order():
    from deeptao.io import first_nights

    rng = np.random.default_rng(0)
    images = rng.integers(1000, 2000, (9, 64, 64)).astype(np.uint16)
    images[0] = 1500  # blank: its night does not count
    images[5] = images[4]  # a second cutout of one exposure (the same MJD)
    mjd = np.array([50000.0, 50001.0, 50001.01, 50003.0, 50003.02, 50003.02, 50007.0, 50007.01, 50010.0])
    order = rng.permutation(9)  # given scrambled
    out_images, out_mjd = first_nights(images[order], mjd[order], 2)
    # night 50000 holds only the blank image, so the first two nights that count are 50001 and 50003
    np.testing.assert_array_equal(out_mjd, mjd[:6])
    np.testing.assert_array_equal(out_images, images[:6])
    every = first_nights(images, mjd, 10)
    np.testing.assert_array_equal(every[1], mjd)
    with pytest.raises(ValueError, match="at least one night"):
        first_nights(images, mjd, 0)


def test_a_header_value_of_the_wrong_kind_names_the_file(tmp_path):
    path = write_release_file(tmp_path, label="SN", n=3)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"TFIELDS =")
    assert at >= 0
    raw[at : at + 80] = b"TFIELDS = 'seven'".ljust(80)
    path.write_bytes(bytes(raw))
    with pytest.raises(TaoFormatError) as info:
        read_object(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_non_finite_mjd_handed_in_is_refused():
    from deeptao.io._exposures import order_exposures

    with pytest.raises(ValueError, match="1 of 3 MJDs are not finite"):
        order_exposures(np.zeros((3, 64, 64), np.uint16), np.array([1.0, np.nan, 2.0]))
