"""Dataset building: the prepared cache, splits, tasks and torch datasets."""

from deeptao.data.cache import CacheError, PreparedCache, PrepareError, PrepareResult, open_cache, prepare

__all__ = ["CacheError", "PreparedCache", "PrepareError", "PrepareResult", "open_cache", "prepare"]
