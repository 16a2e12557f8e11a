"""Still pictures of a participant's video as the server received it: the moment a clerk checks
an identity document held to the camera is kept as a JPEG.

Taken by the server from the stream itself (a fresh keyframe asked of the publisher), not sent
by a staff browser, so that the picture on the record is what the court actually received.
Decoding one keyframe and encoding it as JPEG takes a few milliseconds of CPU: it runs on a
thread of its own, never on the event loop.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from typing import cast

import av
from av.video.codeccontext import VideoCodecContext

from media.errors import NoPicture
from media.forwarding import EncodedFrame, Publication
from media.threads import start_thread

# A keyframe asked for arrives within a round trip and a frame interval, but a browser on a
# busy machine (its encoder starved) or behind a weak link takes seconds: one that sends none
# in this long has no picture to give (camera off, link down). 3 s was tight: on a starved
# machine the clerk's identity checks in the browser tests never showed "verified".
KEYFRAME_WAIT_S = 8.0
JPEG_QUALITY = 4  # the coarsest mjpeg quantiser allowed: 2 (best) .. 31
DECODERS = {"VP8": "vp8", "H264": "h264", "VP9": "vp9"}


async def take_still(publication: Publication, wait_s: float = KEYFRAME_WAIT_S) -> bytes:
    """A JPEG of the publisher's next keyframe (asked for now)."""
    if publication.kind != "video":
        raise NoPicture("a still is taken from video")
    frame = await publication.next_keyframe(wait_s)
    if frame is None:
        raise NoPicture("no picture arrived from the participant's camera")
    result: list[bytes | BaseException] = []

    def run() -> None:
        try:
            result.append(jpeg_of_keyframe(frame))
        except BaseException as e:  # handed to the loop below
            result.append(e)

    await start_thread(run, "still")
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise NoPicture(f"the picture could not be decoded: {outcome}") from outcome
    return outcome


def jpeg_of_keyframe(frame: EncodedFrame) -> bytes:
    """Decode one keyframe and encode it as a baseline JPEG (blocking)."""
    name = DECODERS.get(frame.codec.upper())
    if name is None:
        raise NoPicture(f"no decoder for {frame.codec}")
    decoder = cast(VideoCodecContext, av.CodecContext.create(name, "r"))
    pictures = decoder.decode(av.Packet(frame.data))
    with contextlib.suppress(av.error.EOFError):
        pictures += decoder.decode(None)
    if not pictures:
        raise NoPicture("the keyframe held no picture")
    picture = pictures[0]
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = picture.width, picture.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 30)
    # The encoder's quantiser kept at the fine end: small print on a card must stay legible.
    encoder.options = {"qmin": "2", "qmax": str(JPEG_QUALITY)}
    packets = encoder.encode(picture.reformat(format="yuvj420p"))
    packets += encoder.encode(None)
    return b"".join(bytes(p) for p in packets)

