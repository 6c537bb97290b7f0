"""Where the engine's CPU goes: py-spy samples the server during a vbench run
and the collapsed stacks are summarised into self and inclusive shares."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from velocity_bench.clients import Load, pinned, run_vbench
from velocity_bench.paths import RESULTS
from velocity_bench.scenarios import TESTS
from velocity_bench.servers import Server
from velocity_bench.tools import py_spy


@dataclass
class Profile:
    samples: int = 0
    self_pct: list[tuple[str, float]] = field(default_factory=list)
    inclusive_pct: list[tuple[str, float]] = field(default_factory=list)
    ops_per_sec: float = 0.0  # under the profiler (it slows the server a little)
    error: str = ""


_LINE = re.compile(r":\d+\)$")


def summarize_collapsed(text: str, top: int = 25) -> Profile:
    """Shares of samples by function, from py-spy's raw (collapsed) format:
    `frame;frame;... COUNT` per line, frames as `func (file:line)`."""
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, cnt = line.rpartition(" ")
        if not stack or not cnt.isdigit():
            continue
        n = int(cnt)
        total += n
        frames = [_LINE.sub(")", f.strip()) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        self_t[frames[-1]] = self_t.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n

    def rank(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return Profile(samples=total, self_pct=rank(self_t) if total else [], inclusive_pct=rank(incl) if total else [])


def profile_engine(srv: Server, load: Load, pipelines: list[int]) -> dict[str, Profile]:
    """Sample `srv` with py-spy during one vbench run per (pipeline, test); copies the
    collapsed stacks to bench/results/profile-<scenario>-P<p>-<test>.collapsed."""
    spy = py_spy()
    if spy is None:
        return {"all": Profile(error="py-spy unavailable")}
    out: dict[str, Profile] = {}
    for p in pipelines:
        for test in TESTS:
            raw = srv.workdir / f"profile-P{p}-{test}.txt"
            cmd = [spy, "record", "--pid", str(srv.pid), "--rate", "250", "--format", "raw", "--nonblocking",
                   "--output", str(raw), "--duration", "600"]  # fmt: skip
            rec = subprocess.Popen(
                pinned(cmd, load.client_pin), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            time.sleep(1.0)  # py-spy attaches asynchronously; give it a moment before the load starts
            try:
                run = run_vbench(srv, load, test, p)
            finally:
                rec.send_signal(signal.SIGINT)
                try:
                    _, err = rec.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    rec.kill()
                    _, err = rec.communicate()
            key = f"P{p}-{test}"
            if not raw.exists():
                out[key] = Profile(error=(err or "")[-300:])
                continue
            prof = summarize_collapsed(raw.read_text(errors="replace"))
            prof.ops_per_sec = round(run.ops_per_sec)
            out[key] = prof
            RESULTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(raw, RESULTS / f"profile-{srv.scenario.name}-{key}.collapsed")
    return out


def profile_markdown(profiles: dict[str, dict[str, Profile]]) -> str:
    lines = ["# velocity-engine profile (py-spy, sampled during vbench runs)", ""]
    for name, runs in profiles.items():
        for key, prof in runs.items():
            lines += [f"## {name} {key}", ""]
            if prof.error:
                lines += [f"error: {prof.error}", ""]
                continue
            rate = f"; {prof.ops_per_sec:,.0f} ops/s under the profiler" if prof.ops_per_sec else ""
            lines += [f"{prof.samples} samples{rate}.", ""]
            lines += ["| self % | function |", "|---:|---|"]
            lines += [f"| {pct} | `{fn}` |" for fn, pct in prof.self_pct[:15]]
            lines += ["", "| inclusive % | function |", "|---:|---|"]
            lines += [f"| {pct} | `{fn}` |" for fn, pct in prof.inclusive_pct[:20]]
            lines.append("")
    return "\n".join(lines) + "\n"


def write_profile_markdown(profiles: dict[str, dict[str, Profile]], path: Path | None = None) -> Path:
    path = path or RESULTS / "profile.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(profile_markdown(profiles))
    return path
