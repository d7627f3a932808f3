"""The teachers' library: watch, share and give time-coded feedback on recordings, without
downloading them (`classcap library serve` runs it).

- `db`: accounts, the recordings' catalogue, shares, comments and the audit, through SQLAlchemy,
  with Alembic migrations (SQLite for the embedded default, PostgreSQL for a school's server);
- `accounts`: local accounts (argon2-hashed passwords) and the sign-in rate limit;
- `catalogue`: what the bucket holds, read from the recordings' manifests;
- `access`: who may see, play, share, delete or keep a recording (the school's policy, in one place);
- `video`: HTTP range requests answered from the bucket, the bytes never touching the disk;
- `app`: the web application (FastAPI), built from plain values by `pipeline/commands/library.py`.

The library reads the bucket with its own credentials; stations stay write-only.
"""
