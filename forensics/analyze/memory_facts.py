"""Memory facts of a death: the kernel's OOM kills, the cgroup's counters, sampled RSS."""

from __future__ import annotations

from typing import Any

from forensics.analyze.bundle_source import BundleData, ProcessRecord

# RSS moves by a few pages in any test (allocator arenas, caches): growth below this is noise.
_GROWTH_NOISE = 1024 * 1024


def _oom_kills(data: BundleData) -> dict[int, dict[str, Any]]:
    """The kernel OOM killer's kills of the run's processes, by pid."""
    found: dict[int, dict[str, Any]] = {}
    oom = data.system.get("oom")
    kills = oom.get("kills") if isinstance(oom, dict) else None
    if isinstance(kills, list):
        for kill in kills:
            if isinstance(kill, dict) and isinstance(kill.get("pid"), int) and kill.get("ours"):
                found[kill["pid"]] = kill
    return found


def _cgroup_oom_kills(data: BundleData) -> list[str]:
    """OOM kills counted by the run's cgroup, or by the surrounding one during the run."""
    cgroup = data.system.get("cgroup")
    if not isinstance(cgroup, dict):
        return []
    run = cgroup.get("run")
    if isinstance(run, dict) and isinstance(run.get("oom_kill"), int) and run["oom_kill"] > 0:
        return [f"oom_kill {run['oom_kill']} in the run's cgroup {run.get('path')}"]
    surrounding = cgroup.get("surrounding")
    if not isinstance(surrounding, dict):
        return []
    before = {
        m.get("path"): m.get("oom_kill")
        for m in surrounding.get("start") or []
        if isinstance(m, dict)
    }
    found = []
    for mem in surrounding.get("end") or []:
        if not isinstance(mem, dict):
            continue
        start, end = before.get(mem.get("path")), mem.get("oom_kill")
        if isinstance(start, int) and isinstance(end, int) and end > start:
            found.append(
                f"oom_kill counter of the surrounding cgroup {mem.get('path')} rose from "
                f"{start} to {end} during the run"
            )
    return found


def _sampled_memory(data: BundleData) -> dict[int, dict[str, Any]]:
    """The sampler's per-process memory (system/memory.json), by pid."""
    memory = data.system.get("memory")
    processes = memory.get("processes") if isinstance(memory, dict) else None
    found: dict[int, dict[str, Any]] = {}
    if isinstance(processes, list):
        for proc in processes:
            if isinstance(proc, dict) and isinstance(proc.get("pid"), int):
                found[proc["pid"]] = proc
    return found


class MemoryFacts:
    """The step of the triage builder that words a death's memory facts (its state is set up by
    :class:`~forensics.analyze.triage_state.TriageState` from the functions above)."""

    data: BundleData
    oom_kills: dict[int, dict[str, Any]]
    sampled: dict[int, dict[str, Any]]

    def _memory_facts(self, rec: ProcessRecord) -> dict[str, object]:
        """The limit that was hit, the process's peak, and the tests that grew it the most."""
        kill = self.oom_kills.get(rec.pid, {})
        limit = kill.get("memcg_limit_bytes")
        cgroup = self.data.system.get("cgroup")
        if not isinstance(limit, int) and isinstance(cgroup, dict):
            run = cgroup.get("run")
            surrounding = cgroup.get("surrounding")
            chain = surrounding.get("end") if isinstance(surrounding, dict) else None
            for mem in [run, *(chain if isinstance(chain, list) else [])]:
                if isinstance(mem, dict) and isinstance(mem.get("limit_bytes"), int):
                    limit = mem["limit_bytes"]
                    break
        at_kill = sum(
            v
            for v in (kill.get("anon_rss_bytes"), kill.get("file_rss_bytes"))
            if isinstance(v, int)
        )
        sampled = self.sampled.get(rec.pid, {})
        peak = max(at_kill, sampled.get("peak_rss") or 0) or None
        growth = []
        for test in rec.tests:
            end_rss = test.rss_end
            if end_rss is None and test is rec.open_test:
                end_rss = at_kill or sampled.get("last_rss")
            if test.rss_start is not None and isinstance(end_rss, int):
                growth.append({"test": test.nodeid, "rss_delta_bytes": end_rss - test.rss_start})
        growth.sort(key=lambda g: -int(g["rss_delta_bytes"]))  # type: ignore[call-overload]
        return {
            "limit_bytes": limit if isinstance(limit, int) else None,
            "peak_rss_bytes": peak,
            "top_growth": [g for g in growth if int(g["rss_delta_bytes"]) >= _GROWTH_NOISE][:10],  # type: ignore[call-overload]
            "constraint": kill.get("constraint"),
        }
