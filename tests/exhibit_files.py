"""Real exhibit files made in the test: PDFs by PDFium, pictures by Pillow."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pypdfium2 as pdfium
from PIL import Image

# Points (1/72 in): A4 portrait, A4 landscape, and a narrow receipt.
A4 = (595.0, 842.0)
A4_LANDSCAPE = (842.0, 595.0)
RECEIPT = (200.0, 600.0)


def pdf(*sizes: tuple[float, float]) -> bytes:
    """A valid PDF with one blank page of each size (default: three A4 pages)."""
    document = pdfium.PdfDocument.new()
    try:
        for width, height in sizes or (A4, A4, A4):
            document.new_page(width, height).close()
        out = io.BytesIO()
        document.save(out)
        return out.getvalue()
    finally:
        document.close()


def picture(kind: str, size: tuple[int, int] = (64, 48), exif_orientation: int | None = None
            ) -> bytes:
    """A PNG or JPEG of a red left half and a blue right half."""
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    if exif_orientation is None:
        image.save(out, kind)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(out, kind, exif=exif)
    return out.getvalue()


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    return picture("PNG", size)


def jpeg(size: tuple[int, int] = (64, 48), exif_orientation: int | None = None) -> bytes:
    return picture("JPEG", size, exif_orientation)


def decoded(data: bytes) -> Image.Image:
    """A PNG's image, fully decoded (a truncated or corrupt one raises)."""
    image = Image.open(io.BytesIO(data), formats=["PNG"])
    image.load()
    return image


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def repeated(head: bytes, filler: bytes, times: int) -> AsyncIterator[bytes]:
    yield head
    for _ in range(times):
        yield filler
