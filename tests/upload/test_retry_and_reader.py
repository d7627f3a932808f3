"""What waits out an outage and what reads a stored recording back: `is_transient` tells a
wait-curable failure from a refusal, `Retrier` backs off exponentially with full jitter and
gives up in one sentence, and `S3ObjectReader` reads any range of a real object in bounded
memory, failing if the object changes under it."""

import io
import threading

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from upload.errors import UploadError
from upload.retry import Retrier, is_transient
from upload.s3file import S3ObjectReader
from upload.storage import StorageSettings


def client_error(code, status):
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize("err, transient", [
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
    (client_error("SlowDown", 503), True),
    (client_error("InternalError", 500), True),
    (client_error("WhoKnows", 502), True),  # any 5xx
    (ConnectionResetError(), True),
    (TimeoutError(), True),
    (client_error("AccessDenied", 403), False),
    (client_error("NoSuchBucket", 404), False),
    (client_error("SignatureDoesNotMatch", 403), False),
    (ValueError("a bug"), False),
])
def test_only_what_a_wait_can_cure_is_transient(err, transient):
    assert is_transient(err) is transient
    wrapped = UploadError("one sentence")  # as storage.explain raises it, from the botocore error
    wrapped.__cause__ = err
    assert is_transient(wrapped) is transient


class RecordedWaits(threading.Event):
    """The retrier's stop event, recording each wait instead of sleeping (never set)."""

    def __init__(self):
        super().__init__()
        self.waits = []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        return False


def failing(times, err):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= times:
            raise err
        return "done"

    return fn, calls


def test_backoff_doubles_up_to_its_cap_with_full_jitter(monkeypatch):
    stop = RecordedWaits()
    retrier = Retrier(give_up_after_s=60, first_wait_s=0.5, max_wait_s=3.0, stop=stop)
    # the top of each jitter range: 0.5 × 2^attempt, capped at 3 s
    monkeypatch.setattr("upload.retry.random.uniform", lambda low, high: high)
    fn, calls = failing(5, client_error("SlowDown", 503))
    assert retrier.call("put a part", fn) == "done"
    assert stop.waits == [1.0, 2.0, 3.0, 3.0, 3.0] and len(calls) == 6
    assert (retrier.outages.retries, retrier.outages.outages, retrier.outages.current_since) == (5, 1, None)
    assert retrier.outages.log[0]["error"] and retrier.outages.last_success is not None
    # and each wait is drawn from the whole range, from 0 up to that top
    monkeypatch.undo()
    stop.waits.clear()
    fn, _ = failing(200, client_error("SlowDown", 503))
    retrier.call("put a part", fn)
    assert all(0 <= w <= 3.0 for w in stop.waits) and min(stop.waits) < 0.5 < max(stop.waits[5:])


def test_a_refusal_is_raised_at_once_without_waiting():
    stop = RecordedWaits()
    fn, calls = failing(1, client_error("AccessDenied", 403))
    with pytest.raises(ClientError):
        Retrier(stop=stop).call("put a part", fn)
    assert len(calls) == 1 and stop.waits == []


def test_an_outage_longer_than_the_limit_gives_up_in_one_sentence():
    retrier = Retrier(give_up_after_s=0.2, first_wait_s=0.01, max_wait_s=0.02)
    fn, calls = failing(10_000, EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    with pytest.raises(UploadError, match=r"Storage stayed unreachable for \d+ s while trying to put a part; gave up"):
        retrier.call("put a part", fn)
    assert len(calls) > 2 and retrier.outages.longest_s >= 0.2 and retrier.outages.current_since is None


@pytest.fixture
def settings(seaweed):
    return StorageSettings(endpoint_url=seaweed.endpoint, access_key=seaweed.access_key, secret_key=seaweed.secret_key)


def test_the_reader_reads_any_range_of_a_stored_object_holding_only_a_few_chunks(s3, bucket, settings):
    data = bytes(range(256)) * 4000 + b"tail"  # 1,024,004 bytes
    s3.put_object(Bucket=bucket, Key="r/video.mp4", Body=data)
    reader = S3ObjectReader(s3, settings, bucket, "r/video.mp4", chunk_size=64 * 1024, cache_chunks=2)
    assert reader.size == len(data) and reader.seekable()
    assert reader.read(10) == data[:10]
    reader.seek(-4, io.SEEK_END)
    assert reader.read() == b"tail" and reader.read(5) == b""
    reader.seek(300_000)
    assert reader.read(200_000) == data[300_000:500_000]  # across four chunks
    assert len(reader._chunks) <= 2  # memory stays at cache_chunks × chunk_size
    reader.seek(0)
    assert io.BufferedReader(reader).read() == data
    assert reader.bytes_fetched >= len(data)


def test_the_reader_refuses_an_object_that_changed_under_it(s3, bucket, settings):
    s3.put_object(Bucket=bucket, Key="r/video.mp4", Body=b"a" * 200_000)
    reader = S3ObjectReader(s3, settings, bucket, "r/video.mp4", chunk_size=64 * 1024,
                            retrier=Retrier(give_up_after_s=0))
    assert reader.read(5) == b"aaaaa"
    s3.put_object(Bucket=bucket, Key="r/video.mp4", Body=b"b" * 200_000)  # replaced mid-read
    reader.seek(150_000)
    with pytest.raises(UploadError):
        reader.read(10)
