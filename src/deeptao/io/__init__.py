"""Reading Deep-TAO FITS files: one file, one :class:`TaoObject`."""

from deeptao.io._reader import (
    IMAGE_SHAPE,
    TaoFormatError,
    TaoObject,
    iter_fits_files,
    label_from_path,
    parse_angle,
    read_object,
)

__all__ = [
    "IMAGE_SHAPE",
    "TaoFormatError",
    "TaoObject",
    "iter_fits_files",
    "label_from_path",
    "parse_angle",
    "read_object",
]
