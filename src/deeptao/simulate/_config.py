"""Every physics and difficulty knob of the simulated survey, with its default.

One frozen dataclass is the single source of defaults: the command line builds
its flags from these fields (each carries a one-line ``help`` in its metadata),
and a run records the values it used. Only scalars appear here so that every
field maps onto one flag.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from deeptao._options import option

__all__ = ["SurveyConfig"]


def _knob(default: Any, help: str) -> Any:  # noqa: A002 - 'help' mirrors argparse
    return option(help, default=default)


@dataclass(frozen=True)
class SurveyConfig:
    """Physics and difficulty of a simulated CRTS/Deep-TAO survey.

    The defaults aim at a survey that looks like the release (cadence, sky,
    seeing, magnitudes) and that is hard for a light-curve classifier; the
    ``difficulty`` group is what a calibration run should move.
    """

    # --- priors ------------------------------------------------------------
    catalogue_path: str | None = _knob(
        None,
        "CRTS transient table (tab separated, columns 'Mag' and 'Classification') that "
        "gives discovery magnitudes per class; None searches ../shared/data/ from the "
        "working directory and the repository, else uses built-in quantiles; 'built-in' "
        "always uses the built-in quantiles (the same survey on every machine)",
    )

    # --- cadence -----------------------------------------------------------
    survey_start_mjd: float = _knob(53460.0, "first night of the survey (MJD; 2005 April)")
    survey_end_mjd: float = _knob(56660.0, "last night of the survey (MJD; 2013 December)")
    mean_images: float = _knob(77.0, "mean number of images per object")
    images_log_sigma: float = _knob(0.55, "log-normal width of the number of images per object")
    min_images: int = _knob(10, "fewest images per object")
    max_images: int = _knob(240, "most images per object (before duplicates)")
    exposures_per_night: int = _knob(4, "exposures in a visit to a field")
    exposure_spacing_min: float = _knob(10.0, "minutes between the exposures of a visit")
    partial_visit_fraction: float = _knob(0.12, "fraction of visits that lose some exposures")
    season_gap_deg: float = _knob(
        75.0, "a field is observable when its RA is this far from the Sun's (degrees)"
    )
    monsoon: bool = _knob(True, "no observing from early July to early September (Arizona)")
    moon_gap_days: float = _knob(3.0, "no observing within this many days of full moon")
    duplicate_rate: float = _knob(
        0.025, "fraction of exposures cut out twice from two neighbouring tiles"
    )
    second_set_fraction: float = _knob(
        0.2, "fraction of objects that also have a few images from another field"
    )

    # --- sky, optics and detector -----------------------------------------
    pixel_scale_arcsec: float = _knob(2.5, "arcseconds per pixel (CSS 0.7 m Schmidt)")
    sky_adu: float = _knob(2000.0, "median sky level per pixel (ADU)")
    sky_log_sigma: float = _knob(0.15, "night-to-night log-normal scatter of the sky level")
    gain: float = _knob(2.0, "electrons per ADU (sets the Poisson noise)")
    read_noise_adu: float = _knob(5.0, "read noise per pixel (ADU)")
    limiting_mag: float = _knob(
        19.7,
        "5-sigma point-source magnitude of one exposure at median seeing and sky "
        "(fixes the photometric zero point)",
    )
    seeing_fwhm_px: float = _knob(2.2, "median PSF FWHM (pixels)")
    seeing_log_sigma: float = _knob(0.1, "night-to-night log-normal scatter of the FWHM")
    psf_halo_fraction: float = _knob(0.1, "flux fraction in the wide PSF wing")
    astrometric_jitter_px: float = _knob(0.35, "rms offset of the cutout centre between exposures")
    cloudy_fraction: float = _knob(0.06, "fraction of nights with extinction by cloud")
    cloud_extinction_mag: float = _knob(
        0.3, "mean extinction of a cloudy night (mag; exponential, at most 2)"
    )
    centring_failure_fraction: float = _knob(
        0.01, "fraction of exposures whose cutout centre is off by a pixel or more "
        "(1.5 px rms per axis)"
    )
    saturation_adu: float = _knob(60000.0, "level at which pixels saturate (ADU)")
    cosmic_ray_rate: float = _knob(
        0.03, "mean cosmic-ray hits per cutout (~2 per cm2 per minute on 30 s exposures)"
    )
    blank_fraction: float = _knob(0.008, "fraction of exposures whose cutouts are blank (constant)")
    edge_fraction: float = _knob(0.005, "fraction of images clipped by a chip edge (zero band)")
    field_star_density: float = _knob(7.0, "mean number of field stars per cutout (12 to 21.5 mag)")
    galaxy_density: float = _knob(1.0, "mean number of background galaxies per cutout")

    # --- difficulty --------------------------------------------------------
    amplitude_scale: float = _knob(
        1.0, "multiplies intrinsic variability amplitudes (AGN, BZ, CV outbursts, variables)"
    )
    faint_fraction: float = _knob(
        0.25, "fraction of transients shifted fainter by faint_shift_mag"
    )
    faint_shift_mag: float = _knob(1.0, "how much fainter those objects are (mag)")
    ambiguous_fraction: float = _knob(
        0.25,
        "fraction of objects whose physical parameters come from the tails that overlap "
        "other classes (low-amplitude blazars, single-outburst CVs, slow SNe, ...)",
    )
    mislabel_fraction: float = _knob(
        0.1,
        "fraction of transients filed under a wrong class folder (catalogue errors: most "
        "CRTS classes come from light curves and hosts, not spectra)",
    )
    class_text_wrong_rate: float = _knob(
        0.04, "fraction of transients whose CLASS header text names another class"
    )
    class_text_uncertain_rate: float = _knob(
        0.2, "fraction of transients whose CLASS header text carries a '?'"
    )
    non_variable_fraction: float = _knob(
        0.05, "fraction of non-transients that are low-amplitude variables"
    )

    # --- mixture of the OTHER class (relative weights) ---------------------
    other_hpm: float = _knob(0.46, "weight of high-proper-motion stars in OTHER")
    other_flare: float = _knob(0.17, "weight of stellar flares in OTHER")
    other_unknown: float = _knob(0.19, "weight of unclassified brief brightenings in OTHER")
    other_variable: float = _knob(0.10, "weight of periodic and irregular variables in OTHER")
    other_moving: float = _knob(0.08, "weight of asteroids (moving within one night) in OTHER")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Reject values that cannot describe a survey, naming the field."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"SurveyConfig.{f.name} must be finite, got {value!r}")
        fractions = (
            "partial_visit_fraction", "duplicate_rate", "second_set_fraction", "cloudy_fraction",
            "blank_fraction", "edge_fraction", "faint_fraction", "ambiguous_fraction",
            "mislabel_fraction", "class_text_wrong_rate", "class_text_uncertain_rate",
            "non_variable_fraction", "psf_halo_fraction", "centring_failure_fraction",
        )
        for name in fractions:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SurveyConfig.{name} must be in [0, 1], got {value!r}")
        positive = (
            "mean_images", "exposure_spacing_min", "pixel_scale_arcsec", "sky_adu", "gain",
            "seeing_fwhm_px", "saturation_adu", "amplitude_scale",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"SurveyConfig.{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = (
            "images_log_sigma", "sky_log_sigma", "read_noise_adu", "seeing_log_sigma",
            "astrometric_jitter_px", "cosmic_ray_rate", "field_star_density", "galaxy_density",
            "faint_shift_mag", "moon_gap_days", "cloud_extinction_mag", "other_hpm",
            "other_flare", "other_unknown", "other_variable", "other_moving",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"SurveyConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 1 <= self.min_images <= self.max_images:
            raise ValueError(
                f"SurveyConfig needs 1 <= min_images <= max_images, got "
                f"{self.min_images} and {self.max_images}"
            )
        if not 1 <= self.exposures_per_night <= 9:
            raise ValueError(
                f"SurveyConfig.exposures_per_night must be 1..9, got {self.exposures_per_night}"
            )
        if self.survey_end_mjd - self.survey_start_mjd < 365.0:
            raise ValueError("SurveyConfig survey must last at least a year (survey_end_mjd)")
        if not 0.0 <= self.season_gap_deg < 170.0:
            raise ValueError(
                f"SurveyConfig.season_gap_deg must be in [0, 170), got {self.season_gap_deg!r}"
            )
        weights = (self.other_hpm, self.other_flare, self.other_unknown, self.other_variable,
                   self.other_moving)
        if sum(weights) <= 0:
            raise ValueError("SurveyConfig OTHER mixture weights (other_*) must not all be zero")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for provenance files."""
        return dataclasses.asdict(self)
