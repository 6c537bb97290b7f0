"""The `kubectl-velocity` commands: thin click wrappers over status, requests and connect.

Exit codes: 0 done; 1 the request failed (API error, no such cluster or pod, a backup that
ended Failed, a --wait that timed out); 2 bad usage (click). `-n/--namespace`,
`--kubeconfig` and `--context` are accepted before or after the command name, as kubectl
plugins are called both ways.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
from kubernetes_asyncio import config

from .. import names
from ..api.crd import BACKUP, CLUSTER
from ..controllers.promote import SWITCHOVER_ANNOTATION
from ..controllers.tls import ROTATE_ANNOTATION
from ..kube import ApiError, Kube, connect
from . import status as status_mod
from .connect import (
    PORT_FORWARD_TIMEOUT_S,
    ConnectError,
    fetch_credentials,
    kubectl_base,
    port_forward,
    velocityctl_binary,
    velocityctl_command,
    write_credentials,
)
from .requests import RequestError, create_backup, request_promotion, request_rotation

__all__ = ["main"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
WAIT_POLL_S = 1.0


@dataclass
class Target:
    """Where the commands act: kubeconfig, context and namespace (None: from the kubeconfig)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None

    def merged(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> Target:
        return Target(kubeconfig or self.kubeconfig, context or self.context, namespace or self.namespace)

    def resolved_namespace(self) -> str:
        """-n, else the context's namespace in the kubeconfig, else "default" (as kubectl does)."""
        if self.namespace:
            return self.namespace
        try:
            contexts, active = config.list_kube_config_contexts(config_file=self.kubeconfig)
        except (config.ConfigException, OSError, TypeError, ValueError):
            return "default"
        chosen = next((c for c in contexts if c.get("name") == self.context), None) if self.context else active
        return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def run_with_kube(target: Target, fn: Callable[[Kube], Awaitable[T]]) -> T:
    """Run `fn` with a client for `target`; API and domain errors end the command with exit code 1."""

    async def go() -> T:
        kube = await connect(target.kubeconfig, context=target.context)
        try:
            return await fn(kube)
        finally:
            await kube.close()

    try:
        return asyncio.run(go())
    except ApiError as exc:
        fail(f"{exc.reason}: {exc.message}")
    except (LookupError, RequestError, ConnectError, config.ConfigException) as exc:
        fail(str(exc))


def _kube_options(f: F) -> F:
    f = click.option("--context", help="The kubeconfig context to use (default: the current one).")(f)
    f = click.option("--kubeconfig", type=click.Path(dir_okay=False),
                     help="Path of the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).")(f)
    f = click.option("-n", "--namespace", help="Namespace of the VelocityCluster (default: the context's).")(f)
    return f


def _json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")(f)


def _target(ctx: click.Context, kubeconfig: str | None, context: str | None, namespace: str | None) -> Target:
    base: Target = ctx.obj or Target()
    return base.merged(kubeconfig, context, namespace)


def _emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_kube_options
@click.pass_context
def main(ctx: click.Context, namespace: str | None, kubeconfig: str | None, context: str | None) -> None:
    """kubectl velocity: status, promote, backup, connect and rotate-certificates for VelocityClusters."""
    ctx.obj = Target(kubeconfig, context, namespace)


@main.command()
@click.argument("name")
@_kube_options
@_json_option
@click.pass_context
def status(ctx: click.Context, name: str, namespace: str | None, kubeconfig: str | None, context: str | None,
           as_json: bool) -> None:
    """Pods, roles, lag, epoch, Lease holder, last backup and conditions of cluster NAME."""
    target = _target(ctx, kubeconfig, context, namespace)
    ns = target.resolved_namespace()

    async def go(kube: Kube) -> dict[str, Any]:
        return status_mod.summarize(await status_mod.collect(kube, name, ns))

    summary = run_with_kube(target, go)
    _emit(as_json, summary, status_mod.render(summary, _now()).rstrip("\n"))


async def _wait_for(what: str, probe: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    """Poll `probe` every WAIT_POLL_S until it returns something other than None."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if asyncio.get_running_loop().time() >= deadline:
            raise RequestError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(WAIT_POLL_S)


@main.command()
@click.argument("name")
@click.argument("pod")
@click.option("--wait", is_flag=True, help="Wait until the operator has answered the request.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds --wait waits.")
@_kube_options
@_json_option
@click.pass_context
def promote(ctx: click.Context, name: str, pod: str, wait: bool, timeout: float, namespace: str | None,
            kubeconfig: str | None, context: str | None, as_json: bool) -> None:
    """Make POD the primary of cluster NAME (a planned switchover by the operator).

    Sets the annotation vdb.io/switchover-to=POD; the operator asks the current primary to
    hand over (no acknowledged write is lost), removes the annotation and records the outcome
    as an Event (Switchover, SwitchoverFailed or SwitchoverRejected)."""
    target = _target(ctx, kubeconfig, context, namespace)
    ns = target.resolved_namespace()

    async def go(kube: Kube) -> dict[str, Any]:
        await request_promotion(kube, name, ns, pod)
        result: dict[str, Any] = {"cluster": name, "namespace": ns, "pod": pod,
                                  "annotation": f"{SWITCHOVER_ANNOTATION}={pod}", "requested": True}
        if wait:
            async def answered() -> dict[str, Any] | None:
                body = await kube.get(CLUSTER.api_version, CLUSTER.kind, ns, name)
                if body is None:
                    raise status_mod.ClusterNotFound(name, ns)
                if SWITCHOVER_ANNOTATION in (body["metadata"].get("annotations") or {}):
                    return None
                return body

            await _wait_for("the operator to answer the switchover request", answered, timeout)
            lease = await kube.get(status_mod.LEASE_API, "Lease", ns, names.lease(name))
            holder = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
            result["primary"] = names.pod_of_endpoint(name, ns, holder) if holder else None
        return result

    result = run_with_kube(target, go)
    text = f"velocitycluster/{name}: switchover to {pod} requested (annotation {SWITCHOVER_ANNOTATION})"
    if wait:
        text += f"\nprimary is now {result['primary'] or 'unknown'}"
    _emit(as_json, result, text)
    if wait and result["primary"] != pod:
        fail(f"{pod} did not become the primary; see `kubectl describe velocitycluster {name} -n {ns}` (Events)")


@main.command()
@click.argument("name")
@click.option("--backup-name", help="Name of the VelocityBackup (default: NAME-YYYYMMDDHHMMSS, UTC).")
@click.option("--wait", is_flag=True, help="Wait until the backup is Completed or Failed.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds --wait waits.")
@_kube_options
@_json_option
@click.pass_context
def backup(ctx: click.Context, name: str, backup_name: str | None, wait: bool, timeout: float,
           namespace: str | None, kubeconfig: str | None, context: str | None, as_json: bool) -> None:
    """Back up cluster NAME now: creates a VelocityBackup (stored where the cluster's backups go)."""
    target = _target(ctx, kubeconfig, context, namespace)
    ns = target.resolved_namespace()

    async def go(kube: Kube) -> dict[str, Any]:
        created = await create_backup(kube, name, ns, _now(), backup_name)
        obj_name = created["metadata"]["name"]
        if wait:
            async def finished() -> dict[str, Any] | None:
                obj = await kube.get(BACKUP.api_version, BACKUP.kind, ns, obj_name)
                phase = ((obj or {}).get("status") or {}).get("phase")
                return obj if phase in ("Completed", "Failed") else None

            created = await _wait_for(f"VelocityBackup {obj_name} to finish", finished, timeout)
        st = created.get("status") or {}
        return {"name": obj_name, "namespace": ns, "cluster": name, "phase": st.get("phase") or "Pending",
                "location": st.get("location"), "message": st.get("message")}

    result = run_with_kube(target, go)
    text = f"velocitybackup/{result['name']} created (cluster {name})"
    if wait:
        text += f": {result['phase']}" + (f" -> {result['location']}" if result["location"] else "")
    _emit(as_json, result, text)
    if result["phase"] == "Failed":
        fail(f"backup {result['name']} failed: {result['message']}")


@main.command(name="rotate-certificates")
@click.argument("name")
@_kube_options
@_json_option
@click.pass_context
def rotate_certificates(ctx: click.Context, name: str, namespace: str | None, kubeconfig: str | None,
                        context: str | None, as_json: bool) -> None:
    """Re-issue the server certificate of cluster NAME now (same CA; pods roll, primary last).

    Sets the annotation vdb.io/rotate-certificates to a new value; each new value rotates
    once. Only certificates the operator issues are rotated."""
    target = _target(ctx, kubeconfig, context, namespace)
    ns = target.resolved_namespace()

    async def go(kube: Kube) -> dict[str, Any]:
        body = await request_rotation(kube, name, ns, _now())
        value = body["metadata"]["annotations"][ROTATE_ANNOTATION]
        return {"cluster": name, "namespace": ns, "annotation": ROTATE_ANNOTATION, "value": value}

    result = run_with_kube(target, go)
    _emit(as_json, result, f"velocitycluster/{name}: certificate rotation requested "
                           f"({result['annotation']}={result['value']})")


@main.command(name="connect", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.option("--pod", help="Connect to this pod instead of the client Service (which routes to the primary).")
@click.option("--address", help="HOST:PORT that already reaches the engine: no port-forward.")
@click.option("--kubectl", "kubectl_bin", default="kubectl", show_default=True,
              help="kubectl binary used for the port-forward.")
@click.option("--forward-timeout", type=float, default=PORT_FORWARD_TIMEOUT_S, show_default=True,
              help="Seconds the port-forward waits for a running pod.")
@_kube_options
@click.argument("velocityctl_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def connect_cmd(ctx: click.Context, name: str, pod: str | None, address: str | None, kubectl_bin: str,
                forward_timeout: float, namespace: str | None, kubeconfig: str | None, context: str | None,
                velocityctl_args: tuple[str, ...]) -> None:
    """velocityctl against cluster NAME: `kubectl velocity connect NAME -- get KEY`.

    Port-forwards to the client Service (or --pod) and runs velocityctl with the cluster's
    CA (Secret NAME-ca), client token (NAME-auth) and admin token (NAME-admin). With no
    velocityctl arguments, runs `velocityctl info`."""
    target = _target(ctx, kubeconfig, context, namespace)
    ns = target.resolved_namespace()
    creds = run_with_kube(target, lambda kube: fetch_credentials(kube, name, ns))
    if pod is not None:
        server_name = names.pod_dns_name(name, ns, pod)
        forward_target = f"pod/{pod}"
    else:
        server_name = f"{names.service(name)}.{ns}.svc"
        forward_target = f"svc/{names.service(name)}"
    args = velocityctl_args or ("info",)
    try:
        binary = velocityctl_binary()
        with write_credentials(creds) as files:
            if address is not None:
                code = _run_velocityctl(binary, f"vdb://{address}", server_name if creds.tls else None, files, args)
            else:
                base = kubectl_base(kubectl_bin, target.kubeconfig, target.context)
                with port_forward(base, ns, forward_target, forward_timeout) as port:
                    code = _run_velocityctl(binary, f"vdb://127.0.0.1:{port}", server_name if creds.tls else None,
                                            files, args)
    except (ConnectError, OSError) as exc:
        fail(str(exc))
    sys.exit(code)


def _run_velocityctl(binary: str, endpoint: str, server_name: str | None, files: dict[str, Any],
                     args: tuple[str, ...]) -> int:
    argv, env = velocityctl_command(binary, endpoint, server_name, files, args)
    return subprocess.run(argv, env=env, check=False).returncode

