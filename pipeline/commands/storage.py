"""`classcap storage serve | init | recover | verify | keep | delete`: the technician's side of storage."""

from __future__ import annotations

import json
import sys
import time

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.commands.common import config_option, print_result, say
from pipeline.config import ConfigError
from pipeline import settings as settings_of
from pipeline.run import sigterm_as_interrupt
from upload import admin
from upload.storage import check_bucket, explain, make_client, parse_s3_url


def _storage(args):
    station = settings_of.station_of(args)
    storage_settings = settings_of.storage(station)
    return storage_settings, make_client(storage_settings), station


def _bucket(args, station) -> str:
    return settings_of.bucket(station, args.bucket)


def storage_init(args) -> int:
    location = parse_s3_url(args.bucket_url)
    settings, client, _ = _storage(args)
    bucket = location.bucket
    steps = {}

    def step(name, fn, unsupported_ok=False):
        try:
            fn()
            steps[name] = "done"
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if unsupported_ok and code in ("NotImplemented", "NotImplementedError"):
                steps[name] = "not supported by this server"
                say(f"  {name}: this storage server does not support it; make sure the bucket is not public another way.")
                return
            raise explain(err, settings, bucket, f"set up {name}") from err
        except BotoCoreError as err:
            raise explain(err, settings, bucket, f"set up {name}") from err

    check_bucket(client, settings, bucket)
    step("default encryption", lambda: client.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
    ))
    step("public access block", lambda: client.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        },
    ), unsupported_ok=True)
    step("lifecycle", lambda: client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration=admin.lifecycle_rules(days=args.retention_days),
    ))
    policy = admin.station_policy(bucket, args.station_principal, args.library_principal)
    if args.apply_policy:
        step("station policy", lambda: client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy)))
    else:
        print("Bucket policy for the station role (write recordings only, never read, list or delete them)")
        print("and the library's (read, tag and delete recordings, assign owners; never the gallery);")
        print("apply it with --apply-policy, or through your storage's console:")
        print(json.dumps(policy, indent=2))
    for name, state in steps.items():
        say(f"  {name}: {state}")
    print_result({"bucket": bucket, "steps": steps, "policy_applied": bool(args.apply_policy)})
    return 0


def storage_recover(args) -> int:
    location = parse_s3_url(args.prefix_url)
    settings, client, _ = _storage(args)
    check_bucket(client, settings, location.bucket)
    prefix = (location.prefix + "/") if location.prefix else ""
    results = admin.recover(client, settings, location.bucket, prefix, progress=say)
    if not results:
        print(f"No interrupted uploads under {location}.")
    for r in results:
        print(f"{r['recording_id']}: {r['status']}, {r['frames']} frames ({r['seconds']} s) from {r['parts_used']} of {r['parts_found']} parts")
    print_result({"recovered": sum(r["status"] == "recovered" for r in results), "recordings": results})
    return 0


def _recording(args):
    settings, client, station = _storage(args)
    bucket = _bucket(args, station)
    return settings, client, bucket, admin.find_recording(client, settings, bucket, args.recording_id)


def storage_verify(args) -> int:
    settings, client, bucket, keys = _recording(args)
    result = admin.verify(client, settings, bucket, keys)
    if result["ok"]:
        print(f"{keys.recording_id}: OK ({result['frames']} frames, {result['bytes']} bytes, SHA-256 matches the manifest)")
    else:
        print(f"{keys.recording_id}: DAMAGED: {'; '.join(result['problems'])}")
    print_result(result)
    return 0 if result["ok"] else 2


def storage_keep(args) -> int:
    settings, client, bucket, keys = _recording(args)
    tagged = admin.set_keep(client, settings, bucket, keys, keep=not args.undo)
    state = "kept as an exemplar (the two-year deletion no longer applies)" if not args.undo else "back on the two-year deletion"
    print(f"{keys.recording_id}: {state}.")
    print_result({"recording_id": keys.recording_id, "keep": not args.undo, "objects": tagged})
    return 0


def storage_delete(args) -> int:
    settings, client, bucket, keys = _recording(args)
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"Deleting recording {keys.recording_id} cannot be undone; add --yes to confirm.")
        if input(f"Delete recording {keys.recording_id} (video and manifest) for good? [y/N] ").strip().lower() not in ("y", "yes"):
            raise ConfigError("Nothing was deleted.")
    removed = admin.delete_recording(client, settings, bucket, keys)
    print(f"deleted recording {keys.recording_id}: {len(removed)} objects.")
    print_result({"recording_id": keys.recording_id, "deleted": removed})
    return 0


def storage_serve(args) -> int:
    from upload.seaweed import SeaweedServer

    with SeaweedServer(data_dir=args.dir, port=args.port) as server:
        client = server.client()
        for bucket in args.bucket:
            client.create_bucket(Bucket=bucket)
        print("SeaweedFS S3 is listening on loopback; stop it with Ctrl-C. Point classcap at it with:")
        for name, value in server.env().items():
            print(f"export {name}={value}")
        print_result({"endpoint": server.endpoint, "access_key": server.access_key, "buckets": args.bucket})
        try:
            with sigterm_as_interrupt():
                while server.running():
                    time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def add_parser(commands) -> None:
    storage = commands.add_parser("storage", help="storage set-up and recovery")
    storage_cmds = storage.add_subparsers(dest="storage_command", required=True, metavar="ACTION")
    serve = storage_cmds.add_parser("serve", help="run an embedded SeaweedFS S3 server on loopback")
    serve.add_argument("--dir", help="data directory (default: a temporary one, removed on exit)")
    serve.add_argument("--port", type=int, help="S3 port (default: a free one)")
    serve.add_argument("--bucket", action="append", default=[], help="bucket to create at start (repeatable)")
    serve.set_defaults(run=storage_serve)

    init = storage_cmds.add_parser("init", help="set a bucket up the way the school's policy needs")
    init.add_argument("bucket_url", metavar="s3://BUCKET")
    init.add_argument("--retention-days", type=int, default=admin.RETENTION_DAYS, help=f"days before recordings expire (default {admin.RETENTION_DAYS})")
    init.add_argument("--apply-policy", action="store_true", help="apply the station bucket policy (else it is printed)")
    init.add_argument("--station-principal", default="arn:aws:iam::ACCOUNT:role/classcap-station",
                      help="the stations' role or user in the bucket policy")
    init.add_argument("--library-principal", default="arn:aws:iam::ACCOUNT:role/classcap-library",
                      help="the library's role or user in the bucket policy (classcap library serve)")
    init.set_defaults(run=storage_init)

    recover = storage_cmds.add_parser("recover", help="complete interrupted uploads (a station killed or without power)")
    recover.add_argument("prefix_url", metavar="s3://BUCKET/PREFIX")
    recover.set_defaults(run=storage_recover)

    for name, run, text in (
        ("verify", storage_verify, "check a recording's video against its manifest (size, SHA-256, frames)"),
        ("keep", storage_keep, "keep a recording as an exemplar (no two-year deletion)"),
        ("delete", storage_delete, "delete a recording on instruction (video, manifest and any interrupted upload)"),
    ):
        sub = storage_cmds.add_parser(name, help=text)
        sub.add_argument("recording_id", metavar="RECORDING_ID")
        sub.add_argument("--bucket", help="bucket (default: $CLASSCAP_BUCKET or the station's)")
        if name == "keep":
            sub.add_argument("--undo", action="store_true", help="put the recording back on the two-year deletion")
        if name == "delete":
            sub.add_argument("--yes", action="store_true", help="confirm the deletion")
        sub.set_defaults(run=run)
    for sub in storage_cmds.choices.values():
        if sub.get_default("run") is not None and not any(a.dest == "config" for a in sub._actions):
            config_option(sub)
