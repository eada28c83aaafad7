"""Kernel log lines of the run's time window, and the OOM kills they report.

Sources, in order of preference: /dev/kmsg (structured records, readable without spawning a
process, positioned at the end at open so only the run's lines are read), then
``dmesg --raw`` and ``journalctl -k`` when /dev/kmsg is not readable (for example
``kernel.dmesg_restrict`` for kmsg but a journal the user may read).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import time

from forensics.kernel_lines import KernelLine

KMSG = "/dev/kmsg"
# A kmsg record is at most ~1 KiB of text plus its dictionary; a short buffer yields EINVAL.
_READ_SIZE = 16384
# A burst bigger than this between two polls is cut; the OOM report is ~100 records.
_MAX_RECORDS_PER_READ = 20000


def _clock_offset() -> float:
    # printk stamps with local_clock(), which tracks CLOCK_MONOTONIC (not /proc/uptime's
    # CLOCK_BOOTTIME, which also counts suspend); epoch = monotonic + offset.
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


_KMSG_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def parse_kmsg_record(raw: bytes, offset: float) -> KernelLine | None:
    """Parse one /dev/kmsg record: ``prio,seq,usec,flags[,...];text`` then `` KEY=VALUE`` lines."""
    text = raw.decode("utf-8", "replace")
    head, sep, rest = text.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    try:
        prio, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None
    message = rest.split("\n", 1)[0]  # continuation lines are the device dictionary
    # The kernel escapes non-printable bytes as \xNN; undo it only for the printable ASCII range.
    message = _KMSG_ESCAPE.sub(
        lambda m: chr(int(m.group(1), 16)) if 32 <= int(m.group(1), 16) < 127 else m.group(0),
        message,
    )
    return KernelLine(
        time=usec / 1e6 + offset,
        monotonic_us=usec,
        level=prio & 7,
        facility=prio >> 3,
        seq=seq,
        text=message,
    )


_DMESG_RAW = re.compile(r"^<(\d+)>\[\s*(\d+)\.(\d+)\]\s?(.*)$")


def parse_dmesg_raw(text: str, offset: float) -> list[KernelLine]:
    """Parse ``dmesg --raw`` output: ``<prio>[ seconds.micros] text``."""
    lines = []
    for raw in text.splitlines():
        m = _DMESG_RAW.match(raw)
        if not m:
            continue
        prio = int(m.group(1))
        usec = int(m.group(2)) * 1_000_000 + int(m.group(3).ljust(6, "0")[:6])
        lines.append(
            KernelLine(usec / 1e6 + offset, usec, prio & 7, m.group(4), facility=prio >> 3)
        )
    return lines


def parse_journal_json(text: str) -> list[KernelLine]:
    """Parse ``journalctl -k -o json`` output (one JSON object per line)."""
    lines = []
    for raw in text.splitlines():
        try:
            rec = json.loads(raw)
            message = rec["MESSAGE"]
            if isinstance(message, list):  # the journal stores non-UTF-8 text as a byte list
                message = bytes(message).decode("utf-8", "replace")
            real = int(rec["__REALTIME_TIMESTAMP"]) / 1e6
            mono = int(rec.get("_SOURCE_MONOTONIC_TIMESTAMP") or rec["__MONOTONIC_TIMESTAMP"])
            level = int(rec.get("PRIORITY", 6))
        except (ValueError, KeyError, TypeError):
            continue
        lines.append(KernelLine(real, mono, level, str(message)))
    return lines


class KernelLog:
    """New kernel log lines since :meth:`open`; call :meth:`read_new` periodically."""

    def __init__(self, source: str, fd: int | None = None) -> None:
        self.source = source  # "kmsg", "dmesg" or "journal"
        self._fd = fd
        self._offset = _clock_offset()
        self.start_monotonic_us = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
        self.start_time = time.time()
        self._last_us = self.start_monotonic_us
        self.dropped = 0  # records overwritten in the ring buffer before we read them

    @classmethod
    def open(cls) -> KernelLog | None:
        made = cls.open_or_reason()
        return made if isinstance(made, KernelLog) else None

    @classmethod
    def open_or_reason(cls) -> KernelLog | str:
        """A reader positioned at the end of the kernel log, or why none is readable."""
        try:
            fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            kmsg_error = f"{KMSG}: {exc.strerror}"
        else:
            os.lseek(fd, 0, os.SEEK_END)
            return cls("kmsg", fd)
        reasons = [kmsg_error]
        for source, probe in (
            ("dmesg", ["dmesg", "--raw"]),
            ("journal", ["journalctl", "-k", "-n", "1", "-o", "json", "-q", "--no-pager"]),
        ):
            ok, why = _probe(probe)
            if ok:
                return cls(source)
            reasons.append(why)
        return "no kernel log readable: " + "; ".join(reasons)

    def read_new(self) -> list[KernelLine]:
        if self.source == "kmsg":
            return self._read_kmsg()
        if self.source == "dmesg":
            # `--kernel` with `--raw` works only on /dev/kmsg, which this source is the
            # fallback for (syslog(2) is read instead): filter on the facility here.
            raw = parse_dmesg_raw(_run(["dmesg", "--raw"]), self._offset)
            lines = [ln for ln in raw if ln.facility == 0]
        else:
            since = f"@{int(self.start_time)}"
            out = _run(["journalctl", "-k", "-o", "json", "-q", "--no-pager", "--since", since])
            lines = parse_journal_json(out)
        # Polled sources return the whole buffer each time; keep what is newer than last time.
        new = [ln for ln in lines if ln.monotonic_us > self._last_us]
        if new:
            self._last_us = max(ln.monotonic_us for ln in new)
        return new

    def _read_kmsg(self) -> list[KernelLine]:
        if self._fd is None:
            return []
        out: list[KernelLine] = []
        while len(out) < _MAX_RECORDS_PER_READ:
            try:
                raw = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            except BrokenPipeError:
                # The ring buffer overwrote records we had not read; the next read resumes at
                # the oldest record still present.
                self.dropped += 1
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                break
            if not raw:
                break
            line = parse_kmsg_record(raw, self._offset)
            if line is not None:
                out.append(line)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _run(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.decode("utf-8", "replace")


def _probe(argv: list[str]) -> tuple[bool, str]:
    if shutil.which(argv[0]) is None:
        return False, f"{argv[0]}: not installed"
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{argv[0]}: {exc}"
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return False, f"{argv[0]}: {err[-1] if err else f'exit status {proc.returncode}'}"
    if not proc.stdout.strip():
        # A booted kernel always has lines; none means none are readable to us (journalctl
        # exits 0 without a readable journal).
        fix = (
            "not in the systemd-journal or adm group, or no journal"
            if argv[0] == "journalctl"
            else "kernel.dmesg_restrict=1 needs CAP_SYSLOG"
        )
        return False, f"{argv[0]}: no kernel lines readable ({fix})"
    return True, ""


# --- OOM kills -------------------------------------------------------------------------------
