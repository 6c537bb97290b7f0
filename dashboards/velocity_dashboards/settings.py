"""Generator settings: the one place that says where generated links point.

`RUNBOOK_BASE_URL` is the published copy of docs/runbooks.md. Every alert's
`runbook_url` is `<base>#<alert name in lower case>` (GitHub's anchor for the alert's
`## AlertName` heading), and both dashboards link the base. Alertmanager and Grafana show
the annotation as it is, so it must be absolute.

`python -m velocity_dashboards --runbook-base-url URL` (`make dashboards
RUNBOOK_BASE_URL=URL`, and the same for `make check-dashboards`) overrides the default
below. The committed files use the default: a fork that publishes its runbooks elsewhere
changes the default here (one line) and runs `make dashboards`, or generates its own
copies with the option.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_RUNBOOK_BASE_URL = "https://github.com/vdb-io/velocity/blob/main/docs/runbooks.md"


class SettingsError(ValueError):
    """A setting with a value the generated files could not use."""


def runbook_base_url(override: str | None = None) -> str:
    """The runbook base: `override`, else the default; it must be absolute."""
    url = override or DEFAULT_RUNBOOK_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise SettingsError(f"runbook base URL must be an absolute http(s) URL without a #fragment: {url!r}")
    return url


def runbook_url(base: str, alert: str) -> str:
    return f"{base}#{alert.lower()}"
