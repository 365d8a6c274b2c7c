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
        self._signature: tuple[tuple[str, int, int], ...] = ()

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
        """Re-read the folder; swap in the valid changes, keep the rest. Never raises."""
        try:
            return self._reload()
        except Exception:
            log.exception("ivr reload failed; the previous flows keep serving")
            return ReloadReport(rejected={str(self.root): []})

    def _reload(self) -> ReloadReport:
        self._signature = _signature(self.root)
        prev = self._current
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
        self._current = candidate
        self._report(accepted, removed, rejected, warnings)
        return ReloadReport(tuple(sorted(accepted)), removed, rejected, warnings)

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
                if self.changed():
                    self.reload()
            except Exception:
                log.exception("ivr flow watcher failed; still watching")


def _display_of(flow_id: str, flows: dict[str, LoadedFlow], prev: FlowSet) -> str:
    lf = flows.get(flow_id) or prev.flows.get(flow_id)
    return lf.display if lf is not None else flow_id


def _support_file(root: Path, d: Diagnostic) -> str:
    """Where to report an error caused by a calendar or skill-group edit."""
    del d
    return display_path(root / SKILL_GROUPS_FILE)


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
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
