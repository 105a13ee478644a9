"""A simulated CRTS survey written in the Deep-TAO release format.

The release itself cannot be downloaded here, so the pipeline is proven on a
survey simulated from physics (cadence, sky, seeing, light curves of each
class) and written byte for byte in the release's layout. Nothing in this
package is shared with :mod:`deeptao.io`: the reader must understand these
files the way it understands the real ones.
"""

from __future__ import annotations

from ._config import SurveyConfig
from ._survey import SurveySummary, release_like_counts, simulate_survey

__all__ = ["SurveyConfig", "SurveySummary", "release_like_counts", "simulate_survey"]
