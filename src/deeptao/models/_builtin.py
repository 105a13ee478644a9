"""The built-in models and the module each one's builder registers itself from.

Imported one at a time, when a model is first asked for by name: loading a
saved network does not import scikit-learn for the forest, nor the forest torch.
"""

BUILTIN_MODULES = {
    "lc-rf": "deeptao.models.lc_rf",
    "seed-cnn": "deeptao.models.seed_cnn",
    "taonet": "deeptao.models.taonet",
    "taonet-lc": "deeptao.models.taonet_lc",
    "taonet+rf": "deeptao.models.fusion",
}
