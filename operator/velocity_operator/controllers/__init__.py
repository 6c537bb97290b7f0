"""Reconciliation by concern. Controllers read and write through `kube.Kube`, build objects
with `builders`, and return what they did as `Action`s (the handlers post them as Events).
They never import kopf, so they run the same under the operator and in tests."""

from .actions import Action, Settings

__all__ = ["Action", "Settings"]
