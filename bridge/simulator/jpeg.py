"""JPEG coding for the emulated cameras, in the layout IP cameras send.

libjpeg (through Pillow), not FFmpeg's MJPEG encoder: FFmpeg codes 4:2:2 as luma 2x2 and chroma
1x2 samples, a layout no camera sends and RTP/JPEG (RFC 2435) has no type for; libjpeg writes
luma 2x1 and chroma 1x1, with the Annex K Huffman tables and separate luma and chroma DQT, as
camera firmware (built on libjpeg) does.
"""

from __future__ import annotations

import io
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray
from PIL import Image

# 4:2:2 (chroma halved across, full height) is what IP cameras send; 4:2:0 (halved both ways)
# what FFmpeg makes by default.
Chroma = Literal["4:2:2", "4:2:0"]

_Plane = NDArray[np.uint8]


def chroma_rows(chroma: Chroma) -> int:
    """Picture rows per chroma row: 1 for 4:2:2, 2 for 4:2:0."""
    if chroma not in get_args(Chroma):
        raise ValueError(f"chroma must be one of {get_args(Chroma)}, not {chroma!r}")
    return 1 if chroma == "4:2:2" else 2


def encode_jpeg(luma: _Plane, cb: _Plane, cr: _Plane, quality: int) -> bytes:
    """A baseline JPEG (FFD8 ... FFD9) of full-range YCbCr planes; chroma is half the luma's
    width and its full height (4:2:2) or half (4:2:0). ``quality`` is libjpeg's 1..100."""
    height, width = luma.shape
    rows = height // cb.shape[0]
    # Pillow takes full-resolution pixels and subsamples them itself; repeated chroma samples
    # average back to exactly themselves.
    pixels = np.empty((height // rows, rows, width // 2, 2, 3), dtype=np.uint8)
    pixels[..., 0] = luma.reshape(height // rows, rows, width // 2, 2)
    pixels[..., 1] = cb[:, None, :, None]
    pixels[..., 2] = cr[:, None, :, None]
    picture = Image.frombuffer("YCbCr", (width, height), pixels, "raw", "YCbCr", 0, 1)
    out = io.BytesIO()
    # Pillow's subsampling numbers happen to be the rows per chroma row: 1 4:2:2, 2 4:2:0.
    picture.save(out, "JPEG", quality=quality, subsampling=rows)
    return out.getvalue()
