"""The station microphone: ALSA devices and the test tone, read in chunks a pipeline can keep up with."""

import itertools

import numpy as np
import pytest

from capture.alsa import AlsaMicrophone
from capture.errors import CaptureError


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
