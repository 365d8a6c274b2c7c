"""The flow library: the current version of every flow, and its hot reload.

:class:`FlowLibrary` holds one immutable :class:`~telephony.ivr.loader.FlowSet`.
A new call takes the current set (:meth:`FlowLibrary.for_hotline`) and keeps
it to the end: sub-flows, calendars and the survey come from that version,
whatever is loaded meanwhile. :meth:`FlowLibrary.reload` reads the folder
again and builds a new set in which only valid files are new:

* a file that does not parse or fails a check keeps its previous version
  (a new file with errors is not served at all); its ``file:line`` errors
  are logged one by one and handed to ``on_error`` (the metrics hook);
* an unchanged file keeps its very object (same version, same identity);
* if a change breaks another file (a removed sub-flow, a removed skill
  group, a hotline claimed twice) the change is the one refused;
* a deleted file is removed, unless another flow still needs it.

The watcher (:meth:`FlowLibrary.start` / :meth:`FlowLibrary.stop`) polls
the folder's files (names, sizes, mtimes) every ``interval`` seconds and
reloads when anything changed; polling needs no extra dependency and a
flows folder is a few dozen files.

Nothing of this blocks the event loop that serves calls: the watcher's
``stat`` of every file, and the reading, YAML parsing and checking of a
reload (:meth:`FlowLibrary.reload_async`), run in a worker thread
(``asyncio.to_thread``) against the immutable current set. Only the swap of
the new set, the logs and the hooks happen on the loop, so callers of
:meth:`FlowLibrary.for_hotline` never see a half-made set. If a synchronous
:meth:`FlowLibrary.reload` swapped the set while the thread worked, the
thread's result is discarded and the work done again against the new set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from telephony.ivr.check import check_set
from telephony.ivr.loader import (
    CALENDARS_DIR,
    SKILL_GROUPS_FILE,
    Diagnostic,
    FlowSet,
    LoadedFlow,
    display_path,
    load_folder,
)

log = logging.getLogger(__name__)

ErrorHook = Callable[[str, list[Diagnostic]], None]
LoadedHook = Callable[[LoadedFlow], None]


Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A reload worked out against ``prev`` and not yet applied."""

    prev: FlowSet
    signature: Signature
    candidate: FlowSet
    accepted: dict[str, LoadedFlow]
    removed: tuple[str, ...]
    rejected: dict[str, list[Diagnostic]]
    warnings: tuple[Diagnostic, ...]


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What one reload did."""

    loaded: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rejected: dict[str, list[Diagnostic]] = field(default_factory=dict)
    warnings: tuple[Diagnostic, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing was refused."""
        return not self.rejected


class FlowLibrary:
    """The flows being served, one immutable :class:`FlowSet` at a time."""

    def __init__(
        self,
        root: Path,
        *,
        extra_groups: Iterable[str] = (),
        on_error: ErrorHook | None = None,
        on_loaded: LoadedHook | None = None,
    ) -> None:
        self.root = root
        self.extra_groups = tuple(extra_groups)
        self.on_error = on_error
        self.on_loaded = on_loaded
        self._current = FlowSet(root=root.resolve())
        self._task: asyncio.Task[None] | None = None
        self._signature: Signature = ()
        self._reloading: asyncio.Lock | None = None

    @property
    def current(self) -> FlowSet:
        """The set new calls use."""
        return self._current

    def for_hotline(self, number: str) -> tuple[FlowSet, LoadedFlow] | None:
        """The set and flow a new call to ``number`` runs; keep both for the whole call."""
        flow_set = self._current
        loaded = flow_set.for_hotline(number)
        return None if loaded is None else (flow_set, loaded)

    # -- reload ---------------------------------------------------------------------------

    def reload(self) -> ReloadReport:
        """Re-read the folder; swap in the valid changes, keep the rest. Never raises.

        This blocks its caller while it reads and parses; on the event loop use
        :meth:`reload_async`.
        """
        try:
            return self._apply(self._prepare(self._current))
        except Exception:
            return self._failed()

    async def reload_async(self) -> ReloadReport:
        """:meth:`reload` with the file-system work and parsing in a worker thread."""
        if self._reloading is None:
            self._reloading = asyncio.Lock()
        async with self._reloading:
            try:
                while True:
                    prev = self._current
                    prepared = await asyncio.to_thread(self._prepare, prev)
                    if self._current is prev:
                        return self._apply(prepared)
            except Exception:
                return self._failed()

    def _failed(self) -> ReloadReport:
        log.exception("ivr reload failed; the previous flows keep serving")
        return ReloadReport(rejected={str(self.root): []})

    def _apply(self, prepared: _Prepared) -> ReloadReport:
        """Swap in a prepared set and report it (on the caller's thread: the loop)."""
        self._signature = prepared.signature
        self._current = prepared.candidate
        self._report(prepared.accepted, prepared.removed, prepared.rejected, prepared.warnings)
        return ReloadReport(
            tuple(sorted(prepared.accepted)),
            prepared.removed,
            prepared.rejected,
            prepared.warnings,
        )

    def _prepare(self, prev: FlowSet) -> _Prepared:
        """Read, parse and check the folder against ``prev``; changes nothing (any thread)."""
        signature = _signature(self.root)
        fresh, parse_diags = load_folder(self.root, self.extra_groups)
        rejected: dict[str, list[Diagnostic]] = {}
        for d in parse_diags:
            rejected.setdefault(d.path, []).append(d)

        # Support files: a broken calendar or skill-group file keeps the previous content.
        calendars = dict(fresh.calendars)
        calendar_files = dict(fresh.calendar_files)
        for cal_id, cal in prev.calendars.items():
            shown = prev.calendar_files.get(cal_id, "")
            if shown in rejected:
                calendars[cal_id] = cal
                calendar_files[cal_id] = shown
        groups = fresh.skill_groups
        if any(Path(p).name == SKILL_GROUPS_FILE for p in rejected):
            groups = prev.skill_groups

        # Flows: unchanged files keep their object; unparsable ones their previous version.
        flows: dict[str, LoadedFlow] = {}
        for flow_id, loaded in fresh.flows.items():
            old = prev.flows.get(flow_id)
            same = old is not None and old.version == loaded.version and old.path == loaded.path
            flows[flow_id] = old if same and old is not None else loaded
        for flow_id, old in prev.flows.items():
            if flow_id not in flows and old.display in rejected:
                flows[flow_id] = old
        candidate = replace(
            fresh,
            flows=flows,
            calendars=calendars,
            calendar_files=calendar_files,
            skill_groups=groups,
        )

        for _ in range(len(flows) + len(prev.flows) + 3):
            errors = [d for d in check_set(candidate) if d.is_error]
            if not errors:
                break
            by_file: dict[str, list[Diagnostic]] = {}
            for d in errors:
                by_file.setdefault(d.path, []).append(d)
            candidate = self._revert(candidate, prev, by_file, rejected)

        accepted = {fid: lf for fid, lf in candidate.flows.items() if prev.flows.get(fid) is not lf}
        removed = tuple(sorted(fid for fid in prev.flows if fid not in candidate.flows))
        warnings = tuple(
            d
            for d in check_set(candidate, accepted)
            if not d.is_error and d.path in {lf.display for lf in accepted.values()}
        )
        return _Prepared(prev, signature, candidate, accepted, removed, rejected, warnings)

    def _revert(
        self,
        candidate: FlowSet,
        prev: FlowSet,
        by_file: dict[str, list[Diagnostic]],
        rejected: dict[str, list[Diagnostic]],
    ) -> FlowSet:
        """Undo the changes that the errors blame; the result has fewer changes."""
        flows = dict(candidate.flows)
        changed = {
            fid for fid in set(flows) | set(prev.flows) if flows.get(fid) is not prev.flows.get(fid)
        }
        blamed = {fid for fid in changed if _display_of(fid, flows, prev) in by_file}
        if not blamed:
            # Errors in unchanged files: some change broke them. Undo every change.
            blamed = changed
        if not blamed:
            support_changed = (
                candidate.skill_groups != prev.skill_groups or candidate.calendars != prev.calendars
            )
            if support_changed and prev.flows:
                # A calendar or skill-group edit broke served flows: keep the previous ones.
                for d in (d for diags in by_file.values() for d in diags):
                    rejected.setdefault(_support_file(self.root, d), []).append(d)
                return replace(
                    candidate,
                    calendars=prev.calendars,
                    calendar_files=prev.calendar_files,
                    skill_groups=prev.skill_groups,
                )
            # First load: a flow with errors is not served.
            for fid, lf in list(flows.items()):
                if lf.display in by_file:
                    rejected.setdefault(lf.display, []).extend(by_file[lf.display])
                    del flows[fid]
            return replace(candidate, flows=flows)
        for fid in blamed:
            shown = _display_of(fid, flows, prev)
            rejected.setdefault(shown, []).extend(by_file.get(shown, []))
            if fid in prev.flows:
                flows[fid] = prev.flows[fid]
            else:
                flows.pop(fid, None)
        return replace(candidate, flows=flows)

    def _report(
        self,
        accepted: dict[str, LoadedFlow],
        removed: tuple[str, ...],
        rejected: dict[str, list[Diagnostic]],
        warnings: tuple[Diagnostic, ...],
    ) -> None:
        for flow_id, loaded in sorted(accepted.items()):
            log.info(
                "ivr flow loaded",
                extra={
                    "flow": flow_id,
                    "version": loaded.version,
                    "file": loaded.display,
                    "hotlines": list(loaded.flow.hotlines),
                },
            )
            if self.on_loaded is not None:
                self.on_loaded(loaded)
        for flow_id in removed:
            log.info("ivr flow removed", extra={"flow": flow_id})
        for shown, diags in sorted(rejected.items()):
            kept = any(lf.display == shown for lf in self._current.flows.values())
            for d in diags:
                log.error(
                    "ivr flow rejected: %s",
                    d,
                    extra={
                        "file": d.path,
                        "line": d.line,
                        "error": d.message,
                        "kept_previous": kept,
                    },
                )
            if self.on_error is not None:
                self.on_error(shown, diags)
        for d in warnings:
            log.warning("ivr flow warning: %s", d, extra={"file": d.path, "line": d.line})

    # -- watching -------------------------------------------------------------------------

    def changed(self) -> bool:
        """Whether any file of the folder changed since the last reload."""
        return _signature(self.root) != self._signature

    def start(self, interval: float = 2.0) -> asyncio.Task[None]:
        """Start the watcher task on the running loop (reloads when files change)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(interval), name="ivr flow watcher")
        return self._task

    async def stop(self) -> None:
        """Stop the watcher task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if await asyncio.to_thread(_signature, self.root) != self._signature:
                    await self.reload_async()
            except Exception:
                log.exception("ivr flow watcher failed; still watching")


def _display_of(flow_id: str, flows: dict[str, LoadedFlow], prev: FlowSet) -> str:
    lf = flows.get(flow_id) or prev.flows.get(flow_id)
    return lf.display if lf is not None else flow_id


def _support_file(root: Path, d: Diagnostic) -> str:
    """Where to report an error caused by a calendar or skill-group edit."""
    del d
    return display_path(root / SKILL_GROUPS_FILE)


def _signature(root: Path) -> Signature:
    out: list[tuple[str, int, int]] = []
    if not root.is_dir():
        return ()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix not in (".yaml", ".yml") and rel.parts[0] == CALENDARS_DIR:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((str(rel), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(out))
