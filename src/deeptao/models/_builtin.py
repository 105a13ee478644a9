"""Imports every built-in model module so that its builders register themselves."""

import importlib

for _module in ("seed_cnn", "taonet", "lc_rf"):
    try:
        importlib.import_module(f"deeptao.models.{_module}")
    except ModuleNotFoundError as exc:  # a model module not written yet
        if exc.name != f"deeptao.models.{_module}":
            raise
