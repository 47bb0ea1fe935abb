#!/usr/bin/env python3
"""Writes the hand-crafted bad images in img/ (run from anywhere; needs only
the Python standard library). Every file is built here byte by byte: none
comes from elsewhere. Files named ok_* are malformed in a way the decoder
is meant to tolerate and must still be accepted; all others must be refused
with a one-line error. Truncated copies of real encoder output are made at
test time by tests/bad_input.sh, not stored here."""
import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "img")


def put(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


# ---- PNG -------------------------------------------------------------------
SIG = b"\x89PNG\r\n\x1a\n"


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def ihdr(w, h, depth=8, colour=2):
    return chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))


def idat_rgb(w, h):
    raw = b"".join(b"\x00" + bytes((x * 37 + y * 11) & 255 for x in range(3 * w)) for y in range(h))
    return chunk(b"IDAT", zlib.compress(raw))


IEND = chunk(b"IEND", b"")

put("png_100000x100000.png", SIG + ihdr(100000, 100000) + IEND)
put("png_0x0.png", SIG + ihdr(0, 0) + IEND)
put("png_40000x1.png", SIG + ihdr(40000, 1) + IEND)           # side over 32768
put("png_8193x8192.png", SIG + ihdr(8193, 8192) + IEND)       # just over 64 Mpixel
put("png_4294967295x1.png", SIG + ihdr(0xFFFFFFFF, 1) + IEND)  # width as uint32 max
put("png_no_idat.png", SIG + ihdr(4, 4) + IEND)
put("png_ihdr_cut.png", (SIG + ihdr(4, 4))[:20])
put("png_signature_only.png", SIG)
put("png_bad_zlib.png", SIG + ihdr(4, 4) + chunk(b"IDAT", b"\x78\x9c" + b"\xde\xad\xbe\xef" * 8) + IEND)
put("png_idat_short.png", SIG + ihdr(4, 4) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + IEND)
put("png_bad_depth.png", SIG + ihdr(4, 4, depth=7) + idat_rgb(4, 4) + IEND)
put("png_chunk_len_huge.png", SIG + ihdr(4, 4) + struct.pack(">I", 0x7FFFFFF0) + b"IDAT" + b"\x00" * 16)
# an eXIf chunk whose TIFF offsets point far outside it, and no pixel data
tiff_bad = b"II*\x00" + struct.pack("<I", 0xFFFFFFF0) + b"\x00" * 8
put("png_exif_bad_no_idat.png", SIG + ihdr(4, 4) + chunk(b"eXIf", tiff_bad) + IEND)
# a whole, valid 4x4 PNG with garbage EXIF: the EXIF must be ignored
tiff_loop = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 0xFFFF) + b"\x01\x12\x00\x03"
put("ok_png_exif_garbage.png", SIG + ihdr(4, 4) + chunk(b"eXIf", tiff_loop) + idat_rgb(4, 4) + IEND)


# ---- BMP -------------------------------------------------------------------
def bmp(w, h, bpp=24, comp=0, pixels=b"", offset=54, hsize=40, extra=b"", size=None):
    info = struct.pack("<IiiHHIIiiII", hsize, w, h, 1, bpp, comp, len(pixels), 2835, 2835, 0, 0)
    body = info + extra + pixels
    head = b"BM" + struct.pack("<IHHI", size if size is not None else 14 + len(body), 0, 0, offset)
    return head + body


put("bmp_100000x100000.bmp", bmp(100000, 100000))
put("bmp_0x0.bmp", bmp(0, 0))
put("bmp_negative_width.bmp", bmp(-16, 16, pixels=b"\x00" * 768))
put("bmp_height_int_min.bmp", bmp(16, -2147483648))
put("bmp_truncated_pixels.bmp", bmp(16, 16, pixels=b"\x7f" * 10))
put("bmp16_truncated_pixels.bmp", bmp(16, 16, bpp=16, pixels=b"\x7f" * 10))
put("bmp16_bitfields_cut.bmp", bmp(2, 2, bpp=16, comp=3, pixels=b"\x00" * 8))
put("bmp_bpp7.bmp", bmp(4, 4, bpp=7, pixels=b"\x00" * 16))
put("bmp_rle8.bmp", bmp(4, 4, bpp=8, comp=1, pixels=b"\x00" * 16))
put("bmp_offset_past_end.bmp", bmp(4, 4, pixels=b"\x00" * 48, offset=0xFFFFFFF0))
put("bmp_8bpp_no_palette.bmp", bmp(4, 4, bpp=8, pixels=b"\x00" * 16))
put("bmp32_zero_masks.bmp", bmp(2, 2, bpp=32, comp=3, extra=b"\x00" * 12, offset=66, pixels=b"\xff" * 16))
put("bmp_header_size_bogus.bmp", bmp(4, 4, hsize=0xFFFFFFFF, pixels=b"\x00" * 48))
put("bmp_header_cut.bmp", bmp(4, 4)[:22])
put("bmp_magic_only.bmp", b"BM")

# ---- PPM / PGM -------------------------------------------------------------
put("ppm_100000x100000.ppm", b"P6\n100000 100000\n255\n" + b"\x00" * 12)
put("ppm_0x0.ppm", b"P6\n0 0\n255\n")
put("ppm_maxval_0.ppm", b"P6\n2 2\n0\n" + b"\x00" * 12)
put("ppm_maxval_70000.ppm", b"P6\n2 2\n70000\n" + b"\x00" * 24)
put("ppm_truncated.ppm", b"P6\n4 4\n255\n" + b"\x10" * 5)
put("ppm16_truncated.ppm", b"P6\n2 2\n65535\n" + b"\x10" * 12)
put("ppm_magic_only.ppm", b"P6")
put("ppm_header_cut.ppm", b"P6\n4 4\n")
put("ppm_10_digit_width.ppm", b"P6\n1234567890 1\n255\n" + b"\x00" * 3)
put("ppm_negative_width.ppm", b"P6\n-4 4\n255\n" + b"\x00" * 48)
put("ppm_no_space_after_maxval.ppm", b"P6\n1 1\n255")
put("ppm_comment_to_eof.ppm", b"P6\n# a comment that never ends")
put("pgm_ascii_p2.pgm", b"P2\n2 2\n255\n0 1\n2 3\n")
put("ppm_ascii_p3.ppm", b"P3\n1 1\n255\n0 0 0\n")


# ---- JPEG ------------------------------------------------------------------
def seg(marker, data):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data


def sof(w, h):
    return seg(0xC0, struct.pack(">BHHB", 8, h, w, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00")


SOS = seg(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00")
SOI, EOI = b"\xff\xd8", b"\xff\xd9"
put("jpeg_40000x40000.jpg", SOI + sof(40000, 40000) + SOS + b"\x00" * 16 + EOI)
put("jpeg_30000x30000.jpg", SOI + sof(30000, 30000) + SOS + b"\x00" * 16 + EOI)
put("jpeg_65535x65535.jpg", SOI + sof(65535, 65535) + SOS + b"\x00" * 16 + EOI)
put("jpeg_0x0.jpg", SOI + sof(0, 0) + SOS + b"\x00" * 16 + EOI)
put("jpeg_soi_only.jpg", b"\xff\xd8\xff")
put("jpeg_no_tables.jpg", SOI + sof(8, 8) + SOS + b"\x00" * 64 + EOI)
put("jpeg_segment_len_past_end.jpg", SOI + b"\xff\xe0\xff\xf0JFIF\x00")
exif_far = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 0xFFFFFFF0)
exif_many = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 0xFFFF) + b"\x01\x12"
put("jpeg_exif_offset_far.jpg", SOI + seg(0xE1, exif_far) + sof(8, 8) + SOS + b"\x00" * 64 + EOI)
put("jpeg_exif_count_huge.jpg", SOI + seg(0xE1, exif_many) + sof(8, 8) + SOS + b"\x00" * 64 + EOI)

# ---- not images ------------------------------------------------------------
put("empty.jpg", b"")
put("text.jpg", b"This is a text file with a .jpg name; it is not an image.\n")
put("html.png", b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
put("gif89a.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
put("elf_header.bmp", b"\x7fELF\x02\x01\x01" + b"\x00" * 57)
