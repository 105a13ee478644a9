"""Imports every built-in model module so that its builders register themselves."""

from deeptao.models import lc_rf, seed_cnn, taonet, taonet_lc  # noqa: F401
