"""Typed errors of the replication layer (wire errors live in vproto.errors)."""

from __future__ import annotations


class ReplicationError(Exception):
    """Base: something in replication went wrong; the message says what and where."""


class StreamFormatError(ReplicationError):
    """A batch or snapshot record does not decode: the stream cannot be trusted.

    Raised with the offset and what was expected, so a log line is enough to
    find the bad byte; the link is dropped and the replica reconnects.
    """


class StateFileError(ReplicationError):
    """DATA_DIR/replication/state.json is unreadable or invalid."""


class PrimaryRefused(ReplicationError):
    """The primary answered REPL_SYNC with an error (stale epoch, redirect, auth)."""


class SwitchoverError(ReplicationError):
    """A planned switchover did not happen; the message says which step failed and why."""


class LeaseNotHeld(SwitchoverError):
    """The Lease is not held by the node that wants to hand it over or take it."""


class LeaseConflict(SwitchoverError):
    """The Lease changed between read and compare-and-swap (409): nothing was written."""


class LeaseOutcomeUnknown(SwitchoverError):
    """A Lease write failed in a way that leaves open whether it was applied."""
