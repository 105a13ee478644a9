"""Discovery magnitudes per class, and the survey's free-text classification.

The simulated objects are discovered at the magnitudes real CRTS transients
were discovered at: the published transient table is read at run time, its
free-text classification mapped to our classes, and each class (and each kind
of OTHER) reduced to a quantile table sampled by inverse CDF. Without the
table the same kind of quantiles, computed once from it, are used.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "MagnitudePriors",
    "catalogue_key",
    "class_text",
    "find_catalogue",
    "load_priors",
    "OTHER_KINDS",
]

#: kinds of event filed under OTHER, in the order of the SurveyConfig weights
OTHER_KINDS = ("hpm", "flare", "unknown", "variable", "moving")

_QUANTILES = np.linspace(0.0, 1.0, 11)

# Deciles (0 %, 10 %, ..., 100 %) of the discovery magnitude per key, from the
# 5,539 rows of the CRTS transient table published with the MANTRA data set.
_BUILTIN_DECILES: dict[str, tuple[float, ...]] = {
    "SN": (12.77, 17.16, 17.86, 18.26, 18.54, 18.77, 18.95, 19.21, 19.48, 19.79, 20.72),
    "AGN": (16.78, 18.34, 18.80, 18.97, 19.18, 19.36, 19.53, 19.66, 19.80, 19.96, 20.66),
    "BZ": (14.18, 16.24, 16.86, 17.28, 17.61, 17.90, 18.27, 18.60, 18.86, 19.20, 20.38),
    "CV": (12.52, 14.73, 15.59, 16.14, 16.66, 17.01, 17.41, 17.76, 18.22, 18.73, 20.32),
    "OTHER:hpm": (12.01, 12.79, 13.16, 13.66, 14.07, 14.41, 15.15, 15.90, 16.69, 18.02, 20.12),
    "OTHER:flare": (13.66, 16.32, 17.16, 17.58, 17.95, 18.21, 18.44, 18.81, 19.02, 19.55, 20.24),
    "OTHER:unknown": (12.61, 17.11, 17.76, 18.45, 18.80, 19.00, 19.45, 19.66, 19.80, 20.03,
                      20.59),
    "OTHER:variable": (12.14, 12.83, 13.64, 14.75, 16.44, 17.55, 18.20, 18.86, 19.33, 19.76,
                       20.37),
    "OTHER:moving": (15.31, 18.33, 18.87, 19.15, 19.36, 19.45, 19.62, 19.70, 19.90, 20.16, 20.58),
}

_CATALOGUE_NAME = "crts_transient_info.tsv"
_CLASS_OF_TOKEN = {"SN": "SN", "AGN": "AGN", "QSO": "AGN", "BLAZAR": "BZ", "CV": "CV"}
_KIND_OF_TOKEN = {
    "HPM": "hpm",
    "FLARE": "flare",
    "AST": "moving",
    "COMET": "moving",
    **{t: "variable" for t in ("VAR", "VARIABLE", "MIRA", "LPV", "YSO", "RRL", "CARBON", "CARB")},
}


def catalogue_key(classification: object) -> str:
    """Map the survey's free-text class to 'SN', 'AGN', 'BZ', 'CV' or 'OTHER:<kind>'.

    The survey writes the leading guess first ('SN/AGN?', 'Blazar CRATES_J...'),
    so the first word, up to a slash and without '?', decides.
    """
    text = str(classification).strip() if classification is not None else ""
    token = text.split()[0] if text else ""
    token = token.split("/")[0].rstrip("?").upper()
    if token in _CLASS_OF_TOKEN:
        return _CLASS_OF_TOKEN[token]
    return "OTHER:" + _KIND_OF_TOKEN.get(token, "unknown")


def find_catalogue(configured: str | None) -> Path | None:
    """The catalogue to read: the configured one (which must exist) or one found nearby."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: catalogue_path does not exist")
        return path
    repo = Path(__file__).resolve().parents[3]
    for base in (Path.cwd(), repo):
        for rel in (Path("..") / "shared" / "data", Path("shared") / "data"):
            candidate = base / rel / _CATALOGUE_NAME
            if candidate.is_file():
                return candidate.resolve()
    return None


@dataclass(frozen=True)
class MagnitudePriors:
    """Quantile tables of the discovery magnitude, one per catalogue key."""

    quantiles: Mapping[str, np.ndarray]
    source: str  # the catalogue path, or "built-in"

    def sample(self, key: str, rng: np.random.Generator) -> float:
        """One discovery magnitude for ``key`` by inverse-CDF interpolation."""
        table = self.quantiles[key]
        return float(np.interp(rng.random(), _QUANTILES, table))


BUILTIN = "built-in"


def load_priors(configured: str | None) -> MagnitudePriors:
    """Read the catalogue when there is one; otherwise (or when asked: ``"built-in"``) the built-in deciles."""
    path = None if configured == BUILTIN else find_catalogue(configured)
    if path is None:
        return MagnitudePriors(
            {k: np.asarray(v, dtype=float) for k, v in _BUILTIN_DECILES.items()}, BUILTIN
        )
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t", usecols=["Mag", "Classification"])
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise ValueError(
            f"{path}: cannot read 'Mag' and 'Classification' columns ({err})"
        ) from None
    mags = pd.to_numeric(table["Mag"], errors="coerce").to_numpy(dtype=float)
    keys = table["Classification"].map(catalogue_key).to_numpy()
    ok = np.isfinite(mags) & (mags > 5.0) & (mags < 25.0)
    quantiles: dict[str, np.ndarray] = {}
    for key, builtin in _BUILTIN_DECILES.items():
        values = mags[ok & (keys == key)]
        if values.size >= 10:
            quantiles[key] = np.quantile(values, _QUANTILES)
        else:
            warnings.warn(
                f"{path}: only {values.size} usable rows for {key}; using built-in magnitudes",
                stacklevel=2,
            )
            quantiles[key] = np.asarray(builtin, dtype=float)
    return MagnitudePriors(quantiles, str(path))


# --- the CLASS card ---------------------------------------------------------

def _mag_text(rng: np.random.Generator, lo: float, hi: float) -> str:
    # The survey writes decimals with a comma ('SDSS mag 20,5').
    return f"{rng.uniform(lo, hi):.1f}".replace(".", ",")


def _sn_designation(rng: np.random.Generator, year: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return f"{year}{letters[rng.integers(26)]}{letters[rng.integers(26)]}"


def _text_for(label: str, kind: str | None, rng: np.random.Generator, year: int,
              ra: float, dec: float) -> str:
    """A plausible classification note for an object of ``label``."""
    pick = rng.integers
    if label == "SN":
        options = [
            "SN", f"SN SDSS mag {_mag_text(rng, 18.5, 21.5)}", "SN SDSS mag >22",
            f"SN {_sn_designation(rng, year)} (CRTS)", f"SN PQ {_mag_text(rng, 19, 21)} mag gal",
            "SN/AGN", "SN/CV",
        ]
    elif label == "AGN":
        options = [
            "AGN", f"AGN SDSS {_mag_text(rng, 18.5, 22.5)} mag Galaxy",
            f"AGN SDSS QSO z={rng.uniform(0.1, 2.5):.2f}", "AGN/SN", "QSO",
        ]
    elif label == "BZ":
        hours, minutes = int(ra / 15), int((ra / 15 % 1) * 60)
        crates = f"CRATES_J{hours:02d}{minutes:02d}{dec:+03.0f}{pick(100):02d}"
        options = ["Blazar", f"Blazar {crates}", f"Blazar SDSS mag {_mag_text(rng, 17, 20)}",
                   "Blazar/AGN"]
    elif label == "CV":
        options = [
            "CV", f"CV SDSS mag {_mag_text(rng, 18.5, 22)}", f"CV PQ {pick(19, 22)} mag star",
            f"CV mag {_mag_text(rng, 18.5, 22)}", "CV/SN",
        ]
    else:
        options = {
            "hpm": [f"HPM LHS_{pick(100, 5000)}", "HPM", f"HPM NLTT_{pick(1000, 58000)}"],
            "flare": ["Flare", f"Flare SDSS mag {_mag_text(rng, 18, 22)} star", "Flare M star"],
            "unknown": ["Unknown", "unknown", "Nova?", "SN/CV?", "Var/SN?"],
            "variable": ["Var", "Mira", "LPV", "YSO", "RRL", "Var SDSS star"],
            "moving": ["Ast?", "Ast", "Comet"],
        }[kind or "unknown"]
    # The bare class is the commonest note; the rest are variations on it.
    return str(options[0] if rng.random() < 0.4 else options[pick(len(options))])


def class_text(label: str, kind: str | None, rng: np.random.Generator, *, year: int,
               ra: float, dec: float, wrong_rate: float, uncertain_rate: float) -> str:
    """The CLASS card: free text like the survey's, sometimes uncertain or wrong.

    It names the answer most of the time, which is why no model may read it.
    """
    wrong = rng.random() < wrong_rate
    if wrong:
        others = [c for c in ("SN", "AGN", "BZ", "CV", "OTHER") if c != label]
        label = others[rng.integers(len(others))]
        kind = OTHER_KINDS[rng.integers(len(OTHER_KINDS))] if label == "OTHER" else None
    text = _text_for(label, kind, rng, year, ra, dec)
    if (wrong or rng.random() < uncertain_rate) and "?" not in text:
        head, _, tail = text.partition(" ")
        text = f"{head}? {tail}".strip()
    return text[:68]
