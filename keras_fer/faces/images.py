"""Reading a photo: any format OpenCV decodes, upright, as uint8 BGR, with clear errors."""

import io
import warnings

import cv2
import numpy as np

# The most pixels an image may have once decoded: above any phone camera (a 200-megapixel
# sensor writes 12.5 MP JPEGs by default) and 150 MB as BGR. A 20,000 x 20,000 image would take
# 1.2 GB; a JPEG that large is decoded at 1/2, 1/4 or 1/8 of its size instead, anything else refused.
MAX_IMAGE_PIXELS = 50_000_000
JPEG_REDUCED_READS = ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))


class ImageError(Exception):
    """An image cannot be read or decoded, or holds no face."""


def read_image(path):
    """The photo at `path` as uint8 BGR (H, W, 3), upright.

    Any format OpenCV decodes; EXIF orientation is applied, 16-bit images are scaled to 8
    bits, gray and palette images made BGR, alpha dropped. An image of more than
    `MAX_IMAGE_PIXELS` is decoded at a reduced size when it is a JPEG and refused otherwise,
    its size read from the header before any pixel is decoded.

    Raises:
        ImageError: the file cannot be read, is empty, is not a decodable image, or is too large.
    """
    try:
        encoded = np.fromfile(path, np.uint8)
    except OSError as error:
        raise ImageError(f"{path}: cannot read the file: {error.strerror}.") from error
    if not encoded.size:
        raise ImageError(f"{path}: the file is empty (0 bytes).")
    flags = cv2.IMREAD_COLOR
    size = header_size(path, encoded)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        flags = reduced_jpeg_read(path, encoded, size)
    image = cv2.imdecode(encoded, flags)
    if image is None:
        raise ImageError(f"{path}: cannot decode the image (truncated or damaged, or not a JPEG, PNG, BMP or "
                         "other format OpenCV reads).")
    return image


def header_size(path, encoded):
    """(width, height) read from an encoded image's header without decoding it; None if unknown.

    Raises:
        ImageError: the header announces more pixels than Pillow will even open (179 million).
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow warns above 89 million pixels on open; the caller judges the size instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(encoded.tobytes())) as image:
                return image.size
    except Image.DecompressionBombError as error:
        raise ImageError(f"{path}: the image is far larger than the {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels read "
                         f"here ({error}); downscale it first.") from None
    except (OSError, ValueError):  # a format Pillow does not know, or a damaged header: OpenCV decides
        return None


def reduced_jpeg_read(path, encoded, size):
    """The `cv2.imdecode` flags that decode a too-large JPEG within MAX_IMAGE_PIXELS; ImageError otherwise."""
    width, height = size
    too_large = (f"{path}: the image is {width:,} x {height:,} pixels ({width * height / 1e6:,.0f} megapixels), more "
                 f"than the {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels read here; downscale it first")
    if encoded[:3].tobytes() != b"\xff\xd8\xff":
        raise ImageError(too_large + ".")
    for factor, flags in JPEG_REDUCED_READS:
        if (width // factor) * (height // factor) <= MAX_IMAGE_PIXELS:
            return flags
    raise ImageError(too_large + " (even 1/8 of it is too large).")
