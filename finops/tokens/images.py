"""Image token costs from their pixel size, read offline from the image header.

Remote images (``https://...``) are never fetched: their size is unknown and estimates use
the family's worst case, flagged. Inline images (data URLs, base64 sources) have their
width and height read from the first bytes of the PNG, GIF, JPEG or WebP header.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct

from finops.tokens.models import ImageRule

__all__ = [
    "ANTHROPIC_IMAGE_MAX",
    "anthropic_image_tokens",
    "image_size",
    "openai_image_tokens",
    "openai_image_worst",
]

# Anthropic resizes images whose long edge exceeds 1568 px (≈1.15 megapixels): at most
# ~1600 tokens per image (docs: tokens ≈ width × height / 750).
ANTHROPIC_IMAGE_MAX = 1600
# Measured on recorded calls: an image block costs its pixel tokens plus a small frame.
ANTHROPIC_IMAGE_FRAME = 7
_PATCH_CAP = 1536


def openai_image_tokens(width: int, height: int, *, rule: ImageRule, detail: str = "auto") -> int:
    """OpenAI's documented vision cost for a ``width`` × ``height`` image.

    ``tile`` models: ``low`` detail costs the base; otherwise fit in 2048 × 2048, scale the
    short side down to 768, then ``base + tile × (512 px tiles)``. ``patch`` models: 32 px
    patches (at most 1536, shrinking the image to fit) × the model's multiplier.
    """
    if rule.kind == "patch":
        return _patch_tokens(width, height, rule.multiplier)
    if detail == "low":
        return rule.base
    w, h = float(width), float(height)
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return rule.base + rule.tile * math.ceil(w / 512) * math.ceil(h / 512)


def _patch_tokens(width: int, height: int, multiplier: float) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches > _PATCH_CAP:
        r = math.sqrt(32 * 32 * _PATCH_CAP / (width * height))
        r *= min(
            math.floor(width * r / 32) / (width * r / 32),
            math.floor(height * r / 32) / (height * r / 32),
        )
        patches = min(_PATCH_CAP, math.ceil(width * r / 32) * math.ceil(height * r / 32))
    return math.ceil(patches * multiplier)


def openai_image_worst(rule: ImageRule, *, detail: str = "auto") -> int:
    """The most an image of unknown size can cost (2048 × 768 → 8 tiles; 1536 patches)."""
    if rule.kind == "patch":
        return math.ceil(_PATCH_CAP * rule.multiplier)
    if detail == "low":
        return rule.base
    return rule.base + rule.tile * 8


def anthropic_image_tokens(width: int, height: int) -> int:
    """Anthropic's documented estimate ``w × h / 750`` after its resize, plus the frame."""
    w, h = float(width), float(height)
    scale = min(1.0, 1568 / max(w, h), math.sqrt(1_150_000 / (w * h)) if w * h else 1.0)
    pixels = (w * scale) * (h * scale)
    return min(ANTHROPIC_IMAGE_MAX, math.ceil(pixels / 750)) + ANTHROPIC_IMAGE_FRAME


def image_size(data: str) -> tuple[int, int] | None:
    """(width, height) of a base64 image or ``data:`` URL, or None if unknown/unreadable."""
    if data.startswith("data:"):
        comma = data.find(",")
        if comma < 0 or ";base64" not in data[:comma]:
            return None
        data = data[comma + 1 :]
    # Headers sit in the first bytes, except JPEG whose frame header may follow EXIF data.
    head = _b64(data[:64])
    if head is None:
        return None
    size = _fixed_header_size(head)
    if size is not None or not head.startswith(b"\xff\xd8"):
        return size
    for limit in (65_536, len(data)):
        raw = _b64(data[: limit - limit % 4])
        if raw is None:
            return None
        size = _jpeg_size(raw)
        if size is not None or limit >= len(data):
            return size
    return None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text[: len(text) - len(text) % 4])
    except (binascii.Error, ValueError):
        return None


def _fixed_header_size(head: bytes) -> tuple[int, int] | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return int(w), int(h)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8X":
            w = int.from_bytes(head[24:27], "little") + 1
            h = int.from_bytes(head[27:30], "little") + 1
            return w, h
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", head[26:30])
            return int(w) & 0x3FFF, int(h) & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(raw)
    while i + 9 < n:
        if raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(raw[i + 2 : i + 4], "big")
        # SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", raw[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None
