"""A bounded load on the library's player: many readers at once, each asking for ranges of the
video over loopback the way a browser's `<video>` does, through the real `classcap library
serve`. Every answer must be the exact bytes, nothing may fail, and the server's memory must not
grow with the number of requests served (it holds at most one chunk per reader)."""

import random
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from library_served import PASSWORD, served, served_with  # noqa: F401  (the fixtures)

READERS = 48
ROUNDS = 9
LOADS = 4


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1)) / 1024


def signed_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    answer = client.post("/login", data={"user_id": "teacher-a", "password": PASSWORD, "csrf": token})
    assert answer.status_code == 303, answer.text
    return client


@pytest.mark.slow
def test_many_concurrent_range_readers_get_exact_bytes_without_errors_or_memory_growth(served, s3, bucket):
    url, made, server = served
    path = f"/r/{made['recording_id']}/video"
    stored = s3.get_object(Bucket=bucket, Key=made["video_key"])["Body"].read()
    size = len(stored)
    clients = [signed_in(url) for _ in range(READERS)]

    def read(n: int, rounds: int) -> int:
        """`rounds` ranges by reader n: open-ended from a random byte, bounded, and the tail;
        returns the bytes checked."""
        rng, client, checked = random.Random(n), clients[n], 0
        for i in range(rounds):
            first = rng.randrange(size)
            header, want = [
                (f"bytes={first}-", stored[first:]),
                (f"bytes={first}-{first + 65535}", stored[first:first + 65536]),
                ("bytes=-4096", stored[-4096:]),
            ][i % 3]
            answer = client.get(path, headers={"Range": header})
            assert answer.status_code == 206, (header, answer.status_code, answer.text[:200])
            assert answer.content == want, header
            checked += len(answer.content)
        return checked

    with ThreadPoolExecutor(READERS) as pool:
        list(pool.map(read, range(READERS), [2] * READERS))  # warm up: every reader's connection, the server's pools
        rss, served_bytes = [rss_mib(server.pid)], 0
        for _ in range(LOADS):
            served_bytes += sum(pool.map(read, range(READERS), [ROUNDS] * READERS))
            rss.append(rss_mib(server.pid))
    for client in clients:
        client.close()
    print(f"{READERS} readers, {LOADS * READERS * ROUNDS} requests, {served_bytes / 2**20:.0f} MiB served, RSS (MiB) " +
          " -> ".join(f"{r:.0f}" for r in rss))
    assert server.poll() is None, "the library is still running"
    assert served_bytes > 50 * size
    # The bytes served are many times the server's memory; a leak of one chunk (256 KiB) per
    # request would add over 100 MiB a load. After the first load fills the pools, it stays flat.
    assert max(rss[2:]) - rss[1] < 16, rss
