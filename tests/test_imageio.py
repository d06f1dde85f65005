"""Tests for lib_enhancer.imageio: robust reading and atomic writing."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from lib_enhancer import imageio
from lib_enhancer.imageio import (
    RECIPE_TEXT_KEY,
    ImageInputError,
    from_float01,
    load_image,
    read_embedded_text,
    save_image,
    to_float01,
)

try:
    from PIL import ImageCms
except ImportError:  # pragma: no cover - Pillow without littlecms
    ImageCms = None

RNG_SEED = 1234
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


# --------------------------------------------------------------------------- helpers


def gradient(height: int = 48, width: int = 64, dtype: type = np.uint8) -> np.ndarray:
    """A smooth RGB test image (compresses well, survives lossy codecs)."""
    maxval = np.iinfo(dtype).max
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([x / (width - 1), y / (height - 1), 1 - x / (width - 1) * 0.5], axis=-1)
    return np.rint(rgb * maxval).astype(dtype)


def random16(shape: tuple[int, ...]) -> np.ndarray:
    """Random uint16 samples over the whole range (so values > 255 are everywhere)."""
    return np.random.default_rng(RNG_SEED).integers(0, 65536, shape, dtype=np.uint16)


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    """A PNG chunk with a correct CRC."""
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def filter_rows(rows: np.ndarray, bpp: int, filters: np.ndarray) -> np.ndarray:
    """Reference PNG filtering of ``(H, N)`` bytes with a filter type per row; returns ``(H, 1 + N)``."""
    height, width = rows.shape
    x = rows.astype(np.int32)
    up = np.vstack([np.zeros((1, width), np.int32), x[:-1]])
    left = np.hstack([np.zeros((height, bpp), np.int32), x[:, :-bpp]])
    upleft = np.hstack([np.zeros((height, bpp), np.int32), up[:, :-bpp]])
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    predictions = [np.zeros_like(x), left, up, (left + up) >> 1, paeth]
    out = np.empty((height, width + 1), np.uint8)
    out[:, 0] = filters
    for kind, prediction in enumerate(predictions):
        sel = filters == kind
        out[sel, 1:] = (x[sel] - prediction[sel]) & 0xFF
    return out


def png16_bytes(pixels: np.ndarray, *, interlace: bool = False, extra_chunks: bytes = b"") -> bytes:
    """A 16-bit PNG (grey, grey+alpha, RGB, RGBA) using every filter type, optionally Adam7."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rng = np.random.default_rng(RNG_SEED)
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = []
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        rows = sub.astype(">u2").reshape(sub.shape[0], -1).view(np.uint8)
        filters = rng.integers(0, 5, sub.shape[0]).astype(np.uint8)
        raw.append(filter_rows(rows, 2 * channels, filters).tobytes())
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"".join(raw)))
        + extra_chunks
        + png_chunk(b"IEND", b"")
    )


def make_exif(orientation: int) -> bytes:
    """EXIF bytes with an orientation and a Make tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestMake"
    return exif.tobytes()


def exif_tags(exif: bytes | None) -> Image.Exif:
    """Parse EXIF bytes."""
    assert exif is not None
    parsed = Image.Exif()
    parsed.load(exif)
    return parsed


def icc_bytes() -> bytes:
    """A real sRGB profile when ImageCms is available, else an opaque blob."""
    if ImageCms is None:
        return b"not-really-an-icc-profile" * 8
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def listing(directory: Path) -> list[str]:
    """Names in a directory, sorted."""
    return sorted(p.name for p in directory.iterdir())


def assert_input_error(excinfo: pytest.ExceptionInfo, name: str, *fragments: str) -> None:
    """The error is one line, names the input first and contains the expected reason."""
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.split(":")[0].endswith(name)
    for fragment in fragments:
        assert fragment in message


# --------------------------------------------------------------------------- float conversion


def test_float_conversion_8_and_16_bit():
    ramp8 = np.arange(256, dtype=np.uint8)
    assert np.array_equal(from_float01(to_float01(ramp8), 8), ramp8)
    ramp16 = np.arange(65536, dtype=np.uint16)
    f = to_float01(ramp16)
    assert f.dtype == np.float32 and f.min() == 0.0 and f.max() == 1.0
    assert np.array_equal(from_float01(f, 16), ramp16)


def test_from_float01_rounds_clips_and_zeroes_nan():
    out = from_float01(np.array([-0.5, 0.0, 0.6 / 255, 0.4 / 255, 1.0, 7.0, np.nan]), 8)
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 1, 0, 255, 255, 0]
    with pytest.raises(ValueError):
        from_float01(np.zeros(3), 12)
    with pytest.raises(TypeError):
        to_float01(np.zeros(3, np.float32))


def test_uint16_to_uint8_rounds():
    values = np.arange(65536, dtype=np.uint16)
    out = imageio._to_uint8(values)
    assert out.dtype == np.uint8
    assert np.abs(out.astype(np.int64) * 257 - values).max() <= 129  # truncation would be off by up to 256
    assert np.array_equal(imageio._to_uint8(np.arange(256, dtype=np.uint16) * 257), np.arange(256))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("suffix", "fmt", "tolerance"),
    [(".png", "PNG", 0), (".tif", "TIFF", 0), (".jpg", "JPEG", 3.0), (".webp", "WEBP", 3.0)],
)
def test_round_trip_8bit(tmp_path, suffix, fmt, tolerance):
    rgb = gradient()
    path = save_image(tmp_path / f"out{suffix}", rgb)
    loaded = load_image(path)
    assert loaded.format == fmt and loaded.bit_depth == 8 and loaded.alpha is None
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == rgb.shape
    assert loaded.rgb.flags["C_CONTIGUOUS"] and loaded.rgb.flags["WRITEABLE"]
    assert loaded.path == str(path)
    err = np.abs(loaded.rgb.astype(np.int32) - rgb).mean()
    assert err <= tolerance
    assert listing(tmp_path) == [f"out{suffix}"]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_round_trip_16bit_is_lossless(tmp_path, suffix, with_alpha):
    rgb = random16((33, 47, 3))
    alpha = random16((33, 47))[::-1].copy() if with_alpha else None
    path = save_image(tmp_path / f"deep{suffix}", rgb, alpha=alpha)
    loaded = load_image(path)
    assert loaded.bit_depth == 16 and loaded.rgb.dtype == np.uint16
    assert np.array_equal(loaded.rgb, rgb)
    assert (loaded.rgb > 255).mean() > 0.9  # precision beyond 8 bits survived
    if with_alpha:
        assert np.array_equal(loaded.alpha, alpha)
    else:
        assert loaded.alpha is None


def test_16bit_png_values_above_255_survive(tmp_path):
    rgb = np.full((4, 5, 3), 256, dtype=np.uint16)
    rgb[0, 0] = (1, 257, 65535)
    loaded = load_image(save_image(tmp_path / "v.png", rgb))
    assert loaded.rgb[0, 0].tolist() == [1, 257, 65535]
    assert int(loaded.rgb[1, 1, 0]) == 256


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_png_from_other_encoders(channels, interlace):
    """All filter types and Adam7 decode bit-exactly (Pillow alone would give 8 bits)."""
    pixels = random16((19, 23, channels))
    loaded = load_image(png16_bytes(pixels, interlace=interlace))
    assert loaded.bit_depth == 16 and loaded.path is None
    if channels == 2:
        assert np.array_equal(loaded.rgb, np.repeat(pixels[..., :1], 3, axis=2))
        assert np.array_equal(loaded.alpha, pixels[..., 1])
    else:
        assert np.array_equal(loaded.rgb, pixels[..., :3])
        assert loaded.alpha is None if channels == 3 else np.array_equal(loaded.alpha, pixels[..., 3])


def test_16bit_png_numpy_fallback_decoder(monkeypatch):
    pixels = random16((21, 17, 4))
    data = png16_bytes(pixels)
    assert np.array_equal(imageio._decode_png16_numpy(data), pixels)

    def refuse(data, rawmode):
        raise ValueError("unknown raw mode")

    monkeypatch.setattr(imageio, "_decode_with_rawmode", refuse)
    loaded = load_image(data)
    assert loaded.bit_depth == 16
    assert np.array_equal(loaded.rgb, pixels[..., :3]) and np.array_equal(loaded.alpha, pixels[..., 3])


def test_16bit_rgb_png_colour_key_transparency():
    pixels = random16((6, 7, 3))
    key = pixels[2, 3]
    trns = png_chunk(b"tRNS", struct.pack(">HHH", *key.tolist()))
    data = png16_bytes(pixels)
    data = data[:33] + trns + data[33:]  # right after IHDR
    loaded = load_image(data)
    expected = np.where(np.all(pixels == key, axis=-1), 0, 65535)
    assert loaded.alpha is not None and np.array_equal(loaded.alpha, expected)
    assert loaded.alpha[2, 3] == 0


def test_rgba_8bit_alpha_kept(tmp_path):
    rgb = gradient()
    alpha = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    for name in ("a.png", "a.tif"):
        loaded = load_image(save_image(tmp_path / name, rgb, alpha=alpha))
        assert np.array_equal(loaded.rgb, rgb) and np.array_equal(loaded.alpha, alpha)
    webp = load_image(save_image(tmp_path / "a.webp", rgb, alpha=alpha))
    assert webp.alpha is not None and np.abs(webp.alpha.astype(int) - alpha).max() <= 2
    jpeg = load_image(save_image(tmp_path / "a.jpg", rgb, alpha=alpha))
    assert jpeg.alpha is None  # JPEG has no alpha: dropped


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_transparency(tmp_path, suffix):
    indices = np.zeros((8, 10), np.uint8)
    indices[:, 5:] = 1
    indices[0, 0] = 2
    img = Image.frombytes("P", (10, 8), indices.tobytes())
    img.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0] + [0] * (253 * 3))
    path = tmp_path / f"pal{suffix}"
    img.save(path, transparency=2)
    loaded = load_image(path)
    assert loaded.bit_depth == 8 and loaded.alpha is not None
    assert loaded.alpha[0, 0] == 0 and (loaded.alpha == 255).sum() == 79
    assert loaded.rgb[4, 1].tolist() == [255, 0, 0] and loaded.rgb[4, 8].tolist() == [0, 0, 255]


def test_rgb_png_colour_key_transparency_8bit(tmp_path):
    rgb = gradient()
    key = tuple(int(v) for v in rgb[10, 20])
    path = tmp_path / "key.png"
    Image.fromarray(rgb).save(path, transparency=key)
    loaded = load_image(path)
    assert loaded.alpha is not None
    assert np.array_equal(loaded.alpha == 0, np.all(rgb == key, axis=-1))


def test_grey_8bit_becomes_three_equal_channels(tmp_path):
    grey = gradient()[..., 0]
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    loaded = load_image(path)
    assert loaded.bit_depth == 8 and loaded.rgb.shape == (*grey.shape, 3)
    assert all(np.array_equal(loaded.rgb[..., c], grey) for c in range(3))


def test_grey_16bit_png_stays_16bit(tmp_path):
    grey = random16((9, 13))
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path)  # Pillow's I;16 writer
    loaded = load_image(path)
    assert loaded.bit_depth == 16 and loaded.rgb.dtype == np.uint16
    assert all(np.array_equal(loaded.rgb[..., c], grey) for c in range(3))
    assert np.array_equal(load_image(png16_bytes(grey, interlace=True)).rgb[..., 0], grey)


def test_grey_alpha_and_bmp(tmp_path):
    la = np.dstack([gradient()[..., 0], gradient()[..., 1]])
    Image.merge("LA", [Image.fromarray(la[..., 0]), Image.fromarray(la[..., 1])]).save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")
    assert np.array_equal(loaded.rgb[..., 2], la[..., 0]) and np.array_equal(loaded.alpha, la[..., 1])
    Image.fromarray(gradient()).save(tmp_path / "x.bmp")
    bmp = load_image(tmp_path / "x.bmp")
    assert bmp.format == "BMP" and np.array_equal(bmp.rgb, gradient())


def test_load_from_bytes_and_pil_image(tmp_path):
    rgb = gradient()
    path = save_image(tmp_path / "b.png", rgb)
    from_bytes = load_image(path.read_bytes())
    assert from_bytes.path is None and from_bytes.format == "PNG" and np.array_equal(from_bytes.rgb, rgb)
    pil = Image.fromarray(rgb).convert("P")
    from_pil = load_image(pil)
    assert from_pil.path is None and from_pil.format == "" and from_pil.rgb.shape == rgb.shape
    assert np.array_equal(from_pil.rgb, np.asarray(pil.convert("RGB")))
    with Image.open(path) as opened:
        assert np.array_equal(load_image(opened).rgb, rgb)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(path, quality=95)
    loaded = load_image(path)
    assert loaded.rgb.shape == (12, 16, 3) and loaded.bit_depth == 8
    red = loaded.rgb.reshape(-1, 3).mean(axis=0)
    assert red[0] > 230 and red[1] < 25 and red[2] < 25


def test_cmyk_with_broken_icc_falls_back(tmp_path):
    path = tmp_path / "cmyk_icc.jpg"
    Image.new("CMYK", (8, 8), (255, 0, 255, 0)).save(path, icc_profile=b"garbage profile")
    loaded = load_image(path)
    green = loaded.rgb.reshape(-1, 3).mean(axis=0)
    assert green[1] > 230 and green[0] < 25 and green[2] < 25
    assert loaded.icc_profile is None  # a CMYK profile no longer describes RGB pixels


# --------------------------------------------------------------------------- EXIF orientation


def test_jpeg_orientation_6_is_applied_once(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = (255, 0, 0)  # left half red
    rgb[:, 20:] = (0, 0, 255)  # right half blue
    path = tmp_path / "rot.jpg"
    Image.fromarray(rgb).save(path, exif=make_exif(6), quality=95)
    loaded = load_image(path)
    assert loaded.rgb.shape == (40, 20, 3)  # rotated 90 degrees clockwise: left half is now on top
    assert loaded.rgb[5, 10, 0] > 200 and loaded.rgb[5, 10, 2] < 60
    assert loaded.rgb[35, 10, 2] > 200 and loaded.rgb[35, 10, 0] < 60
    with Image.open(path) as img:
        assert np.array_equal(loaded.rgb, np.asarray(ImageOps.exif_transpose(img)))
    tags = exif_tags(loaded.exif)
    assert tags[0x0112] == 1 and tags[0x010F] == "TestMake"
    assert loaded.exif.startswith(b"Exif\x00\x00")

    again = load_image(save_image(tmp_path / "again.jpg", loaded.rgb, exif=loaded.exif))
    assert again.rgb.shape == (40, 20, 3)  # not rotated a second time


def test_save_writes_orientation_1(tmp_path):
    """Pixels are saved upright, so a given EXIF orientation must not rotate them again."""
    loaded = load_image(save_image(tmp_path / "up.jpg", gradient(), exif=make_exif(6)))
    assert loaded.rgb.shape == (48, 64, 3)
    tags = exif_tags(loaded.exif)
    assert tags[0x0112] == 1 and tags[0x010F] == "TestMake"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(tmp_path, orientation):
    rgb = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "o.png"
    Image.fromarray(rgb).save(path, exif=make_exif(orientation))
    loaded = load_image(path)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img))
    assert np.array_equal(loaded.rgb, expected)
    assert exif_tags(loaded.exif)[0x0112] == 1


def test_16bit_orientation_applied_to_rgb_and_alpha():
    pixels = random16((6, 9, 4))
    rgb, alpha = pixels[..., :3], pixels[..., 3]
    exif_chunk = png_chunk(b"eXIf", make_exif(8)[len(b"Exif\x00\x00") :])
    loaded = load_image(png16_bytes(pixels, extra_chunks=exif_chunk))
    assert np.array_equal(loaded.rgb, np.rot90(rgb, 1)) and np.array_equal(loaded.alpha, np.rot90(alpha, 1))
    assert loaded.rgb.flags["C_CONTIGUOUS"] and loaded.alpha.flags["C_CONTIGUOUS"]


# --------------------------------------------------------------------------- ICC and text


@pytest.mark.parametrize("name", ["i.png", "i.jpg", "i.webp", "i.tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_icc_profile_kept(tmp_path, name, dtype):
    icc = icc_bytes()
    loaded = load_image(save_image(tmp_path / name, gradient(dtype=dtype), icc_profile=icc))
    assert loaded.icc_profile == icc


@pytest.mark.parametrize("name", ["t.png", "t.jpg", "t.tif", "t.webp"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_text_round_trip(tmp_path, name, dtype):
    recipe = json.dumps({"version": 1, "params": {"exposure": 0.25}, "note": "café ☀"})
    text = {RECIPE_TEXT_KEY: recipe, "Software": "lib_enhancer", "Comment": "ünïcödé ✓"}
    path = save_image(tmp_path / name, gradient(dtype=dtype), text=text)
    assert read_embedded_text(path) == text
    assert load_image(path).text == text
    assert json.loads(read_embedded_text(path)[RECIPE_TEXT_KEY]) == json.loads(recipe)


def test_foreign_jpeg_comment_and_no_text(tmp_path):
    path = tmp_path / "c.jpg"
    Image.fromarray(gradient()).save(path, comment=b"shot on a potato")
    assert read_embedded_text(path) == {"comment": "shot on a potato"}
    assert read_embedded_text(save_image(tmp_path / "plain.png", gradient())) == {}


def test_read_embedded_text_does_not_decode_pixels(tmp_path):
    """Text after IDAT is found even when the pixel data is garbage."""
    data = png16_bytes(random16((4, 4, 3)), extra_chunks=png_chunk(b"tEXt", b"late\0after pixels"))
    idat_start = data.index(b"IDAT") + 4
    corrupt = data[:idat_start] + b"\x00" * 8 + data[idat_start + 8 :]
    path = tmp_path / "late.png"
    path.write_bytes(corrupt)
    assert read_embedded_text(path) == {"late": "after pixels"}
    with pytest.raises(ImageInputError):
        load_image(path)


def test_text_validation():
    with pytest.raises(ValueError):
        save_image("unused.png", gradient(), text={"": "empty key"})
    with pytest.raises(TypeError):
        save_image("unused.png", gradient(), text={"k": 3})


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(ImageInputError) as excinfo:
        load_image(tmp_path / "nope.jpg")
    assert_input_error(excinfo, "nope.jpg", "not found")


def test_directory(tmp_path):
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageInputError) as excinfo:
        load_image(tmp_path / "folder.png")
    assert_input_error(excinfo, "folder.png", "directory")


def test_zero_byte_file_and_empty_bytes(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageInputError) as excinfo:
        load_image(tmp_path / "empty.png")
    assert_input_error(excinfo, "empty.png", "empty")
    with pytest.raises(ImageInputError):
        load_image(b"")


def test_text_file_is_not_an_image(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello, I am not a picture\n" * 10)
    with pytest.raises(ImageInputError) as excinfo:
        load_image(tmp_path / "notes.jpg")
    assert_input_error(excinfo, "notes.jpg", "not a recognised image")
    with pytest.raises(ImageInputError) as excinfo:
        read_embedded_text(tmp_path / "notes.jpg")
    assert_input_error(excinfo, "notes.jpg")


@pytest.mark.parametrize("name", ["trunc.jpg", "trunc.png"])
def test_truncated_files(tmp_path, name):
    noise = np.random.default_rng(RNG_SEED).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = save_image(tmp_path / f"full_{name}", noise).read_bytes()
    (tmp_path / name).write_bytes(full[: len(full) * 2 // 3])
    with pytest.raises(ImageInputError) as excinfo:
        load_image(tmp_path / name)
    assert_input_error(excinfo, name, "truncated")


def test_truncated_rejected_even_if_pillow_is_lenient(tmp_path, monkeypatch):
    noise = np.random.default_rng(RNG_SEED).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = save_image(tmp_path / "full.jpg", noise).read_bytes()
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageInputError):
        load_image(full[: len(full) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_decompression_bomb_by_max_pixels(tmp_path):
    path = save_image(tmp_path / "big.png", gradient())
    with pytest.raises(ImageInputError) as excinfo:
        load_image(path, max_pixels=1000)
    assert_input_error(excinfo, "big.png", "decompression bomb", "limit")
    assert load_image(path, max_pixels=48 * 64).rgb.shape == (48, 64, 3)


def test_decompression_bomb_by_pillow_guard(tmp_path, monkeypatch):
    path = save_image(tmp_path / "bomb.png", gradient())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageInputError) as excinfo:
        load_image(path)
    assert_input_error(excinfo, "bomb.png", "decompression bomb")


@pytest.mark.parametrize("name", ["anim.gif", "anim.png"])
def test_animated_rejected(tmp_path, name):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageInputError) as excinfo:
        load_image(tmp_path / name)
    assert_input_error(excinfo, name, "animated images are not supported")


def test_unsupported_modes(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(ImageInputError) as excinfo:
        load_image(tmp_path / "float.tif")
    assert_input_error(excinfo, "float.tif", "unsupported colour mode 'F'")
    Image.fromarray(np.full((4, 4), 100_000, np.int32)).save(tmp_path / "int32.tif")
    with pytest.raises(ImageInputError) as excinfo:
        load_image(tmp_path / "int32.tif")
    assert_input_error(excinfo, "int32.tif", "unsupported colour mode 'I'")


# --------------------------------------------------------------------------- atomic writing


def test_save_creates_parents_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "out.png"
    assert save_image(target, gradient()) == target
    assert listing(target.parent) == ["out.png"]
    save_image(tmp_path / "a" / "b" / "deep.tif", gradient(dtype=np.uint16))
    assert listing(target.parent) == ["deep.tif", "out.png"]


def test_existing_file_refused_without_overwrite(tmp_path):
    target = tmp_path / "keep.png"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError) as excinfo:
        save_image(target, gradient())
    assert str(target) in str(excinfo.value)
    assert target.read_bytes() == b"precious" and listing(tmp_path) == ["keep.png"]
    save_image(target, gradient(), overwrite=True)
    assert np.array_equal(load_image(target).rgb, gradient())
    assert listing(tmp_path) == ["keep.png"]


def test_failed_write_leaves_existing_file_untouched(tmp_path, monkeypatch):
    target = tmp_path / "keep.jpg"
    target.write_bytes(b"precious")

    def exploding_save(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(Image.Image, "save", exploding_save)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        save_image(target, gradient(), overwrite=True)
    with pytest.raises(RuntimeError):
        save_image(tmp_path / "new.png", gradient())
    assert target.read_bytes() == b"precious"
    assert listing(tmp_path) == ["keep.jpg"]


def test_failed_16bit_write_cleans_up(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise MemoryError("out of memory while encoding")

    monkeypatch.setattr(imageio, "_encode_png16", boom)
    with pytest.raises(MemoryError):
        save_image(tmp_path / "x.png", gradient(dtype=np.uint16))
    assert listing(tmp_path) == []


def test_save_validation(tmp_path):
    with pytest.raises(TypeError):
        save_image(tmp_path / "f.png", gradient().astype(np.float32))
    with pytest.raises(ValueError):
        save_image(tmp_path / "g.png", gradient()[..., 0])
    with pytest.raises(TypeError):
        save_image(tmp_path / "h.png", gradient(), alpha=np.zeros((48, 64), np.uint16))
    with pytest.raises(ValueError):
        save_image(tmp_path / "i.gif", gradient())
    assert save_image(tmp_path / "noext", gradient(), format="jpg").exists()
    assert load_image(tmp_path / "noext").format == "JPEG"
    assert listing(tmp_path) == ["noext"]


def test_16bit_to_jpeg_and_webp_is_rounded_to_8bit(tmp_path):
    rgb16 = gradient(dtype=np.uint16)
    for name in ("r.jpg", "r.webp"):
        loaded = load_image(save_image(tmp_path / name, rgb16))
        assert loaded.bit_depth == 8
        assert np.abs(loaded.rgb.astype(int) - gradient().astype(int)).mean() < 3


def test_written_png16_is_valid_for_other_readers(tmp_path):
    """Pillow reads our 16-bit PNG (CRCs correct) with the same high bytes."""
    rgb = random16((7, 11, 3))
    path = save_image(tmp_path / "p.png", rgb, icc_profile=icc_bytes(), text={"k": "v"}, exif=make_exif(1))
    with Image.open(path) as img:
        img.load()
        assert img.mode == "RGB" and img.info["icc_profile"] == icc_bytes()
        assert np.array_equal(np.asarray(img), (rgb >> 8).astype(np.uint8))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        body = data[offset + 4 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(body) == crc
        offset += 12 + length
    assert offset == len(data)


def test_buffer_source_is_not_confused_with_path():
    data = io.BytesIO()
    Image.fromarray(gradient()).save(data, format="PNG")
    assert load_image(bytearray(data.getvalue())).rgb.shape == (48, 64, 3)
