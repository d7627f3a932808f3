"""Who may do what with a recording: the school's policy, in one place.

- The owner (the member of staff who taught it) sees, plays, comments on, shares, revokes and
  deletes it.
- Someone it was shared with sees, plays and comments on it; never shares it on, never deletes it.
- The data lead sees every recording's metadata, marks exemplars, and assigns a recording that has
  no owner; such a recording is seen by nobody else, and the lead may play it to find its owner.
- An administrator sees the metadata of owned recordings (for retention and concerns) and plays
  only what was shared with them.
"""

from __future__ import annotations

from library.db import Recording, User


def is_owner(user: User, row: Recording) -> bool:
    return row.owner_id is not None and row.owner_id == user.id


def can_see(user: User, row: Recording, shared: bool) -> bool:
    if is_owner(user, row) or shared or user.role == "lead":
        return True
    return user.role == "admin" and row.owner_id is not None


def can_play(user: User, row: Recording, shared: bool) -> bool:
    return is_owner(user, row) or shared or (user.role == "lead" and row.owner_id is None)


def can_comment(user: User, row: Recording, shared: bool) -> bool:
    return is_owner(user, row) or shared


def can_share(user: User, row: Recording) -> bool:
    return is_owner(user, row)


def can_delete(user: User, row: Recording) -> bool:
    return is_owner(user, row)


def can_keep(user: User) -> bool:
    return user.role == "lead"


def can_assign(user: User, row: Recording) -> bool:
    return user.role == "lead" and row.owner_id is None


def can_read_audit(user: User) -> bool:
    return user.role == "lead"
