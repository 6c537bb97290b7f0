"""Makes the tier-1 `kube_api` fixture available to the tests in this directory."""

from .plugin import kube_api

__all__ = ["kube_api"]
