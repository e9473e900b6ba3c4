"""Photos from phones and the web: orientation, bit depths, palettes, alpha, broken and huge files."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image
from test_predict import ASTRONAUT
from test_recognizer import inside_face_region

from keras_fer.faces import images as faces_module
from keras_fer import predict
from keras_fer.faces import ImageError, read_image

RGB = cv2.cvtColor(cv2.imread(ASTRONAUT), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def recognizer():
    from keras_fer.recognizer import FaceExpressionRecognizer

    return FaceExpressionRecognizer()


def write_exif_rotated_jpeg(path):
    """The photo stored turned a quarter left, with EXIF orientation 6 (display turned right), as phones do."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(RGB, 1))).save(path, "JPEG", quality=95, exif=exif.tobytes())


def huge_png(side):
    """An 8-bit gray PNG of side x side black pixels, written row by row (never held whole in memory)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def test_a_phone_photo_with_exif_orientation_is_read_upright(tmp_path, recognizer):
    path = tmp_path / "phone.jpg"
    write_exif_rotated_jpeg(path)
    assert Image.open(path).size == (512, 512) and np.rot90(RGB, 1).shape[:2] == (512, 512)
    upright = read_image(str(path))
    assert np.abs(upright[..., ::-1].astype(int) - RGB).mean() < 6  # JPEG error only, not a turned photo
    (face,) = recognizer(str(path))
    assert inside_face_region(face.box)


@pytest.mark.parametrize("kind", ["rgb16", "gray16", "palette", "rgba", "gray", "la"])
def test_png_bit_depths_palettes_and_alpha_find_the_face(tmp_path, recognizer, kind):
    path = tmp_path / f"{kind}.png"
    if kind == "rgb16":
        cv2.imwrite(str(path), RGB[..., ::-1].astype(np.uint16) * 257)
    elif kind == "gray16":
        cv2.imwrite(str(path), cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    else:
        Image.fromarray(RGB).convert({"palette": "P", "rgba": "RGBA", "gray": "L", "la": "LA"}[kind]).save(path)
    image = read_image(str(path))
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3)
    (face,) = recognizer(str(path))
    assert inside_face_region(face.box)


def test_broken_files_get_one_clear_line_each_and_the_others_still_run(tmp_path, capsys):
    encoded = cv2.imencode(".jpg", RGB[..., ::-1])[1].tobytes()
    (tmp_path / "truncated.jpg").write_bytes(encoded[: len(encoded) // 3])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not an image, whatever the extension says\n")
    paths = [str(tmp_path / name) for name in ("truncated.jpg", "empty.jpg", "notes.jpg")]
    status = predict.main([paths[0], ASTRONAUT, paths[1], paths[2]])
    captured = capsys.readouterr()
    assert status == 1
    assert [line for line in captured.out.splitlines() if ASTRONAUT in line]  # the good photo was labelled
    errors = captured.err.splitlines()
    assert f"error: {paths[0]}: cannot decode the image (truncated or damaged" in errors[0]
    assert errors[1] == f"error: {paths[1]}: the file is empty (0 bytes)."
    assert errors[2].startswith(f"error: {paths[2]}: cannot decode the image")
    assert errors[3] == "3 of 4 inputs failed."


def test_a_huge_png_is_refused_from_its_header_without_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(huge_png(20_000))  # 400 megapixels: 1.2 GB as BGR if decoded
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ImageError, match=r"huge\.png: the image is far larger than the 50 megapixels"):
        read_image(str(path))


def test_a_large_png_is_refused_and_a_large_jpeg_read_at_a_reduced_size(tmp_path, monkeypatch):
    # The astronaut is 512 x 512 = 262,144 pixels; a limit of 100,000 makes her "too large".
    monkeypatch.setattr(faces_module, "MAX_IMAGE_PIXELS", 100_000)
    png, jpeg = tmp_path / "large.png", tmp_path / "large.jpg"
    cv2.imwrite(str(png), RGB[..., ::-1])
    cv2.imwrite(str(jpeg), RGB[..., ::-1])
    with pytest.raises(ImageError, match=r"large\.png: the image is 512 x 512 pixels \(0 megapixels\), more than"):
        read_image(str(png))
    assert read_image(str(jpeg)).shape == (256, 256, 3)  # 1/2 a side: 65,536 pixels


def test_header_size_reads_the_size_without_the_pixels():
    encoded = np.frombuffer(huge_png(3000), np.uint8)
    assert faces_module.header_size("x.png", encoded) == (3000, 3000)
    assert faces_module.header_size("x.txt", np.frombuffer(b"plain text", np.uint8)) is None
