"""Robust image reading and atomic writing for the enhancer (numpy + Pillow only).

Reading (:func:`load_image`) turns any input the CLI or library may meet into a :class:`LoadedImage`,
or raises :class:`ImageInputError` with a single user-facing line that starts with the file name.
Writing (:func:`save_image`) encodes into a temporary file next to the target and publishes it with
an atomic rename, so a crash or an encoder error never leaves a half-written or clobbered file.

Supported input: JPEG (incl. MPO, first picture), PNG (1-16 bit, every colour type, palette and
``tRNS`` transparency, interlaced), TIFF (first page), WebP, BMP, GIF (single frame) and whatever else
Pillow reads. Greyscale becomes three equal channels; CMYK is converted to sRGB through its embedded
ICC profile when ``PIL.ImageCms`` is available (plain conversion otherwise).

Precision: 16-bit samples are kept for PNG (all colour types, interlaced too) and for chunky 16-bit
RGB/RGBA TIFF. Pillow reduces 16-bit RGB to 8 bits when decoding, so these are decoded a second time
with the low byte selected and the two halves recombined (a pure numpy PNG decoder is the fallback).
Other 16-bit inputs (planar TIFF, 16-bit CMYK, ...) arrive at 8 bits.

Limits when writing:
    * JPEG has no alpha channel: ``alpha`` is dropped. JPEG and WebP are 8 bit: 16-bit pixels are
      rounded to 8 bits.
    * 16-bit PNG and 16-bit TIFF are written by this module (Pillow can't): lossless, with ICC
      profile and text; EXIF is kept in PNG (``eXIf``) but not in TIFF.
    * TIFF never carries EXIF (Pillow would merge it into the image IFD); text goes to
      ``ImageDescription`` as JSON. WebP text goes into an XMP packet. JPEG text goes into a COM
      segment as a JSON object (at most 65533 bytes). :func:`read_embedded_text` reads all of these.
    * Pillow's own decompression-bomb guard (twice ``PIL.Image.MAX_IMAGE_PIXELS``) still applies
      on top of ``max_pixels``; raise ``PIL.Image.MAX_IMAGE_PIXELS`` to open larger images.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError, features
from PIL.PngImagePlugin import PngInfo

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without littlecms
    ImageCms = None

__all__ = [
    "RECIPE_TEXT_KEY",
    "ImageInputError",
    "LoadedImage",
    "apply_orientation",
    "from_float01",
    "load_image",
    "read_embedded_text",
    "save_image",
    "to_float01",
]

RECIPE_TEXT_KEY = "enhancer_recipe"
"""Text key under which the CLI embeds a recipe JSON string."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_TIFF_DESCRIPTION_TAG = 270
_JPEG_COMMENT_LIMIT = 65533
_ZLIB_LEVEL = 4  # for our 16-bit writers: ~4x faster than 6 on photos, ~1-2% larger
_MAX_TEXT_CHUNK_BYTES = 16 << 20
_XMP_NAMESPACE = "urn:lib-enhancer:text:1.0/"
_FIRST_FRAME_FORMATS = frozenset({"MPO", "TIFF"})  # multi-frame containers whose frame 0 is the photo
_KEYED_TRANSPARENCY_MODES = frozenset({"L", "RGB", "I", "I;16", "I;16B", "I;16L"})
_BASE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N"})
_MODE_CONVERSIONS = {"1": "L", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB", "YCbCr": "RGB", "HSV": "RGB"}
_SUFFIX_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
_WRITABLE_FORMATS = frozenset(_SUFFIX_FORMATS.values())


class ImageInputError(ValueError):
    """One-line, user-facing reason an input can't be used; message starts with the path."""


@dataclass
class LoadedImage:
    """A decoded image plus the metadata worth carrying to the output.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 or uint16, C-contiguous, EXIF orientation already applied.
        alpha: ``(H, W)`` with the dtype of ``rgb``, or None.
        bit_depth: 8 or 16.
        format: Pillow's format name ("JPEG", "PNG", ...); "" for an in-memory PIL image.
        exif: EXIF block (``Exif\\0\\0`` + TIFF data) with Orientation reset to 1, or None.
        icc_profile: ICC profile bytes, or None.
        text: PNG text chunks, JPEG/GIF comment (key "comment", or the keys of a JSON object
            written by :func:`save_image`), TIFF description, our WebP XMP text.
        path: the source path, or None for bytes / PIL input.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    format: str
    exif: bytes | None = None
    icc_profile: bytes | None = None
    text: dict[str, str] = field(default_factory=dict)
    path: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self.rgb.shape[1], self.rgb.shape[0]


# --------------------------------------------------------------------------- float conversion


def to_float01(arr: np.ndarray) -> np.ndarray:
    """Convert uint8/uint16 samples to float32 in ``[0, 1]``.

    Raises:
        TypeError: for any other dtype.
    """
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    raise TypeError(f"to_float01 expects uint8 or uint16 samples, got {arr.dtype}")


def from_float01(arr: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Convert floats in ``[0, 1]`` to uint8 (``bit_depth`` 8) or uint16 (16), rounding and clipping.

    NaN becomes 0.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    x = np.asarray(arr)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    maxval = 255 if bit_depth == 8 else 65535
    x = np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0) * maxval
    return np.rint(x).astype(np.uint8 if bit_depth == 8 else np.uint16)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Round uint16 samples to uint8 (uint8 passes through)."""
    if arr.dtype == np.uint8:
        return arr
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


# --------------------------------------------------------------------------- input checks


def _one_line(exc: BaseException) -> str:
    """First line of an exception's message (or its type name)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_path(label: str) -> None:
    """Raise ImageInputError unless ``label`` names a non-empty regular file."""
    if not os.path.lexists(label):
        raise ImageInputError(f"{label}: file not found")
    if os.path.isdir(label):
        raise ImageInputError(f"{label}: is a directory, not an image file")
    if not os.path.exists(label):
        raise ImageInputError(f"{label}: broken symbolic link")
    if os.path.getsize(label) == 0:
        raise ImageInputError(f"{label}: file is empty (0 bytes)")


def _read_file(label: str) -> bytes:
    """Read a whole image file after the path checks."""
    _check_path(label)
    try:
        with open(label, "rb") as fh:
            return fh.read()
    except PermissionError:
        raise ImageInputError(f"{label}: permission denied") from None


@contextlib.contextmanager
def _decode_errors(label: str) -> Iterator[None]:
    """Translate Pillow's decoding failures into ImageInputError (other errors pass through)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except ImageInputError:
            raise
        except UnidentifiedImageError as exc:
            raise ImageInputError(f"{label}: not a recognised image file") from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageInputError(
                f"{label}: image is too large to decode safely (decompression bomb guard: {_one_line(exc)})"
            ) from exc
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
            raise ImageInputError(f"{label}: corrupt or truncated image data ({_one_line(exc)})") from exc


class _StrictTruncation:
    """Context manager forcing ``ImageFile.LOAD_TRUNCATED_IMAGES = False`` while any of our loads runs.

    Reference counted, so concurrent loads don't restore the caller's setting under each other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._saved = ImageFile.LOAD_TRUNCATED_IMAGES
                ImageFile.LOAD_TRUNCATED_IMAGES = False
            self._depth += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = self._saved


_STRICT_TRUNCATION = _StrictTruncation()


def _check_header(img: Image.Image, label: str, max_pixels: int) -> None:
    """Reject oversized, empty and animated images before any pixel is decoded."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageInputError(f"{label}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageInputError(
            f"{label}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (possible decompression bomb)"
        )
    if getattr(img, "is_animated", False) and img.format not in _FIRST_FRAME_FORMATS:
        raise ImageInputError(f"{label}: animated images are not supported")


# --------------------------------------------------------------------------- 16-bit decoding


def _tile_rawmode(tile: tuple) -> str | None:
    """Raw mode of a Pillow tile descriptor (args is a str or a tuple starting with it)."""
    args = tile[3]
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _with_rawmode(tile: tuple, rawmode: str) -> tuple:
    """Copy of a tile descriptor decoding with another raw mode."""
    codec, extents, offset, args = tile
    new_args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
    if hasattr(tile, "_replace"):
        return tile._replace(args=new_args)
    return (codec, extents, offset, new_args)


def _low_byte_rawmode(rawmode: str) -> str | None:
    """For a 16-bit RGB(A/X) raw mode, the raw mode whose 8-bit unpacker picks the low bytes.

    Pillow's ``RGB;16B`` unpacker keeps the first (high) byte of each big-endian sample; reading the
    same bytes as ``RGB;16L`` keeps the second (low) byte instead. ``N`` means native order.
    """
    base, sep, order = rawmode.rpartition(";16")
    if not sep or base not in ("RGB", "RGBA", "RGBX") or order not in ("B", "L", "N"):
        return None
    if order == "N":
        order = "B" if sys.byteorder == "big" else "L"
    return f"{base};16{'L' if order == 'B' else 'B'}"


def _decode_with_rawmode(data: bytes, rawmode: str) -> np.ndarray:
    """Decode ``data`` (first frame) with every tile's raw mode replaced."""
    with Image.open(io.BytesIO(data)) as img:
        img.tile = [_with_rawmode(tile, rawmode) for tile in img.tile]
        img.load()
        return np.array(img)


def _decode_deep(data: bytes, rawmode: str | None, high: np.ndarray) -> np.ndarray | None:
    """Full 16-bit samples ``(H, W, C)`` for a 16-bit PNG/TIFF Pillow decoded to 8 bits, else None.

    Args:
        data: the encoded file.
        rawmode: the raw mode Pillow chose for it (before loading).
        high: Pillow's regular 8-bit decode, i.e. the high bytes.
    """
    if rawmode == "LA;16B" and data.startswith(_PNG_SIGNATURE):
        # PNG grey+alpha 16: the 8-bit RGBA unpacker has the same 4 bytes per pixel and copies them
        raw = _decode_with_rawmode(data, "RGBA").astype(np.uint16)
        return np.stack([(raw[..., 0] << 8) | raw[..., 1], (raw[..., 2] << 8) | raw[..., 3]], axis=-1)
    low_mode = _low_byte_rawmode(rawmode or "")
    if low_mode is None:
        return None
    low = _decode_with_rawmode(data, low_mode)
    if low.shape != high.shape:
        return None
    return (high.astype(np.uint16) << 8) | low


def _png_header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """``(width, height, bit_depth, colour_type, interlace)`` from a PNG's IHDR, or None."""
    if len(data) < 33 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return width, height, depth, colour, interlace


def _iter_png_chunks(stream: BinaryIO, wanted: frozenset[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(type, payload)`` of the wanted chunks of a PNG stream, seeking over the rest."""
    stream.seek(0)
    if stream.read(8) != _PNG_SIGNATURE:
        return
    while True:
        head = stream.read(8)
        if len(head) < 8:
            return
        length, ctype = struct.unpack(">I4s", head)
        if ctype in wanted:
            payload = stream.read(length)
            if len(payload) < length:
                return
            stream.seek(4, io.SEEK_CUR)
            yield ctype, payload
        else:
            stream.seek(length + 4, io.SEEK_CUR)
        if ctype == b"IEND":
            return


def _unfilter_scanline_slow(kind: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Undo the PNG Average (3) or Paeth (4) filter of one scanline (sequential by nature)."""
    cur = line.tolist()
    up = prev.tolist()
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            cur[i] = (cur[i] + ((a + b) >> 1)) & 0xFF
            continue
        c = up[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[i] = (cur[i] + pred) & 0xFF
    return np.array(cur, dtype=np.uint8)


def _png_unfilter(raw: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG scanline filters: ``raw`` is ``(H, 1 + row_bytes)`` uint8, returns ``(H, row_bytes)``.

    None/Sub/Up rows are vectorised; Average and Paeth rows fall back to a per-byte loop.
    """
    height, row_bytes = raw.shape[0], raw.shape[1] - 1
    out = np.zeros((height + 1, row_bytes), dtype=np.uint8)  # row 0: the virtual zero row
    for y in range(height):
        kind, line, prev = int(raw[y, 0]), raw[y, 1:], out[y]
        if kind == 0:
            out[y + 1] = line
        elif kind == 1:
            out[y + 1] = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            out[y + 1] = line + prev
        elif kind in (3, 4):
            out[y + 1] = _unfilter_scanline_slow(kind, line, prev, bpp)
        else:
            raise ValueError(f"invalid PNG filter type {kind} in row {y}")
    return out[1:]


def _decode_png16_numpy(data: bytes) -> np.ndarray | None:
    """Decode a non-interlaced 16-bit PNG to ``(H, W, C)`` uint16 with zlib + numpy only.

    Returns None for PNGs this decoder doesn't handle (not 16 bit, interlaced, palette).
    """
    header = _png_header(data)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(header[3]) if header else None
    if header is None or header[2] != 16 or header[4] != 0 or channels is None:
        return None
    width, height = header[0], header[1]
    idat = b"".join(payload for _, payload in _iter_png_chunks(io.BytesIO(data), frozenset({b"IDAT"})))
    bpp = 2 * channels
    expected = height * (1 + width * bpp)
    raw = zlib.decompressobj().decompress(idat, expected)
    if len(raw) != expected:
        raise ValueError(f"PNG image data is {len(raw)} bytes, expected {expected}")
    rows = _png_unfilter(np.frombuffer(raw, dtype=np.uint8).reshape(height, -1), bpp)
    return rows.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _decode_deep_with_fallback(data: bytes, rawmode: str | None, high: np.ndarray) -> np.ndarray | None:
    """:func:`_decode_deep`, falling back to the numpy PNG decoder if Pillow refuses the trick."""
    try:
        return _decode_deep(data, rawmode, high)
    except (ValueError, KeyError, OSError):
        header = _png_header(data)
        if header is None or header[2] != 16:
            return None
        return _decode_png16_numpy(data)


# --------------------------------------------------------------------------- colour handling


def _srgb_profile_bytes() -> bytes | None:
    """Bytes of a built-in sRGB ICC profile (None without ImageCms)."""
    if ImageCms is None:
        return None
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """CMYK to RGB through the embedded profile when possible; returns the new image and ICC."""
    if icc and ImageCms is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(img, source, target, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None
        if converted is not None:
            return converted, _srgb_profile_bytes()
    return img.convert("RGB"), None


def _normalise_mode(img: Image.Image, icc: bytes | None, label: str) -> tuple[Image.Image, bytes | None]:
    """Convert exotic Pillow modes to one of ``_BASE_MODES``; returns the image and its ICC."""
    mode = img.mode
    if mode in _BASE_MODES:
        return img, icc
    if mode == "CMYK":
        return _cmyk_to_rgb(img, icc)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB"), icc
    if mode in _MODE_CONVERSIONS:
        return img.convert(_MODE_CONVERSIONS[mode]), icc
    raise ImageInputError(f"{label}: unsupported colour mode {mode!r}")


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """Repeat a ``(H, W)`` plane into ``(H, W, 3)``."""
    return np.repeat(grey[..., None], 3, axis=2)


def _pixel_arrays(img: Image.Image, label: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """``(rgb, alpha, bit_depth)`` of an image already in one of ``_BASE_MODES``."""
    mode = img.mode
    arr = np.array(img)  # a writable copy (np.asarray can give a read-only view)
    if mode == "RGB":
        return arr, None, 8
    if mode == "RGBA":
        return arr[..., :3], arr[..., 3], 8
    if mode == "L":
        return _grey_to_rgb(arr), None, 8
    if mode == "LA":
        return _grey_to_rgb(arr[..., 0]), arr[..., 1], 8
    if mode.startswith("I;16"):
        return _grey_to_rgb(arr.astype(np.uint16)), None, 16
    # mode "I": 32-bit integers; accept them when they fit 16 bits (older Pillow's 16-bit grey PNG)
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise ImageInputError(f"{label}: unsupported colour mode 'I' (32-bit integer samples)")
    return _grey_to_rgb(arr.astype(np.uint16)), None, 16


def _deep_arrays(deep: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Split a ``(H, W, C)`` uint16 decode (C = 1..4) into rgb and alpha."""
    channels = deep.shape[2]
    if channels >= 3:
        return deep[..., :3], (deep[..., 3] if channels == 4 else None)
    return _grey_to_rgb(deep[..., 0]), (deep[..., 1] if channels == 2 else None)


def _keyed_alpha(rgb: np.ndarray, key: object) -> np.ndarray | None:
    """Alpha plane from a colour-key transparency (PNG ``tRNS`` on grey/RGB), or None."""
    if isinstance(key, int):
        key = (key, key, key)
    if not (isinstance(key, tuple) and len(key) == 3 and all(isinstance(v, int) for v in key)):
        return None
    hit = np.all(rgb == np.asarray(key, dtype=np.int64), axis=-1)
    opaque = np.iinfo(rgb.dtype).max
    return np.where(hit, 0, opaque).astype(rgb.dtype)


# --------------------------------------------------------------------------- EXIF orientation


def _orientation(img: Image.Image) -> int:
    """EXIF orientation 1..8 of an image (1 when absent or unreadable)."""
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except (ValueError, SyntaxError, OSError, KeyError, TypeError, struct.error):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Transform ``(H, W, ...)`` pixels like ``ImageOps.exif_transpose`` does for ``orientation``."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return np.rot90(arr, 2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def _patch_tiff_orientation(tiff: bytes) -> bytes | None:
    """Set IFD0's Orientation to 1 in place (unchanged if absent); None if the layout is unexpected."""
    endian = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if endian is None or len(tiff) < 8:
        return None
    (ifd,) = struct.unpack_from(endian + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(endian + "H", tiff, ifd)
    patched = bytearray(tiff)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            return None
        tag, kind, n = struct.unpack_from(endian + "HHI", tiff, entry)
        if tag == _ORIENTATION_TAG:
            if kind != 3 or n != 1:
                return None
            struct.pack_into(endian + "H", patched, entry + 8, 1)
            break
    return bytes(patched)


def _exif_with_orientation_reset(exif: bytes) -> bytes:
    """EXIF block (``Exif\\0\\0`` prefixed) with Orientation 1, otherwise byte-for-byte unchanged.

    Unusual layouts are re-serialised by Pillow; unparseable blocks are returned as they are.
    """
    body = exif[len(_EXIF_HEADER) :] if exif.startswith(_EXIF_HEADER) else exif
    patched = _patch_tiff_orientation(body)
    if patched is not None:
        return _EXIF_HEADER + patched
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        if _ORIENTATION_TAG not in parsed:
            return exif
        parsed[_ORIENTATION_TAG] = 1
        return parsed.tobytes()
    except (ValueError, SyntaxError, OSError, KeyError, TypeError, struct.error):
        return exif


# --------------------------------------------------------------------------- embedded text


def _parse_text_blob(blob: str) -> dict[str, str] | None:
    """The ``{key: value}`` JSON object that :func:`save_image` writes, or None if ``blob`` isn't one."""
    try:
        obj = json.loads(blob)
    except ValueError:
        return None
    if (
        isinstance(obj, dict)
        and obj
        and all(isinstance(k, str) and isinstance(v, str) for k, v in obj.items())
    ):
        return obj
    return None


def _inflate_limited(data: bytes) -> bytes:
    """zlib-decompress at most ``_MAX_TEXT_CHUNK_BYTES`` (guards against zTXt bombs)."""
    return zlib.decompressobj().decompress(data, _MAX_TEXT_CHUNK_BYTES)


def _png_text_chunk(ctype: bytes, payload: bytes) -> tuple[str, str] | None:
    """Decode a tEXt / zTXt / iTXt chunk into ``(key, value)``; None if malformed."""
    key, sep, rest = payload.partition(b"\0")
    if not sep or not key:
        return None
    try:
        if ctype == b"tEXt":
            return key.decode("latin-1"), rest.decode("latin-1")
        if ctype == b"zTXt":
            return key.decode("latin-1"), _inflate_limited(rest[1:]).decode("latin-1")
        compressed, rest = rest[:1] == b"\x01", rest[2:]
        _language, _, rest = rest.partition(b"\0")
        _translated, _, value = rest.partition(b"\0")
        if compressed:
            value = _inflate_limited(value)
        return key.decode("latin-1"), value.decode("utf-8", errors="replace")
    except zlib.error:
        return None


def _png_text(stream: BinaryIO) -> dict[str, str]:
    """All text chunks of a PNG stream, wherever they are, without decoding pixels."""
    text: dict[str, str] = {}
    for ctype, payload in _iter_png_chunks(stream, frozenset({b"tEXt", b"zTXt", b"iTXt"})):
        item = _png_text_chunk(ctype, payload)
        if item is not None:
            text[item[0]] = item[1]
    return text


def _text_to_xmp(text: Mapping[str, str]) -> bytes:
    """A minimal XMP packet carrying ``text`` as a JSON object."""
    payload = escape(json.dumps(dict(text), ensure_ascii=False))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:enh="{_XMP_NAMESPACE}"><enh:text>{payload}</enh:text>'
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def _text_from_xmp(xmp: bytes | str) -> dict[str, str]:
    """Text written by :func:`_text_to_xmp`; {} for foreign or malformed XMP."""
    raw = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    if _XMP_NAMESPACE.encode() not in raw:
        return {}
    try:
        root = ElementTree.fromstring(raw.strip(b"\0 \t\r\n"))
    except ElementTree.ParseError:
        return {}
    node = root.find(f".//{{{_XMP_NAMESPACE}}}text")
    return (_parse_text_blob(node.text or "") or {}) if node is not None else {}


def _blob_text(blob: bytes | str | None, fallback_key: str) -> dict[str, str]:
    """Text from a comment/description: our JSON object, else ``{fallback_key: blob}``."""
    if not blob:
        return {}
    value = blob.decode("utf-8", errors="replace") if isinstance(blob, bytes) else str(blob)
    return _parse_text_blob(value) or {fallback_key: value}


def _embedded_text(img: Image.Image, stream: BinaryIO | None) -> dict[str, str]:
    """Text metadata of an opened image (``stream``: the encoded file, for PNG chunk walking)."""
    fmt = img.format or ""
    if fmt == "PNG":
        if stream is not None:
            return _png_text(stream)
        return {str(k): str(v) for k, v in getattr(img, "text", {}).items()}
    if fmt == "TIFF":
        tags = getattr(img, "tag_v2", None)
        return _blob_text(tags.get(_TIFF_DESCRIPTION_TAG) if tags is not None else None, "description")
    if fmt == "WEBP":
        xmp = img.info.get("xmp")
        return _text_from_xmp(xmp) if xmp else {}
    return _blob_text(img.info.get("comment"), "comment")


def read_embedded_text(path: str | os.PathLike) -> dict[str, str]:
    """The text/comment metadata of an image file, read from its headers (no pixel decoding).

    PNG text chunks, JPEG/GIF comments, TIFF ImageDescription and our WebP XMP are understood; the
    JSON objects :func:`save_image` writes into JPEG/TIFF/WebP come back as their keys.

    Raises:
        ImageInputError: the file is missing, empty, a directory or not an image.
    """
    label = str(os.fspath(path))
    _check_path(label)
    with open(label, "rb") as fh, _decode_errors(label), Image.open(fh) as img:
        return _embedded_text(img, fh)


# --------------------------------------------------------------------------- loading


def _decode_pil(
    img: Image.Image, label: str, data: bytes | None, path: str | None, max_pixels: int
) -> LoadedImage:
    """Turn an opened (maybe not yet loaded) PIL image into a LoadedImage."""
    with _decode_errors(label):
        _check_header(img, label, max_pixels)
        rawmodes = {_tile_rawmode(tile) for tile in (getattr(img, "tile", None) or [])}
        deep = None
        with _STRICT_TRUNCATION:
            img.load()
            if data is not None and len(rawmodes) == 1 and img.mode in ("RGB", "RGBA"):
                deep = _decode_deep_with_fallback(data, rawmodes.pop(), np.asarray(img))

    orientation = _orientation(img)
    raw_exif = img.info.get("exif")
    exif = _exif_with_orientation_reset(raw_exif) if isinstance(raw_exif, bytes) and raw_exif else None
    icc = img.info.get("icc_profile") or None
    text = _embedded_text(img, io.BytesIO(data) if data is not None else None)
    key = img.info.get("transparency") if img.mode in _KEYED_TRANSPARENCY_MODES else None

    if deep is not None:
        rgb, alpha = _deep_arrays(deep)
        bit_depth = 16
    else:
        base, icc = _normalise_mode(img, icc, label)
        rgb, alpha, bit_depth = _pixel_arrays(base, label)
    if alpha is None and key is not None:
        alpha = _keyed_alpha(rgb, key)

    rgb = np.ascontiguousarray(apply_orientation(rgb, orientation))
    if alpha is not None:
        alpha = np.ascontiguousarray(apply_orientation(alpha, orientation))
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        bit_depth=bit_depth,
        format=img.format or "",
        exif=exif,
        icc_profile=icc,
        text=text,
        path=path,
    )


def load_image(
    source: str | os.PathLike | bytes | Image.Image, *, max_pixels: int = 200_000_000
) -> LoadedImage:
    """Decode an image file, encoded bytes or a PIL image into a :class:`LoadedImage`.

    The whole file is decoded (truncation is an error), EXIF orientation is applied once, and 16-bit
    PNG/TIFF samples keep their precision (see the module docstring).

    Args:
        source: a path, the encoded file's bytes, or a PIL image (``path`` is then None).
        max_pixels: refuse images with more pixels than this, before decoding them.

    Raises:
        ImageInputError: the input can't be used (missing, empty, directory, not an image,
            corrupt/truncated, too large, animated, unsupported mode); one line naming the input.
    """
    if isinstance(source, Image.Image):
        return _decode_pil(source, "<PIL image>", None, None, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label, path = bytes(source), "<bytes>", None
        if not data:
            raise ImageInputError(f"{label}: no image data (0 bytes)")
    else:
        label = path = str(os.fspath(source))
        data = _read_file(label)
    with _decode_errors(label):
        img = Image.open(io.BytesIO(data))
    with img:
        return _decode_pil(img, label, data, path, max_pixels)


# --------------------------------------------------------------------------- encoders


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    """A PNG chunk with length and CRC."""
    crc = zlib.crc32(payload, zlib.crc32(ctype)) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _png_text_payload(key: str, value: str) -> tuple[bytes, bytes]:
    """``(chunk type, payload)`` for a text item: tEXt if Latin-1 fits, else iTXt (UTF-8)."""
    try:
        return b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")
    except UnicodeEncodeError:
        return b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")


def _encode_png16(
    pixels: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    text: Mapping[str, str] | None = None,
    compress_level: int = _ZLIB_LEVEL,
) -> bytes:
    """Encode ``(H, W, 3|4)`` uint16 pixels as a 16-bit RGB/RGBA PNG (Up filter on every row)."""
    height, width, channels = pixels.shape
    colour_type = 2 if channels == 3 else 6
    rows = np.ascontiguousarray(pixels, dtype=">u2").reshape(height, -1).view(np.uint8)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # Up: each row minus the one above (mod 256)
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    chunks = [_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    if icc_profile:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile)))
    if exif:
        chunks.append(
            _png_chunk(b"eXIf", exif[len(_EXIF_HEADER) :] if exif.startswith(_EXIF_HEADER) else exif)
        )
    for key, value in (text or {}).items():
        chunks.append(_png_chunk(*_png_text_payload(key, value)))
    compressed = zlib.compress(filtered.tobytes(), compress_level)
    step = 1 << 20
    chunks.extend(_png_chunk(b"IDAT", compressed[i : i + step]) for i in range(0, len(compressed), step))
    chunks.append(_png_chunk(b"IEND", b""))
    return _PNG_SIGNATURE + b"".join(chunks)


def _tiff_entry(tag: int, kind: int, values: bytes | list[int]) -> tuple[int, int, int, bytes]:
    """``(tag, type, count, little-endian value bytes)`` of a TIFF IFD entry."""
    if isinstance(values, bytes):  # ASCII (2) / UNDEFINED (7)
        return tag, kind, len(values), values
    fmt = {3: "H", 4: "I", 5: "I"}[kind]
    count = len(values) // 2 if kind == 5 else len(values)
    return tag, kind, count, struct.pack(f"<{len(values)}{fmt}", *values)


def _encode_tiff16(
    pixels: np.ndarray, *, icc_profile: bytes | None = None, description: str | None = None
) -> bytes:
    """Encode ``(H, W, 3|4)`` uint16 pixels as a little-endian Deflate TIFF with horizontal prediction."""
    height, width, channels = pixels.shape
    diff = np.ascontiguousarray(pixels, dtype=np.uint16).copy()
    diff[:, 1:] -= pixels[:, :-1]  # predictor 2, modulo 2**16
    rows = diff.astype("<u2").reshape(height, -1)
    per_strip = min(height, max(1, (1 << 18) // max(1, rows.shape[1] * 2)))

    out = bytearray(b"II*\0\0\0\0\0")
    offsets, counts = [], []
    for start in range(0, height, per_strip):
        strip = zlib.compress(rows[start : start + per_strip].tobytes(), _ZLIB_LEVEL)
        offsets.append(len(out))
        counts.append(len(strip))
        out += strip + b"\0" * (len(strip) % 2)
    entries = [
        _tiff_entry(256, 4, [width]),
        _tiff_entry(257, 4, [height]),
        _tiff_entry(258, 3, [16] * channels),
        _tiff_entry(259, 3, [8]),  # Adobe Deflate
        _tiff_entry(262, 3, [2]),  # RGB
        _tiff_entry(273, 4, offsets),
        _tiff_entry(277, 3, [channels]),
        _tiff_entry(278, 4, [per_strip]),
        _tiff_entry(279, 4, counts),
        _tiff_entry(282, 5, [72, 1]),
        _tiff_entry(283, 5, [72, 1]),
        _tiff_entry(284, 3, [1]),  # chunky
        _tiff_entry(296, 3, [2]),  # inch
        _tiff_entry(317, 3, [2]),  # horizontal differencing
    ]
    if description:
        entries.append(_tiff_entry(_TIFF_DESCRIPTION_TAG, 2, description.encode("ascii") + b"\0"))
    if channels == 4:
        entries.append(_tiff_entry(338, 3, [2]))  # unassociated alpha
    if icc_profile:
        entries.append(_tiff_entry(34675, 7, icc_profile))
    entries.sort()

    fields = []
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            fields.append(struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0"))
            continue
        fields.append(struct.pack("<HHII", tag, kind, count, len(out)))
        out += value + b"\0" * (len(value) % 2)
    ifd_offset = len(out)
    out += struct.pack("<H", len(fields)) + b"".join(fields) + struct.pack("<I", 0)
    if len(out) >= 1 << 32:
        raise ValueError("image too large for a classic TIFF file (4 GiB); use PNG")
    struct.pack_into("<I", out, 4, ifd_offset)
    return bytes(out)


def _check_text(text: Mapping[str, str] | None) -> dict[str, str]:
    """Validate text metadata: str keys of 1-79 Latin-1 characters, str values."""
    checked: dict[str, str] = {}
    for key, value in (text or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"text keys and values must be str, got {key!r}: {type(value).__name__}")
        try:
            key.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"text key {key!r} must be Latin-1") from None
        if not 1 <= len(key) <= 79 or "\0" in key:
            raise ValueError(f"text key {key!r} must be 1-79 characters without NUL")
        checked[key] = value
    return checked


def _check_pixels(rgb: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate ``rgb (H, W, 3)`` and ``alpha (H, W)`` (same uint8/uint16 dtype); make them contiguous."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"rgb must have shape (H, W, 3) with H, W > 0, got {rgb.shape}")
    if rgb.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"rgb must be uint8 or uint16 (see from_float01), got {rgb.dtype}")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha must have shape {rgb.shape[:2]}, got {alpha.shape}")
        if alpha.dtype != rgb.dtype:
            raise TypeError(f"alpha dtype {alpha.dtype} differs from rgb dtype {rgb.dtype}")
        alpha = np.ascontiguousarray(alpha)
    return np.ascontiguousarray(rgb), alpha


def _resolve_format(path: Path, fmt: str | None) -> str:
    """Output format from ``fmt`` or the file suffix."""
    if fmt:
        name = _FORMAT_ALIASES.get(fmt.upper(), fmt.upper())
        if name not in _WRITABLE_FORMATS:
            raise ValueError(f"{path}: can't write format {fmt!r} (use JPEG, PNG, TIFF or WEBP)")
        return name
    suffix = path.suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise ValueError(f"{path}: unknown image suffix {suffix!r} (use .jpg, .png, .tif or .webp)")
    return _SUFFIX_FORMATS[suffix]


def _pil_image(rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    """An 8-bit RGB or RGBA PIL image (16-bit input rounded)."""
    pixels = _to_uint8(rgb) if alpha is None else np.dstack([_to_uint8(rgb), _to_uint8(alpha)])
    return Image.fromarray(np.ascontiguousarray(pixels))


def _encode(
    fh: BinaryIO,
    fmt: str,
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    exif: bytes | None,
    icc_profile: bytes | None,
    text: dict[str, str],
    quality: int,
) -> None:
    """Write the encoded image to ``fh``."""
    deep = rgb.dtype == np.uint16
    pixels = rgb if alpha is None else np.dstack([rgb, alpha])
    if fmt == "PNG" and deep:
        fh.write(_encode_png16(pixels, icc_profile=icc_profile, exif=exif, text=text))
        return
    if fmt == "TIFF" and deep:
        description = json.dumps(text) if text else None
        fh.write(_encode_tiff16(pixels, icc_profile=icc_profile, description=description))
        return

    params: dict[str, object] = {}
    if icc_profile:
        params["icc_profile"] = icc_profile
    if exif and fmt != "TIFF":
        params["exif"] = exif
    if fmt == "JPEG":
        alpha = None
        params.update(quality=quality)
        if text:
            comment = json.dumps(text, ensure_ascii=False).encode("utf-8")
            if len(comment) > _JPEG_COMMENT_LIMIT:
                raise ValueError(f"text metadata is {len(comment)} bytes, over the JPEG comment limit")
            params["comment"] = comment
    elif fmt == "WEBP":
        params.update(quality=quality)
        if text:
            params["xmp"] = _text_to_xmp(text)
    elif fmt == "PNG":
        if text:
            info = PngInfo()
            for key, value in text.items():
                info.add_text(key, value)
            params["pnginfo"] = info
    elif fmt == "TIFF":
        if features.check("libtiff"):
            params["compression"] = "tiff_adobe_deflate"
        if text:
            params["description"] = json.dumps(text)
    _pil_image(rgb, alpha).save(fh, format=fmt, **params)


# --------------------------------------------------------------------------- atomic write


def _exists_error(target: Path) -> FileExistsError:
    """The error for a refused overwrite."""
    return FileExistsError(
        errno.EEXIST, "refusing to overwrite existing file (pass overwrite=True)", str(target)
    )


def _create_temp(target: Path) -> tuple[str, int]:
    """Create an exclusive temporary file next to ``target`` (umask-respecting mode)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name[:100]}.{secrets.token_hex(6)}.tmp")
        try:
            return str(tmp), os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "could not create a temporary file", str(target.parent))


def _publish(tmp: str, target: Path, overwrite: bool) -> None:
    """Move the finished temp file onto ``target`` atomically (never clobbering unless ``overwrite``)."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # atomic "create if absent"
    except FileExistsError:
        raise _exists_error(target) from None
    except OSError:  # no hard links on this file system: check, then rename
        if os.path.lexists(target):
            raise _exists_error(target) from None
        os.replace(tmp, target)
        return
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _atomic_write(target: Path, write: Callable[[BinaryIO], None], overwrite: bool) -> None:
    """Write via ``write(fh)`` into a temp file in ``target``'s directory, then publish it."""
    if not overwrite and os.path.lexists(target):
        raise _exists_error(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _create_temp(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp, target, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    text: dict[str, str] | None = None,
    format: str | None = None,
    quality: int = 95,
    overwrite: bool = False,
) -> Path:
    """Encode ``rgb`` (+ ``alpha``) and write it atomically to ``path``.

    16-bit pixels stay 16 bit in PNG and TIFF and are rounded to 8 bit for JPEG/WebP; JPEG drops
    ``alpha``. ICC is kept everywhere, EXIF in JPEG/PNG/WebP (not TIFF). ``text`` goes to PNG text
    chunks, a JSON JPEG comment, the TIFF ImageDescription or WebP XMP (see :func:`read_embedded_text`).

    Args:
        path: output file; missing parent directories are created.
        rgb: ``(H, W, 3)`` uint8 or uint16.
        alpha: ``(H, W)`` with the dtype of ``rgb``, or None.
        exif: EXIF block (with or without the ``Exif\\0\\0`` prefix); its Orientation is set to 1
            because the pixels are written upright.
        icc_profile: ICC profile bytes.
        text: ``{key: value}`` metadata; keys are 1-79 Latin-1 characters.
        format: "JPEG", "PNG", "TIFF" or "WEBP" (aliases "JPG", "TIF"); default: from the suffix.
        quality: JPEG/WebP quality 1-100.
        overwrite: replace an existing file instead of raising FileExistsError.

    Returns:
        The written path.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError / TypeError: bad format, pixel arrays or text.
    """
    target = Path(path)
    fmt = _resolve_format(target, format)
    rgb, alpha = _check_pixels(rgb, alpha)
    checked_text = _check_text(text)
    exif = _exif_with_orientation_reset(bytes(exif)) if exif else None
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1-100, got {quality}")

    def write(fh: BinaryIO) -> None:
        _encode(fh, fmt, rgb, alpha, exif, icc_profile, checked_text, quality)

    _atomic_write(target, write, overwrite)
    return target
