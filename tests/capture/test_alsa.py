"""The station microphone: ALSA devices and the test tone, read in chunks a pipeline can keep up with."""

import itertools
import time

import numpy as np
import pytest

from capture.alsa import AlsaMicrophone, WithMicrophone
from capture.errors import CaptureError
from capture.paced import PacedSource
from capture.testpattern import TestPattern
from capture.types import AudioChunk


@pytest.mark.parametrize("device", ["null", "testtone"])
def test_sound_comes_in_chunks_of_at_least_ten_milliseconds(device):
    """ALSA's `null` device hands over one sample at a time; a chunk each would be thousands a
    second for the microphone thread to queue, so they are joined."""
    microphone = AlsaMicrophone(device)
    try:
        chunks = list(itertools.islice(microphone.chunks(), 12))
    finally:
        microphone.close()
    assert all(samples.shape[0] == 2 and samples.dtype == np.float32 for _, samples in chunks)
    assert min(samples.shape[1] for _, samples in chunks) >= 480
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(chunks))  # arrival times in order


def test_the_test_tone_is_a_tone():
    microphone = AlsaMicrophone("testtone")
    try:
        sound = np.concatenate([samples for _, samples in itertools.islice(microphone.chunks(), 10)], axis=1)
    finally:
        microphone.close()
    spectrum = np.abs(np.fft.rfft(sound[0]))
    assert abs(np.argmax(spectrum) * 48000 / sound.shape[1] - 1000) < 10
    assert np.allclose(sound[0], sound[1])


def test_an_unknown_device_is_one_sentence():
    with pytest.raises(CaptureError, match=r"Cannot open the microphone 'hw:7,0'.*arecord -L"):
        AlsaMicrophone("hw:7,0")


class BurstyMicrophone:
    """Fault injection: a microphone whose 20 ms periods arrive in bursts of `burst` at once (a
    device's backlog after a stall), `lead` periods of them captured before the camera started."""

    sample_rate, layout, device = 48000, "stereo", "bursty"

    def __init__(self, burst, lead, periods):
        self.burst, self.lead, self.periods = burst, lead, periods

    def chunks(self):
        start = time.monotonic()
        for first in range(0, self.periods, self.burst):
            arrive = start + (first + self.burst - self.lead) * 0.02
            time.sleep(max(0.0, arrive - time.monotonic()))
            for k in range(first, min(first + self.burst, self.periods)):
                yield time.monotonic(), np.full((2, 960), k, np.float32)

    def close(self):
        pass


def test_sound_that_arrives_in_bursts_keeps_going_forward_and_starts_with_the_picture():
    # given a camera at 30 fps and a microphone whose sound arrives ten periods (200 ms) at a time,
    # the first burst holding 120 ms from before the first frame
    source = WithMicrophone(PacedSource(TestPattern(320, 180)), BurstyMicrophone(burst=10, lead=6, periods=90))
    chunks, frames = [], 0
    try:
        for item in source:
            if isinstance(item, AudioChunk):
                chunks.append(item)
            else:
                frames += 1
            if frames == 45:
                source.stop()
    finally:
        source.close()
    # then every chunk starts where the one before ended: never back onto sound already placed
    # (the muxer refuses that and the recording ends), and nothing from before the picture
    assert len(chunks) > 20
    assert chunks[0].pts == 0
    assert all(b.pts == a.pts + a.samples.shape[1] for a, b in itertools.pairwise(chunks))
    # and the sound before the picture was cut (periods 0-5; fewer when the machine is slow to
    # read the burst, which places it later), the rest kept
    assert 1 <= chunks[0].samples[0, 0] <= 6
