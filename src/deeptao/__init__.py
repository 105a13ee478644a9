"""deeptao: classify CRTS transients from Deep-TAO image sequences, evaluated at object level."""

__version__ = "0.1.0"

CLASSES = ("SN", "AGN", "BZ", "CV", "OTHER", "NON")
"""Labels in the order used by every model and table; the folder name is the label."""

TRANSIENT_CLASSES = CLASSES[:5]
