"""load_image: the paper's resize-and-crop, and a defined fate for every awkward file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from alexnet.data.image_file import BadImage, decode_image, load_image
from helpers.images import gradient, png16_rgb, png_header_only, reference, save


def test_matches_pil_reference_on_generated_jpeg(tmp_path):
    path = save(tmp_path / "a.jpg", gradient(400, 300), quality=95)
    out = load_image(path, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - reference(path, 64)).mean() < 1.0


def test_matches_pil_reference_on_real_imagenet_files(imagenet_samples):
    files = sorted(imagenet_samples.iterdir())[::50]  # 15 files, all sizes and modes
    errors = [np.abs(load_image(f, 256).astype(int) - reference(f, 256)).mean() for f in files]
    assert max(errors) < 1.0, errors


def test_greyscale_is_converted_and_kept(tmp_path):
    path = save(tmp_path / "grey.jpg", gradient(80, 60), mode="L")
    out, notes = decode_image(path, 32)
    assert out.shape == (32, 32, 3) and "greyscale" in notes[0]
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_cmyk_is_converted(tmp_path):
    path = save(tmp_path / "cmyk.jpg", gradient(60, 60), mode="CMYK", quality=95)
    out, notes = decode_image(path, 32)
    assert "CMYK" in notes[0]
    assert np.abs(out.astype(int) - reference(path, 32)).mean() < 1.0


def test_palette_is_converted(tmp_path):
    path = save(tmp_path / "pal.png", gradient(50, 50), mode="P")
    out, notes = decode_image(path, 32)
    assert "palette" in notes[0] and out.shape == (32, 32, 3)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200           # red where opaque
    rgba[:, 20:, 3] = 255        # left half fully transparent, right half opaque
    path = save(tmp_path / "alpha.png", rgba)
    out, notes = decode_image(path, 40)
    assert "composited on white" in notes[0]
    assert (out[:, :18] == 255).all()
    assert (out[:, 22:] == [200, 0, 0]).all()


def test_transparent_palette_is_composited(tmp_path):
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    path = tmp_path / "ptrans.png"
    image.save(path, transparency=0)
    out, notes = decode_image(path, 20)
    assert (out == 255).all() and any("composited" in n for n in notes)


def test_16bit_greyscale_is_scaled_not_clipped(tmp_path):
    grey = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    path = tmp_path / "g16.png"
    Image.fromarray(grey).save(path)
    out, notes = decode_image(path, 64)
    assert "scaled to 8 bits" in notes[0]
    expected = np.rint(grey / 257.0)
    assert np.abs(out[..., 0].astype(int) - expected).max() <= 2
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255
    assert (out[..., 0] < 255).mean() > 0.9   # clipping would make almost all of it 255


def test_16bit_rgb_is_scaled_not_clipped(tmp_path):
    rgb16 = np.zeros((16, 16, 3), np.uint16)
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 32896, 1000
    out = load_image(png16_rgb(tmp_path / "rgb16.png", rgb16), 16)
    assert (out == [255, 128, 3]).all()


def test_png_behind_jpeg_name_is_kept(tmp_path):
    path = save(tmp_path / "disguised.JPEG", gradient(50, 40), format="PNG")
    out, notes = decode_image(path, 32)
    assert "PNG data behind a .JPEG name" in notes[0]
    assert np.abs(out.astype(int) - reference(path, 32)).mean() < 1.0


def test_tiny_image_is_upscaled(tmp_path):
    path = save(tmp_path / "tiny.png", gradient(3, 2))
    out, notes = decode_image(path, 64)
    assert out.shape == (64, 64, 3) and "tiny" in notes[0]


def test_panorama_keeps_its_centre(tmp_path):
    pano = gradient(3000, 40)
    path = save(tmp_path / "pano.png", pano)
    out, notes = decode_image(path, 32)
    assert "panoramic" in notes[0]
    assert np.abs(out.astype(int) - reference(path, 32)).mean() < 1.0


def test_truncated_file_is_refused(tmp_path):
    full = save(tmp_path / "full.jpg", gradient(300, 200)).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(full[:len(full) // 2])
    with pytest.raises(BadImage, match="truncated"):
        load_image(path, 32)


def test_empty_file_is_refused(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(BadImage, match="empty"):
        load_image(tmp_path / "empty.jpg", 32)


def test_undecodable_file_is_refused(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(BadImage, match="not a recognised image"):
        load_image(path, 32)


def test_corrupt_image_data_is_refused(tmp_path):
    data = bytearray(save(tmp_path / "ok.png", gradient(64, 64)).read_bytes())
    data[60:200] = b"\x00" * 140                 # inside the compressed pixel data
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(BadImage):
        load_image(tmp_path / "bad.png", 32)


def test_decompression_bomb_is_refused(tmp_path):
    path = png_header_only(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(BadImage, match="decompression bomb"):
        load_image(path, 32)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(BadImage, match="cannot read"):
        load_image(tmp_path / "nope.jpg", 32)


def test_large_jpeg_decoded_at_reduced_scale_still_matches(tmp_path):
    path = save(tmp_path / "big.jpg", gradient(1200, 1030), quality=90)  # decoded at 1/2
    out = load_image(path, 256)
    assert np.abs(out.astype(int) - reference(path, 256)).mean() < 1.0
