"""Reading Deep-TAO FITS files: one file, one :class:`TaoObject`."""

from deeptao.io._exposures import (
    NIGHT_GAP_DAYS,
    assign_nights,
    blank_images,
    count_nights,
    counted_exposures,
    duplicate_exposures,
    first_nights,
    order_exposures,
    order_objects,
    sequence_nights,
)
from deeptao.io._reader import (
    IMAGE_SHAPE,
    ReadFault,
    TaoFormatError,
    TaoObject,
    iter_fits_files,
    label_from_path,
    parse_angle,
    read_object,
)

__all__ = [
    "NIGHT_GAP_DAYS",
    "assign_nights",
    "blank_images",
    "count_nights",
    "counted_exposures",
    "duplicate_exposures",
    "first_nights",
    "order_exposures",
    "order_objects",
    "sequence_nights",
    "IMAGE_SHAPE",
    "ReadFault",
    "TaoFormatError",
    "TaoObject",
    "iter_fits_files",
    "label_from_path",
    "parse_angle",
    "read_object",
]
