"""The demo catalog's product images: deterministic bytes, valid PNG, the gradient they promise."""

import hashlib
import struct
import zlib

from catalog.images import product_png


def test_same_seed_same_bytes_as_every_earlier_release():
    # Digests of the bytes the first implementation (a loop over every pixel) made: a demo catalog already on the
    # media servers keeps matching what a new deploy would upload.
    digest = hashlib.sha256()
    for i in range(1, 201):
        digest.update(product_png(f"SKU-{i:06d}"))
    assert digest.hexdigest() == "a75cfeb91c37ce1d01c578c965a80a289de0dac2baa4351f15de7024b3b06d52"
    assert hashlib.sha256(product_png("uploaded", 16)).hexdigest() == (
        "f2d623647ac8593947fa09f6435f8ba5c050973cbea690248d8363f0436526db")
    assert hashlib.sha256(product_png("x", 2)).hexdigest() == (
        "9ca459130bfe4d46be0b039f0013ec0f01d85c7dadb8c2bdf8dc9d0a37bc62a7")


def _pixels(png: bytes):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        chunks[kind] = data
        pos += 12 + length
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2) and set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + 3 * width
    assert len(raw) == stride * height
    rows = [raw[y * stride:(y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 for row in rows)
    return [[tuple(row[1 + 3 * x:4 + 3 * x]) for x in range(width)] for row in rows]


def test_a_diagonal_gradient_between_the_seeds_two_colours():
    for seed, size in [("SKU-000001", 64), ("SKU-004242", 64), ("uploaded", 16), ("x", 3)]:
        r0, g0, b0, r1, g1, b1 = hashlib.sha256(seed.encode()).digest()[:6]
        pixels = _pixels(product_png(seed, size))
        assert len(pixels) == size and all(len(row) == size for row in pixels)
        assert pixels[0][0] == (r0, g0, b0)
        assert pixels[-1][-1] == (r1, g1, b1)
        for y in range(size):
            for x in range(size):
                t = (x + y) / (2 * (size - 1))
                assert pixels[y][x] == (int(r0 + (r1 - r0) * t), int(g0 + (g1 - g0) * t), int(b0 + (b1 - b0) * t))
