"""A tiny simulated survey in the release's layout, prepared: what the model and command tests train on."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def simulated_cache(root: Path, *, objects_per_class: int, seed: int) -> Any:
    """Simulate ``root/release``, prepare it into ``root/cache`` (one worker each) and open the cache."""
    from deeptao.data.cache import open_cache, prepare
    from deeptao.simulate import simulate_survey

    simulate_survey(root / "release", objects_per_class=objects_per_class, seed=seed, workers=1)
    prepare(root / "release", root / "cache", workers=1)
    return open_cache(root / "cache")
