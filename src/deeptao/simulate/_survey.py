"""Plan a whole survey, then render and write its objects (in parallel if asked).

Planning (positions, cadence, light curves, field contents, names) runs in the
calling process, each object from its own seed derived from the survey seed
and the object's place (class, index); rendering draws from another derived
seed. So the bytes of every file depend on the seed alone, never on the number
of workers or the order in which they finish.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeptao import CLASSES, RELEASE_CLASS_COUNTS, TRANSIENT_CLASSES
from deeptao.io import blank_images

from ._cadence import Exposures, date_code, field_exposures, tile_of, ut_date_float, ymd, zero_point
from ._config import SurveyConfig
from ._physics import (
    Galaxy,
    PointSource,
    field_sources,
    non_transient_mag,
    non_transient_scene,
    transient_scene,
)
from ._priors import OTHER_KINDS, MagnitudePriors, class_text, load_priors
from ._render import render
from ._writer import NON_TRANSIENT_TABLE_DTYPE, TRANSIENT_TABLE_DTYPE, write_object

__all__ = ["simulate_survey", "SurveySummary"]

TRANSIENT_ROOT = Path("TAO_transients") / "data"
NON_TRANSIENT_ROOT = Path("TAO_non-transients") / "data" / "NON"
_NON_KEY = len(TRANSIENT_CLASSES)  # seed slot of the non-transients
_RENDER = 7  # last element of a spawn key that seeds rendering


@dataclass
class _Plan:
    """Everything about one object except its pixels."""

    label: str  # folder (the ground-truth label a reader sees)
    physical: str  # class whose physics made the pixels (differs only when mislabelled)
    kind: str
    variant: str  # "transient" | "non-transient"
    stem: str
    crts_id: str | None  # the transient's own CRTS ID; None for a non-transient, which has none
    parent_id: str | None  # a non-transient's CRTS_ID card: the transient it was cut beside
    group: str
    ra: float
    dec: float
    header: dict[str, Any]
    exposures: Exposures  # one row per image, in time order
    cutout: np.ndarray  # per image, 'RRCC'
    duplicate: np.ndarray  # per image: second cutout of an exposure
    offset: np.ndarray  # (n, 2) where the object sits relative to the cutout centre
    points: list[PointSource]
    galaxies: list[Galaxy]
    key: tuple[int, ...]
    m_disc: float
    t_disc: float
    faint: bool
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def relpath(self) -> Path:
        if self.variant == "non-transient":
            return NON_TRANSIENT_ROOT / f"{self.stem}.fits"
        return TRANSIENT_ROOT / self.label / f"{self.stem}.fits"


@dataclass
class SurveySummary:
    """What a simulation wrote, with the truth behind each object."""

    out: Path
    seed: int
    config: SurveyConfig
    priors: str  # catalogue path the magnitudes came from, or "built-in"
    objects: pd.DataFrame  # one row per file
    seconds: float

    @property
    def n_objects(self) -> int:
        return int(len(self.objects))

    @property
    def n_images(self) -> int:
        return int(self.objects["n_images"].sum())

    @property
    def counts(self) -> dict[str, int]:
        return {c: int((self.objects["label"] == c).sum()) for c in CLASSES}


# --- names -----------------------------------------------------------------

def _sexagesimal(ra: float, dec: float) -> str:
    """'100029+071116': RA as hhmmss and Dec as ddmmss, as in CRTS IDs."""
    ra_s = int(round(ra / 15.0 * 3600.0)) % 86400
    sign = "-" if dec < 0 else "+"
    dec_s = min(int(round(abs(dec) * 3600.0)), 90 * 3600 - 1)
    return (f"{ra_s // 3600:02d}{ra_s // 60 % 60:02d}{ra_s % 60:02d}"
            f"{sign}{dec_s // 3600:02d}{dec_s // 60 % 60:02d}{dec_s % 60:02d}")


def _crts_id(t_disc: float, ra: float, dec: float) -> str:
    y, m, d = ymd(t_disc)
    return f"CSS{y % 100:02d}{m:02d}{d:02d}:{_sexagesimal(ra, dec)}"


def _non_name(ra: float, dec: float) -> str:
    """'nonCSS:150.12+7.1899': six significant digits, signed Dec."""
    return f"nonCSS:{ra:g}{dec:+g}"


# --- planning ----------------------------------------------------------------

def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _images_of(field: Exposures, keep: np.ndarray, rng: np.random.Generator,
               cfg: SurveyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Exposure index per image (some exposures twice) and the duplicate flags."""
    base = np.flatnonzero(keep)
    twice = base[rng.random(base.size) < cfg.duplicate_rate]
    index = np.sort(np.concatenate([base, twice]), kind="stable")
    duplicate = np.zeros(index.size, dtype=bool)
    duplicate[1:] = index[1:] == index[:-1]
    return index, duplicate


def _cutouts(ccd_xy: np.ndarray, duplicate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tiles = tile_of(ccd_xy)
    for i in np.flatnonzero(duplicate):  # the neighbouring tile along one axis
        axis = int(rng.integers(2))
        step = 1 if tiles[i, axis] < 32 else -1
        tiles[i, axis] += step
    return np.array([f"{r:02d}{c:02d}" for r, c in tiles], dtype=object)


def _place(n: int, duplicate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    offset = np.tile(rng.uniform(-0.5, 0.5, 2), (n, 1))
    offset[duplicate] += rng.normal(0.0, 1.5, size=(int(duplicate.sum()), 2))
    return offset


def _plan_transient(label: str, index: int, attempt: int, seed: int, cfg: SurveyConfig,
                    priors: MagnitudePriors, zp0: float) -> tuple[_Plan, Exposures]:
    class_index = TRANSIENT_CLASSES.index(label)
    rng = _rng(seed, class_index, index, attempt)
    physical = label
    if rng.random() < cfg.mislabel_fraction:
        others = [c for c in TRANSIENT_CLASSES if c != label]
        physical = others[int(rng.integers(len(others)))]
    kind = ""
    if physical == "OTHER":
        weights = np.array([cfg.other_hpm, cfg.other_flare, cfg.other_unknown,
                            cfg.other_variable, cfg.other_moving], dtype=float)
        kind = OTHER_KINDS[int(rng.choice(len(OTHER_KINDS), p=weights / weights.sum()))]
    m_disc = priors.sample(f"OTHER:{kind}" if kind else physical, rng)
    faint = bool(rng.random() < cfg.faint_fraction)
    if faint:
        m_disc += cfg.faint_shift_mag
    m_disc = float(min(m_disc, 21.5))
    ambiguous = bool(rng.random() < cfg.ambiguous_fraction)

    ra = float(rng.uniform(0.0, 360.0))
    dec = float(np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-30.0)),
                                                 np.sin(np.radians(70.0))))))
    t_centre = rng.uniform(cfg.survey_start_mjd + 300.0, cfg.survey_end_mjd - 100.0)
    full = field_exposures(rng, ra, dec, cfg, t_centre=t_centre, zp0=zp0)
    index_, duplicate = _images_of(full, np.ones(len(full), dtype=bool), rng, cfg)
    exposures = full.take(index_)
    scene = transient_scene(physical, kind or None, exposures.mjd, m_disc, rng, cfg,
                            ambiguous=ambiguous)
    stars, galaxies = field_sources(rng, len(exposures), cfg)
    crts_id = _crts_id(scene.t_disc, ra, dec)

    year, month, day = ymd(scene.t_disc)
    lc = int(rng.integers(1000, 30000))
    css_images = int(f"{year % 100:02d}{month:02d}{day:02d}{rng.integers(1000):03d}"
                     f"{rng.integers(10000):04d}1{lc:05d}")
    header: dict[str, Any] = {
        "CRTS_ID": crts_id,
        "RA_(J2000)": round(ra, 5),
        "Dec_(J2000)": round(dec, 5),
        "N_Images": len(exposures),
        "UT_Date": ut_date_float(scene.t_disc),
        "Mag": round(m_disc, 2),
        "CSS_Images": css_images,
        "SDSS": "yes" if (dec > -12 and rng.random() < 0.8) else "no",
        "Others": lc,
        "Followed": "yes" if rng.random() < 0.3 else "no",
        "Last": f"2016-{int(rng.integers(4, 12)):02d}-{int(rng.integers(1, 29)):02d}",
        "LC": lc,
        "FC": "yes" if rng.random() < 0.6 else "no",
        # The catalogue's claim, which is where the folder came from.
        "Class": class_text(label, (kind or None) if label == physical else None, rng,
                            year=year, ra=ra, dec=dec,
                            wrong_rate=cfg.class_text_wrong_rate,
                            uncertain_rate=cfg.class_text_uncertain_rate),
    }
    plan = _Plan(
        label=label, physical=physical, kind=scene.kind, variant="transient", stem=crts_id,
        crts_id=crts_id, parent_id=None, group=crts_id, ra=ra, dec=dec, header=header, exposures=exposures,
        cutout=_cutouts(exposures.ccd_xy, duplicate, rng), duplicate=duplicate,
        offset=_place(len(exposures), duplicate, rng),
        points=scene.points + stars, galaxies=scene.galaxies + galaxies,
        key=(class_index, index, attempt), m_disc=m_disc, t_disc=scene.t_disc, faint=faint,
        truth=scene.truth,
    )
    return plan, full


def _plan_non(index: int, attempt: int, seed: int, parents: list[tuple[_Plan, Exposures]],
              cfg: SurveyConfig) -> _Plan:
    rng = _rng(seed, _NON_KEY, index, attempt)
    parent, full = parents[int(rng.integers(len(parents)))]
    # A source a few arcminutes from the transient, on the same exposures.
    dist = rng.uniform(55.0, 110.0)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    dx, dy = dist * np.cos(angle), dist * np.sin(angle)
    scale = cfg.pixel_scale_arcsec / 3600.0
    dec = float(np.clip(parent.dec + dy * scale, -89.9, 89.9))
    ra = float((parent.ra + dx * scale / np.cos(np.radians(parent.dec))) % 360.0)
    ra, dec = float(f"{ra:g}"), float(f"{dec:g}")  # the name is the position

    main = full.set_number == 1
    keep = main & (rng.random(len(full)) >= rng.uniform(0.0, 0.1))
    if keep.sum() < min(cfg.min_images, main.sum()):
        keep = main
    index_, duplicate = _images_of(full, keep, rng, cfg)
    exposures = full.take(index_)
    # Star counts already run to the survey limit; no extra faint shift (that
    # knob models transients discovered near the limit).
    mag = non_transient_mag(rng)
    faint = False
    scene = non_transient_scene(exposures.mjd, mag, rng, cfg)
    stars, galaxies = field_sources(rng, len(exposures), cfg)
    ccd = exposures.ccd_xy + np.array([dx, dy])
    ref = int(np.argmin(exposures.fwhm))
    header: dict[str, Any] = {
        "CRTS_ID": parent.crts_id,
        "N_Images": str(len(exposures)),
        "RA_(J2000)": f"{ra:.6f}",
        "Dec_(J2000)": f"{dec:.6f}",
        "Img_Ref": (f"{exposures.set_number[ref]:02d}_{date_code(exposures.mjd[ref])}_"
                    f"{exposures.field_id[ref]}_{exposures.obs_in_seq[ref]:04d}"),
    }
    stem = _non_name(ra, dec)
    return _Plan(
        label="NON", physical="NON", kind=scene.kind, variant="non-transient", stem=stem,
        crts_id=None, parent_id=parent.crts_id, group=parent.crts_id, ra=ra, dec=dec, header=header,
        exposures=exposures, cutout=_cutouts(ccd, duplicate, rng), duplicate=duplicate,
        offset=_place(len(exposures), duplicate, rng),
        points=scene.points + stars, galaxies=scene.galaxies + galaxies,
        key=(_NON_KEY, index, attempt), m_disc=mag, t_disc=float("nan"), faint=faint,
        truth=scene.truth | {"parent_offset_px": [float(dx), float(dy)]},
    )


# --- the table -----------------------------------------------------------------

def _table(plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """The HDU-1 table and the image order it implies.

    The release lists a file's cutouts sorted by their file names
    (set, date string, field, exposure, tile), so rows follow the date
    *string*: 05APR06 before 05FEB02. Images are stored in the same order.
    """
    e = plan.exposures
    dates = [date_code(m) for m in e.mjd]
    keys = [(f"{s:02d}", d, f, f"{o:04d}", c)
            for s, d, f, o, c in zip(e.set_number, dates, e.field_id, e.obs_in_seq, plan.cutout, strict=True)]
    order = np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)
    n = order.size
    if plan.variant == "transient":
        table = np.zeros(n, dtype=TRANSIENT_TABLE_DTYPE)
        table["HDU_Ext"] = np.arange(2, n + 2)
        table["Set_Number"] = [keys[i][0] for i in order]
        table["Date"] = [keys[i][1] for i in order]
        table["MJD"] = e.mjd[order]
        table["Field_ID"] = [keys[i][2] for i in order]
        table["Obs_In_Seq"] = [keys[i][3] for i in order]
        table["Cutout"] = [keys[i][4] for i in order]
    else:
        table = np.zeros(n, dtype=NON_TRANSIENT_TABLE_DTYPE)
        table["HDU_Ext"] = [str(k) for k in range(2, n + 2)]
        table["MJD"] = [str(float(e.mjd[i]))[:11] for i in order]
        table["DATE"] = [keys[i][1] for i in order]
        table["Field_ID"] = [keys[i][2] for i in order]
        table["Cutout"] = [keys[i][4] for i in order]
    return table, order


def _build(plan: _Plan, seed: int, cfg: SurveyConfig, out: Path) -> dict[str, Any]:
    """Render and write one object; return its summary row."""
    rng = _rng(seed, *plan.key, _RENDER)
    e = plan.exposures
    images = render(plan.points, plan.galaxies, zp=e.zp, fwhm=e.fwhm, sky=e.sky,
                    shift=e.shift + plan.offset, bad=e.bad, rng=rng, cfg=cfg)
    table, order = _table(plan)
    path = out / plan.relpath
    write_object(path, table, images[order], plan.header,
                 repeat_header=plan.variant == "transient")
    n_blank = int(blank_images(images).sum())  # as the reader will flag them, edge bands and all
    return {
        "path": str(plan.relpath), "label": plan.label, "physical_class": plan.physical,
        "kind": plan.kind, "variant": plan.variant, "crts_id": plan.crts_id,
        "parent_id": plan.parent_id, "group": plan.group, "n_images": int(images.shape[0]),
        "n_duplicates": int(plan.duplicate.sum()), "n_blank": n_blank,
        "ra": plan.ra, "dec": plan.dec, "m_disc": plan.m_disc, "t_disc": plan.t_disc,
        "mjd_first": float(e.mjd.min()), "mjd_last": float(e.mjd.max()),
        "faint": plan.faint, "ambiguous": bool(plan.truth.get("ambiguous", False)),
        "truth": json.dumps(plan.truth, default=float, sort_keys=True),
    }


def _build_many(args: tuple[list[_Plan], int, SurveyConfig, Path]) -> list[dict[str, Any]]:
    plans, seed, cfg, out = args
    return [_build(p, seed, cfg, out) for p in plans]


# --- the entry point -----------------------------------------------------------

def _prepare_out(out: Path, overwrite: bool) -> None:
    folders = [out / TRANSIENT_ROOT / c for c in TRANSIENT_CLASSES] + [out / NON_TRANSIENT_ROOT]
    existing = [p for d in folders if d.is_dir() for p in d.glob("*.fits")]
    if existing and not overwrite:
        raise FileExistsError(
            f"{out}: already holds {len(existing)} simulated files (e.g. {existing[0].name}); "
            "pass overwrite=True or choose another folder"
        )
    for p in existing:
        p.unlink()
    for d in folders:
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob(".*.part"):
            stale.unlink()


def simulate_survey(
    out: str | os.PathLike[str],
    *,
    objects_per_class: int = 100,
    seed: int = 0,
    non_per_class: int | None = None,
    config: SurveyConfig | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    class_counts: Mapping[str, int] | None = None,
) -> SurveySummary:
    """Write a simulated survey in the Deep-TAO release layout.

    Parameters
    ----------
    out : path
        Folder that receives ``TAO_transients/data/{AGN,BZ,CV,SN,OTHER}/`` and
        ``TAO_non-transients/data/NON/``, plus ``simulation.json`` (settings)
        and ``simulation_truth.csv`` (what each object really is).
    objects_per_class : int, default=100
        Transients per class (SN, AGN, BZ, CV, OTHER).
    seed : int, default=0
        The files depend on this alone (not on ``workers``).
    non_per_class : int, optional
        Number of non-transients; defaults to ``objects_per_class``. Each is
        cut out beside a randomly chosen simulated transient (its group).
    config : SurveyConfig, optional
        Physics and difficulty knobs; defaults to ``SurveyConfig()``.
    workers : int, default=1
        Processes that render and write.
    progress : callable, optional
        Called as ``progress(done, total)`` as objects are written.
    overwrite : bool, default=False
        Replace the ``*.fits`` a previous simulation left in ``out``.
    class_counts : mapping, optional
        Objects of each class (the six labels, NON included), instead of
        ``objects_per_class`` and ``non_per_class``: e.g. the release's
        imbalance, :func:`release_like_counts`. Object ``i`` of a class is the
        same object whatever the other counts, so a smaller survey is a subset
        of a larger one with the same seed.

    Returns
    -------
    SurveySummary

    Raises
    ------
    FileExistsError
        If ``out`` already holds simulated files and ``overwrite`` is false.
    """
    for name, value in (("objects_per_class", objects_per_class), ("workers", workers),
                        ("seed", seed)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if class_counts is not None:
        unknown = sorted(set(class_counts) - set(TRANSIENT_CLASSES) - {"NON"})
        if unknown or set(class_counts) != set(TRANSIENT_CLASSES) | {"NON"}:
            raise ValueError(f"class_counts needs exactly the classes {list(TRANSIENT_CLASSES) + ['NON']}, got {sorted(class_counts)}")
        bad = {k: v for k, v in class_counts.items() if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0}
        if bad or not any(class_counts[c] for c in TRANSIENT_CLASSES):
            raise ValueError(f"class_counts must be ints >= 0 with at least one transient, got {dict(class_counts)}")
    counts = (
        {c: int(class_counts[c]) for c in TRANSIENT_CLASSES}
        if class_counts is not None
        else dict.fromkeys(TRANSIENT_CLASSES, objects_per_class)
    )
    n_non = objects_per_class if non_per_class is None else non_per_class
    if class_counts is not None:
        n_non = int(class_counts["NON"])
    if not isinstance(n_non, (int, np.integer)) or isinstance(n_non, bool):
        raise TypeError(f"non_per_class must be an int or None, got {type(n_non).__name__}")
    if objects_per_class < 1 and class_counts is None:
        raise ValueError(f"objects_per_class must be >= 1, got {objects_per_class}")
    if n_non < 0 or workers < 1 or seed < 0:
        raise ValueError(f"need non_per_class >= 0, workers >= 1 and seed >= 0, got "
                         f"{n_non}, {workers}, {seed}")
    if config is not None and not isinstance(config, SurveyConfig):
        raise TypeError(f"config must be a SurveyConfig, got {type(config).__name__}")
    cfg = config or SurveyConfig()
    start = time.perf_counter()
    out = Path(out)
    _prepare_out(out, overwrite)
    priors = load_priors(cfg.catalogue_path)
    zp0 = zero_point(cfg)

    plans: list[_Plan] = []
    parents: list[tuple[_Plan, Exposures]] = []
    taken: set[str] = set()
    for label in TRANSIENT_CLASSES:
        for i in range(counts[label]):
            for attempt in range(100):
                plan, full = _plan_transient(label, i, attempt, seed, cfg, priors, zp0)
                if plan.stem not in taken:
                    break
            taken.add(plan.stem)
            plans.append(plan)
            parents.append((plan, full))
    for j in range(n_non):
        for attempt in range(100):
            plan = _plan_non(j, attempt, seed, parents, cfg)
            if plan.stem not in taken:
                break
        taken.add(plan.stem)
        plans.append(plan)
    del parents

    total = len(plans)
    rows: list[dict[str, Any]] = []
    if workers == 1:
        for plan in plans:
            rows.append(_build(plan, seed, cfg, out))
            if progress is not None:
                progress(len(rows), total)
    else:
        size = max(1, min(16, total // (4 * workers) or 1))
        chunks = [plans[k:k + size] for k in range(0, total, size)]
        # A fresh server process forks the workers: safe even when the caller
        # holds threads (torch, BLAS), unlike a plain fork of the caller.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for result in pool.map(_build_many, [(c, seed, cfg, out) for c in chunks]):
                rows.extend(result)
                if progress is not None:
                    progress(len(rows), total)

    objects = pd.DataFrame(rows)
    objects.to_csv(out / "simulation_truth.csv", index=False)
    meta = {"seed": int(seed), "objects_per_class": counts,
            "non_per_class": int(n_non), "priors": priors.source, "config": cfg.to_dict(),
            "zero_point": zp0}
    (out / "simulation.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return SurveySummary(out=out, seed=int(seed), config=cfg, priors=priors.source,
                         objects=objects, seconds=time.perf_counter() - start)


def release_like_counts(fraction: float = 1.0) -> dict[str, int]:
    """The release's objects per class (:data:`deeptao.RELEASE_CLASS_COUNTS`) scaled by ``fraction``.

    Each class keeps at least one object, so the imbalance (NON 52 to 1 over
    BZ) survives at any size; rounding is to the nearest object.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return {c: max(1, int(round(n * fraction))) for c, n in RELEASE_CLASS_COUNTS.items()}
