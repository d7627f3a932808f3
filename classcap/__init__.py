"""What every package of classcap shares, and nothing else: the root of its errors
(`classcap.errors`) and the way it writes a moment (`classcap.clock`).

It imports nothing of ours, so `capture/`, `blur/`, `upload/` and `pipeline/` can all build on it
without importing one another.
"""
