"""deeptao: classify CRTS transients from Deep-TAO image sequences, evaluated at object level."""

__version__ = "0.2.4"

CLASSES = ("SN", "AGN", "BZ", "CV", "OTHER", "NON")
"""Labels in the order used by every model and table; the folder name is the label."""

TRANSIENT_CLASSES = CLASSES[:5]

RELEASE_CLASS_COUNTS = {"SN": 1372, "AGN": 606, "BZ": 239, "CV": 772, "OTHER": 818, "NON": 12500}
"""Objects per class in the published Deep-TAO release (16,307 files); what a release-like survey copies."""
