"""Pure functions from a VelocityCluster (or VelocityBackup) spec to desired Kubernetes objects.

Nothing here does I/O: inputs are the parsed spec and an `Owner`; outputs are plain dicts
ready for server-side apply. Each module builds one kind of object.
"""

from .meta import Owner

__all__ = ["Owner"]
