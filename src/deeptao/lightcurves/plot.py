"""The light curve of one object as a figure: nightly asinh magnitudes against MJD.

Built on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no
``pyplot``), so nothing global changes and nothing leaks in long runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deeptao.lightcurves.photometry import PhotometrySettings, asinh_magnitude

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.io import TaoObject

__all__ = ["plot_lightcurve", "lightcurve_figure"]

_DPI = 110


def plot_lightcurve(
    nights: pd.DataFrame,
    title: str,
    out_png: str | Path,
    *,
    epochs: pd.DataFrame | None = None,
) -> Path:
    """Save the nightly light curve (magnitude down = brighter up) to ``out_png``.

    Parameters
    ----------
    nights : pandas.DataFrame
        Output of :func:`~deeptao.lightcurves.nightly_bin`.
    title : str
    out_png : path
    epochs : pandas.DataFrame, optional
        Output of :func:`~deeptao.lightcurves.photometry`; its good exposures are
        drawn faintly behind the nights, on the same magnitude scale.
    """
    fig = Figure(figsize=(8.0, 3.6), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    zp, soft = nights.attrs.get("zero_point"), nights.attrs.get("softening")
    if epochs is not None and zp is not None and soft is not None and len(nights):
        good = epochs[epochs["good"].to_numpy(dtype=bool)]
        mag, _ = asinh_magnitude(good["flux"].to_numpy(), good["flux_err"].to_numpy(), zp, soft)
        ax.plot(good["mjd"], mag, ".", color="0.7", ms=3, label="exposures", zorder=1)
    if len(nights):
        ax.errorbar(
            nights["mjd"], nights["amag"], yerr=nights["amag_err"], fmt="o", ms=3.5, color="C0",
            ecolor="C0", elinewidth=0.8, capsize=0, label="nights", zorder=2,
        )  # fmt: skip
        if soft is not None and zp is not None:
            noise_mag = zp - 2.5 * np.log10(soft)
            ax.axhline(noise_mag, color="0.5", lw=0.8, ls=":", label="noise level (1 sigma)")
        ax.legend(loc="best", fontsize="small", frameon=False)
    else:
        ax.text(0.5, 0.5, "no measurable exposure", transform=ax.transAxes, ha="center", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("MJD")
    ax.set_ylabel("asinh magnitude (instrumental)")
    ax.set_title(title)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=_DPI)
    fig.clear()
    return out_png


def lightcurve_figure(obj: TaoObject, out_png: str | Path, *, settings: PhotometrySettings | None = None) -> Path:
    """Measure one file's object and save its light curve (``deeptao lightcurve FILE.fits``)."""
    from deeptao.lightcurves.store import object_lightcurve

    duplicate = obj.table["duplicate"].to_numpy(dtype=bool) if "duplicate" in obj.table else None
    epochs, nights = object_lightcurve(obj.images, obj.mjd, obj.blank, duplicate, settings)
    label = f" ({obj.label})" if obj.label else ""
    title = f"{obj.object_id}{label}: {len(nights)} nights, {int(epochs['good'].sum())} of {len(epochs)} exposures"
    return plot_lightcurve(nights, title, out_png, epochs=epochs)
