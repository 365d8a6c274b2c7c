"""Loading flow files: YAML with a line number for every node and field, into frozen models.

A flow set is a folder (``TELEPHONY_IVR_FLOWS``, default ``ivr_flows/``)::

    ivr_flows/
      hotline-12345.yaml      one flow a file; its id is the file name without .yaml
      ...
      skill_groups.yaml       the skill groups flows may queue into (optional)
      calendars/<id>.yaml     business-hours calendars with public holidays
      prompts/...             audio files, referenced relative to the folder

Which flow answers which number is a field of the flow (``hotlines:``),
not a separate map: a designer changes one file to change one hotline, a
reload swaps that file alone, and :mod:`telephony.ivr.check` refuses a
number claimed by two flows.

Parsing keeps the YAML nodes' positions: :class:`LineMap` gives the line of
any key path (``("nodes", "main", "options", "1")``), so every problem is
reported as ``file:line: message``. PyYAML's composer already records
positions (``start_mark``), so no other YAML library is needed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; types-PyYAML is optional
from pydantic import BaseModel, ValidationError

from telephony.ivr.schema import Calendar, Flow, SkillGroupsFile

Severity = Literal["error", "warning"]
KeyPath = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

SKILL_GROUPS_FILE = "skill_groups.yaml"
CALENDARS_DIR = "calendars"
#: The group that always exists (the engine creates it on first start).
DEFAULT_GROUPS = frozenset({"general"})


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One problem found in a file: ``file:line: message`` (warnings say so)."""

    path: str
    line: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        """The ``file:line: message`` form."""
        tag = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}: {tag}{self.message}"

    @property
    def is_error(self) -> bool:
        """Whether this is an error (not a warning)."""
        return self.severity == "error"


@dataclass(frozen=True, slots=True)
class LineMap:
    """Line numbers (1-based) of the keys and items of one YAML document."""

    lines: Mapping[KeyPath, int]

    def line(self, *path: str | int) -> int:
        """The line of ``path``, or of its nearest known parent (the document's first line)."""
        p: KeyPath = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)

    def line_of_loc(self, loc: Iterable[str | int]) -> int:
        """The line of a pydantic error location (union tags in it are skipped)."""
        path: KeyPath = ()
        for item in loc:
            key: str | int = item if isinstance(item, int) else str(item)
            if (*path, key) in self.lines:
                path = (*path, key)
            elif isinstance(key, str) and key.isdigit() and (*path, int(key)) in self.lines:
                path = (*path, int(key))
        return self.line(*path)


class YamlError(Exception):
    """The file is not valid YAML (or has duplicate keys); carries the diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


def parse_yaml(text: str, path: str) -> tuple[Any, LineMap]:
    """Parse one YAML document into plain data and the line of every key and item.

    Mapping keys become strings (so that ``1:`` in a menu means the key
    ``"1"``); a duplicate key is an error (PyYAML would silently keep the
    last one).
    """
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlError([Diagnostic(path, line, f"invalid YAML: {exc.problem}")]) from exc
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    errors: list[Diagnostic] = []
    if root is None:
        return None, LineMap({(): 1})
    data = _convert(root, (), lines, errors, path, loader)
    if errors:
        raise YamlError(errors)
    return data, LineMap(lines)


def _convert(
    node: yaml.Node,
    at: KeyPath,
    lines: dict[KeyPath, int],
    errors: list[Diagnostic],
    path: str,
    loader: yaml.SafeLoader,
) -> Any:
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            name = key.isoformat() if isinstance(key, dt.date) else str(key)
            line = key_node.start_mark.line + 1
            if name in out:
                errors.append(Diagnostic(path, line, f"duplicate key {name!r}"))
                continue
            lines[(*at, name)] = line
            out[name] = _convert(value_node, (*at, name), lines, errors, path, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*at, i), lines, errors, path, loader)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


def validation_diagnostics(exc: ValidationError, path: str, lines: LineMap) -> list[Diagnostic]:
    """pydantic's errors as ``file:line`` diagnostics, with readable locations."""
    out: list[Diagnostic] = []
    seen: set[tuple[int, str]] = set()
    for err in exc.errors(include_url=False):
        where = _where(err["loc"], lines).replace(".[key]", " (key)")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            message = f"unknown node type {ctx.get('tag')!r} (expected {ctx.get('expected_tags')})"
        elif err["type"] == "union_tag_not_found":
            message = "a node needs a `type`"
        text = f"{where}: {message}" if where else message
        line = lines.line_of_loc(err["loc"])
        if (line, text) in seen:
            continue
        seen.add((line, text))
        out.append(Diagnostic(path, line, text))
    return out


def _where(loc: Iterable[str | int], lines: LineMap) -> str:
    """The location as the file spells it: keys that exist, plus a missing last field.

    pydantic puts union tags (the node ``type``, ``function-after[...]``) in
    the location; they are not keys of the file and are left out.
    """
    items = list(loc)
    path: KeyPath = ()
    parts: list[str] = []
    for i, item in enumerate(items):
        key: str | int = item if isinstance(item, int) else str(item)
        if (*path, key) in lines.lines:
            path = (*path, key)
            parts.append(str(key))
        elif i == len(items) - 1 and not _is_union_tag(item):
            parts.append(str(key))
    return ".".join(parts)


_UNION_TAGS = frozenset({"str", "Prompt"})


def _is_union_tag(item: str | int) -> bool:
    return isinstance(item, str) and (item in _UNION_TAGS or ("[" in item and item != "[key]"))


def load_model(model: type[M], path: Path, display: str | None = None) -> tuple[M, LineMap]:
    """Read, parse and validate one YAML file; raises :class:`YamlError` with diagnostics."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError([Diagnostic(name, 1, f"cannot read: {exc}")]) from exc
    data, lines = parse_yaml(text, name)
    if not isinstance(data, dict):
        raise YamlError([Diagnostic(name, 1, "expected a mapping at the top of the file")])
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        raise YamlError(validation_diagnostics(exc, name, lines)) from exc


@dataclass(frozen=True, slots=True)
class LoadedFlow:
    """A flow as loaded from one file: the model, where it came from, its lines and version."""

    id: str
    path: Path
    display: str
    flow: Flow
    lines: LineMap
    version: str
    mtime_ns: int

    def line(self, *key: str | int) -> int:
        """The line of a key path of the file."""
        return self.lines.line(*key)

    def node_line(self, node_id: str, field_name: str | None = None) -> int:
        """Line of a node (or of one of its fields)."""
        if field_name is None:
            return self.lines.line("nodes", node_id)
        return self.lines.line("nodes", node_id, field_name)


@dataclass(frozen=True, slots=True)
class FlowSet:
    """One consistent version of a flows folder: flows, calendars and skill groups.

    Immutable: a reload builds a new set; calls in progress keep theirs, so
    their sub-flows and calendars stay those of the version they began with.
    """

    root: Path  # absolute: prompt paths are resolved against it on every call
    flows: Mapping[str, LoadedFlow] = field(default_factory=dict)
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    calendar_files: Mapping[str, str] = field(default_factory=dict)
    skill_groups: frozenset[str] = DEFAULT_GROUPS

    def for_hotline(self, number: str) -> LoadedFlow | None:
        """The flow that answers ``number``, if any."""
        for loaded in self.flows.values():
            if number in loaded.flow.hotlines:
                return loaded
        return None

    @property
    def hotlines(self) -> dict[str, str]:
        """Hotline number -> flow id."""
        return {n: f.id for f in self.flows.values() for n in f.flow.hotlines}


def display_path(path: Path) -> str:
    """How a path is shown in diagnostics: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def flow_files(root: Path) -> list[Path]:
    """The flow files of a folder: its ``*.yaml``/``*.yml`` files except ``skill_groups.yaml``."""
    files = [*root.glob("*.yaml"), *root.glob("*.yml")]
    return sorted(p for p in files if p.name != SKILL_GROUPS_FILE and p.is_file())


def load_flow(path: Path) -> LoadedFlow:
    """Load and validate one flow file (schema only; see :mod:`telephony.ivr.check`)."""
    display = display_path(path)
    raw = path.read_bytes() if path.is_file() else b""
    flow, lines = load_model(Flow, path, display)
    stat = path.stat()
    return LoadedFlow(
        id=path.stem,
        path=path,
        display=display,
        flow=flow,
        lines=lines,
        version=hashlib.sha256(raw).hexdigest()[:12],
        mtime_ns=stat.st_mtime_ns,
    )


def load_support(
    root: Path, extra_groups: Iterable[str] = ()
) -> tuple[dict[str, Calendar], dict[str, str], frozenset[str], list[Diagnostic]]:
    """Calendars and skill groups of a folder, with their diagnostics."""
    diagnostics: list[Diagnostic] = []
    calendars: dict[str, Calendar] = {}
    calendar_files: dict[str, str] = {}
    cal_dir = root / CALENDARS_DIR
    if cal_dir.is_dir():
        for path in sorted([*cal_dir.glob("*.yaml"), *cal_dir.glob("*.yml")]):
            try:
                calendar, _ = load_model(Calendar, path, display_path(path))
            except YamlError as exc:
                diagnostics.extend(exc.diagnostics)
                continue
            calendars[path.stem] = calendar
            calendar_files[path.stem] = display_path(path)
    groups = set(DEFAULT_GROUPS) | set(extra_groups)
    groups_path = root / SKILL_GROUPS_FILE
    if groups_path.is_file():
        try:
            declared, _ = load_model(SkillGroupsFile, groups_path, display_path(groups_path))
            groups.update(g.id for g in declared.skill_groups)
        except YamlError as exc:
            diagnostics.extend(exc.diagnostics)
    return calendars, calendar_files, frozenset(groups), diagnostics


def load_folder(root: Path, extra_groups: Iterable[str] = ()) -> tuple[FlowSet, list[Diagnostic]]:
    """Load every file of a flows folder; files that do not parse are left out and reported.

    The result has passed the schema only; run :func:`telephony.ivr.check.check_set`
    for the checks across nodes and files.
    """
    calendars, calendar_files, groups, diagnostics = load_support(root, extra_groups)
    flows: dict[str, LoadedFlow] = {}
    for path in flow_files(root):
        try:
            loaded = load_flow(path)
        except YamlError as exc:
            diagnostics.extend(exc.diagnostics)
            continue
        flows[loaded.id] = loaded
    flow_set = FlowSet(
        root=root.resolve(),
        flows=flows,
        calendars=calendars,
        calendar_files=calendar_files,
        skill_groups=groups,
    )
    return flow_set, diagnostics
