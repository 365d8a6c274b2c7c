"""Checking a flow set: every problem a designer can make, as ``file:line: message``.

Errors (the flow is refused by ``ivr check`` and by the hot reload):

* a reference to an unknown node, an unknown start node;
* a node that cannot be reached from ``start``;
* a loop with no way out (nodes from which no ending node can be reached);
* a prompt file that does not exist (relative paths, against the flows folder);
* a regular expression that does not compile (``pattern``, ``matches``);
* an unknown skill group, calendar or sub-flow, a sub-flow that includes itself;
* a hotline number claimed by two flows;
* a TTS prompt that FreeSWITCH cannot carry inside ``play_and_get_digits``
  (``say`` prompts, or text with ASCII spaces; use a ``speak``/``say`` node
  before the menu instead);
* a transfer number that is not a telephone number.

Warnings (reported, not refused): dead ends (a node with no ``next``, a menu
or collect with no ``fallback``: the call is hung up there; a voicemail with
no ``fallback`` for a message that cannot be recorded), a voicemail with no
``failed_prompt`` (the caller is not told), and ``${variables}`` that no
node sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from telephony.ivr.loader import (
    Diagnostic,
    FlowSet,
    LoadedFlow,
    display_path,
    flow_files,
    load_folder,
)
from telephony.ivr.schema import (
    TERMINAL_TYPES,
    BlockedCheckNode,
    BranchNode,
    BusinessHoursNode,
    CollectNode,
    HangupNode,
    MenuNode,
    Node,
    PlayNode,
    Prompt,
    QueueNode,
    SayNode,
    SetNode,
    SpeakNode,
    SubflowNode,
    TransferNode,
    VoicemailNode,
)

#: Variables every call has (see :mod:`telephony.ivr.interpreter`).
BUILTIN_VARIABLES = frozenset({"caller", "hotline", "flow", "uuid", "last_key"})
_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
_URL = re.compile(r"^[a-z_]+://")


def successors(node: Node) -> list[tuple[str, str]]:
    """The nodes a node can lead to, as (field, node id) pairs."""
    out: list[tuple[str, str]] = []
    if isinstance(node, MenuNode):
        out += [(f"options.{k}", v) for k, v in node.options.items()]
        if node.fallback:
            out.append(("fallback", node.fallback))
    elif isinstance(node, CollectNode):
        out += [(f, v) for f, v in (("next", node.next), ("fallback", node.fallback)) if v]
    elif isinstance(node, BranchNode):
        out += [(f"cases.{i}.next", c.next) for i, c in enumerate(node.cases)]
        out.append(("default", node.default))
    elif isinstance(node, BusinessHoursNode):
        out += [("open", node.open), ("closed", node.closed)]
        if node.holiday:
            out.append(("holiday", node.holiday))
    elif isinstance(node, BlockedCheckNode):
        out.append(("next", node.next))
        if node.blocked:
            out.append(("blocked", node.blocked))
    elif isinstance(node, VoicemailNode) and node.fallback:
        out.append(("fallback", node.fallback))
    elif isinstance(node, PlayNode | SpeakNode | SayNode | SetNode | SubflowNode) and node.next:
        out.append(("next", node.next))
    return out


def ends_here(node: Node) -> bool:
    """Whether the IVR can end at this node (an ending node, or a hang-up by default)."""
    if node.type in TERMINAL_TYPES:
        return True
    if isinstance(node, MenuNode | CollectNode) and not node.fallback:
        return True
    if isinstance(node, BlockedCheckNode) and node.blocked is None:
        return True
    return isinstance(node, PlayNode | SpeakNode | SayNode | SetNode | SubflowNode) and (
        node.next is None
    )


def prompts_of(node: Node) -> Iterator[tuple[str, Prompt, bool]]:
    """The prompts of a node: (field, prompt, whether it is a play_and_get_digits prompt)."""
    if isinstance(node, PlayNode):
        yield "prompt", node.prompt, False
    elif isinstance(node, MenuNode | CollectNode):
        yield "prompt", node.prompt, True
        for name in ("invalid_prompt", "timeout_prompt"):
            p = getattr(node, name)
            if p is not None:
                yield name, p, False
    elif isinstance(node, QueueNode | TransferNode) and node.prompt:
        yield "prompt", node.prompt, False
    elif isinstance(node, VoicemailNode):
        yield "prompt", node.prompt, False
        if node.goodbye:
            yield "goodbye", node.goodbye, False
        if node.failed_prompt:
            yield "failed_prompt", node.failed_prompt, False
    elif isinstance(node, BlockedCheckNode) and node.prompt:
        yield "prompt", node.prompt, False
    elif isinstance(node, HangupNode) and node.goodbye:
        yield "goodbye", node.goodbye, False


def check_set(flow_set: FlowSet, only: Iterable[str] | None = None) -> list[Diagnostic]:
    """Every error and warning of a loaded set, sorted by file and line.

    ``only`` limits the flows checked (by id); the others still count as
    targets of sub-flows and as owners of hotline numbers.
    """
    wanted = set(only) if only is not None else set(flow_set.flows)
    out: list[Diagnostic] = []
    owners: dict[str, list[LoadedFlow]] = {}
    for loaded in flow_set.flows.values():
        for number in loaded.flow.hotlines:
            owners.setdefault(number, []).append(loaded)
    for number, flows in owners.items():
        if len(flows) > 1:
            names = ", ".join(sorted(f.id for f in flows))
            for loaded in flows:
                if loaded.id in wanted:
                    index = loaded.flow.hotlines.index(number)
                    out.append(
                        Diagnostic(
                            loaded.display,
                            loaded.line("hotlines", index),
                            f"hotline {number} is claimed by several flows: {names}",
                        )
                    )
    for flow_id in sorted(wanted):
        target = flow_set.flows.get(flow_id)
        if target is not None:
            out.extend(_FlowChecker(flow_set, target).run())
    return sorted(out, key=lambda d: (d.path, d.line, d.message))


class _FlowChecker:
    def __init__(self, flow_set: FlowSet, loaded: LoadedFlow) -> None:
        self.set = flow_set
        self.loaded = loaded
        self.flow = loaded.flow
        self.out: list[Diagnostic] = []

    def error(self, line: int, message: str) -> None:
        self.out.append(Diagnostic(self.loaded.display, line, message))

    def warn(self, line: int, message: str) -> None:
        self.out.append(Diagnostic(self.loaded.display, line, message, "warning"))

    def run(self) -> list[Diagnostic]:
        flow, lf = self.flow, self.loaded
        if flow.start not in flow.nodes:
            self.error(lf.line("start"), f"unknown node {flow.start!r} (start)")
        if flow.calendar is not None and flow.calendar not in self.set.calendars:
            self.error(lf.line("calendar"), f"unknown calendar {flow.calendar!r}")
        for node_id, node in flow.nodes.items():
            self.check_node(node_id, node)
        if flow.survey is not None:
            self.check_prompt(("survey", "prompt"), flow.survey.prompt, digits=True)
            for name in ("invalid_prompt", "thanks"):
                p = getattr(flow.survey, name)
                if p is not None:
                    self.check_prompt(("survey", name), p, digits=False)
        self.check_graph()
        self.check_subflow_cycles()
        self.check_variables()
        return self.out

    # -- one node -------------------------------------------------------------------------

    def check_node(self, node_id: str, node: Node) -> None:
        lf = self.loaded
        for field_path, target in successors(node):
            if target not in self.flow.nodes:
                keys = field_path.split(".")
                line = lf.lines.line_of_loc(("nodes", node_id, *keys))
                self.error(line, f"unknown node {target!r} ({node_id}.{field_path})")
        for name, prompt, digits in prompts_of(node):
            self.check_prompt(("nodes", node_id, name), prompt, digits=digits)
        if isinstance(node, CollectNode) and node.pattern is not None:
            self.check_regex(node.pattern, lf.node_line(node_id, "pattern"))
        if isinstance(node, BranchNode):
            for i, case in enumerate(node.cases):
                if case.matches is not None:
                    self.check_regex(case.matches, lf.line("nodes", node_id, "cases", i, "matches"))
        if isinstance(node, QueueNode) and node.group not in self.set.skill_groups:
            known = ", ".join(sorted(self.set.skill_groups))
            self.error(
                lf.node_line(node_id, "group"),
                f"unknown skill group {node.group!r} (known: {known})",
            )
        if isinstance(node, BusinessHoursNode):
            calendar = node.calendar or self.flow.calendar
            if calendar is None:
                self.error(
                    lf.node_line(node_id), f"{node_id}: no calendar (set the flow's calendar)"
                )
            elif node.calendar is not None and calendar not in self.set.calendars:
                self.error(lf.node_line(node_id, "calendar"), f"unknown calendar {calendar!r}")
        if isinstance(node, SubflowNode):
            if node.flow not in self.set.flows:
                self.error(lf.node_line(node_id, "flow"), f"unknown flow {node.flow!r}")
            elif node.flow == lf.id:
                self.error(lf.node_line(node_id, "flow"), f"flow {lf.id!r} includes itself")
        if (
            isinstance(node, TransferNode)
            and "${" not in node.number
            and not _NUMBER.match(node.number)
        ):
            self.error(lf.node_line(node_id, "number"), f"not a telephone number: {node.number!r}")
        if isinstance(node, SpeakNode) and "|" in node.text:
            self.error(lf.node_line(node_id, "text"), "TTS text must not contain '|'")
        if isinstance(node, SayNode) and " " in node.value:
            self.error(lf.node_line(node_id, "value"), "a said value must not contain spaces")
        if isinstance(node, PlayNode | SpeakNode | SayNode | SetNode | SubflowNode) and (
            node.next is None
        ):
            self.warn(lf.node_line(node_id), f"dead end: the call is hung up after {node_id!r}")
        if isinstance(node, MenuNode | CollectNode) and node.fallback is None:
            self.warn(
                lf.node_line(node_id),
                f"dead end: {node_id!r} has no fallback; the call is hung up after the last try",
            )
        if isinstance(node, CollectNode) and node.next is None:
            self.warn(lf.node_line(node_id), f"dead end: the call is hung up after {node_id!r}")
        if isinstance(node, VoicemailNode):
            if node.failed_prompt is None:
                self.warn(
                    lf.node_line(node_id),
                    f"{node_id!r} has no failed_prompt: a caller whose message cannot be"
                    " recorded is not told",
                )
            if node.fallback is None:
                self.warn(
                    lf.node_line(node_id),
                    f"dead end: {node_id!r} has no fallback; the call is hung up when the"
                    " message cannot be recorded",
                )

    def check_prompt(self, where: tuple[str, ...], prompt: Prompt, *, digits: bool) -> None:
        line = self.loaded.lines.line(*where)
        if prompt.file is not None and not _URL.match(prompt.file):
            path = Path(prompt.file)
            if not path.is_absolute():
                if ".." in path.parts:
                    self.error(line, f"prompt file outside the flows folder: {prompt.file!r}")
                elif not (self.set.root / path).is_file():
                    self.error(line, f"missing prompt file {prompt.file!r}")
            if " " in prompt.file or "!" in prompt.file:
                self.error(
                    line, f"prompt file name must not contain spaces or '!': {prompt.file!r}"
                )
        if prompt.text is not None and "|" in prompt.text:
            self.error(line, "TTS text must not contain '|'")
        if digits and prompt.say is not None:
            self.error(line, "a menu or collect prompt cannot be a `say` prompt; say it before")
        if digits and prompt.text is not None and " " in prompt.text:
            self.error(
                line,
                "TTS text of a menu or collect prompt must not contain ASCII spaces "
                "(FreeSWITCH splits play_and_get_digits arguments on spaces)",
            )

    def check_regex(self, pattern: str, line: int) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            self.error(line, f"bad pattern {pattern!r}: {exc}")

    # -- the graph ------------------------------------------------------------------------

    def check_graph(self) -> None:
        nodes = self.flow.nodes
        if self.flow.start not in nodes:
            return
        edges = {nid: [t for _, t in successors(n) if t in nodes] for nid, n in nodes.items()}
        reachable = _reach([self.flow.start], edges)
        for node_id in nodes:
            if node_id not in reachable:
                self.error(
                    self.loaded.node_line(node_id),
                    f"unreachable node {node_id!r} (no path from start {self.flow.start!r})",
                )
        reverse: dict[str, list[str]] = {nid: [] for nid in nodes}
        for src, targets in edges.items():
            for t in targets:
                reverse[t].append(src)
        exits = [nid for nid, n in nodes.items() if ends_here(n) or self._unknown_target(n)]
        can_end = _reach(exits, reverse)
        trapped = {nid for nid in reachable if nid not in can_end}
        for component in _cycles(trapped, edges):
            order = sorted(component, key=self.loaded.node_line)
            path = _cycle_path(order[0], component, edges)
            self.error(
                self.loaded.node_line(order[0]),
                "loop with no way out: " + " -> ".join(path),
            )

    def _unknown_target(self, node: Node) -> bool:
        # Already an error; do not also call it a loop.
        return any(t not in self.flow.nodes for _, t in successors(node))

    def check_subflow_cycles(self) -> None:
        start = self.loaded.id
        for node_id, node in self.flow.nodes.items():
            if not isinstance(node, SubflowNode) or node.flow == start:
                continue
            chain = self._subflow_chain(node.flow, [start], set())
            if chain is not None:
                self.error(
                    self.loaded.node_line(node_id, "flow"),
                    "sub-flows include each other: " + " -> ".join(chain),
                )

    def _subflow_chain(self, flow_id: str, path: list[str], seen: set[str]) -> list[str] | None:
        if flow_id == path[0]:
            return [*path, flow_id]
        if flow_id in seen or flow_id not in self.set.flows:
            return None
        seen.add(flow_id)
        for node in self.set.flows[flow_id].flow.nodes.values():
            if isinstance(node, SubflowNode):
                chain = self._subflow_chain(node.flow, [*path, flow_id], seen)
                if chain is not None:
                    return chain
        return None

    def check_variables(self) -> None:
        defined = set(BUILTIN_VARIABLES) | set(self.flow.variables)
        for node in self.flow.nodes.values():
            if isinstance(node, SetNode):
                defined.update(node.values)
            elif isinstance(node, CollectNode | MenuNode) and node.variable:
                defined.add(node.variable)
        if self.flow.survey is not None:
            defined.add("survey_score")
        # Variables set by sub-flows are shared with the caller flow.
        for node in self.flow.nodes.values():
            if isinstance(node, SubflowNode) and node.flow in self.set.flows:
                for sub in self.set.flows[node.flow].flow.nodes.values():
                    if isinstance(sub, SetNode):
                        defined.update(sub.values)
                    elif isinstance(sub, CollectNode | MenuNode) and sub.variable:
                        defined.add(sub.variable)
        for node_id, node in self.flow.nodes.items():
            for field_name, text in _templates(node):
                for name in _TEMPLATE.findall(text):
                    if name not in defined:
                        self.warn(
                            self.loaded.node_line(node_id, field_name),
                            f"variable {name!r} is never set in this flow",
                        )
            if isinstance(node, BranchNode) and node.variable not in defined:
                self.warn(
                    self.loaded.node_line(node_id, "variable"),
                    f"variable {node.variable!r} is never set in this flow",
                )


def _templates(node: Node) -> Iterator[tuple[str, str]]:
    if isinstance(node, SetNode):
        yield from (("values", v) for v in node.values.values())
    elif isinstance(node, SpeakNode):
        yield "text", node.text
    elif isinstance(node, SayNode):
        yield "value", node.value
    elif isinstance(node, TransferNode):
        yield "number", node.number
    for name, prompt, _ in prompts_of(node):
        for text in (prompt.text, prompt.say):
            if text:
                yield name, text


def _reach(starts: Iterable[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        nid = todo.pop()
        if nid in seen:
            continue
        seen.add(nid)
        todo.extend(edges.get(nid, ()))
    return seen


def _cycles(nodes: set[str], edges: dict[str, list[str]]) -> list[set[str]]:
    """Strongly connected components of ``nodes`` that contain a cycle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in nodes:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                out.append(component)

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def _cycle_path(first: str, component: set[str], edges: dict[str, list[str]]) -> list[str]:
    """A cycle through ``first`` inside ``component``, as node ids (first repeated at the end)."""
    parent: dict[str, str] = {}
    todo = [first]
    seen = {first}
    while todo:
        v = todo.pop(0)
        for w in edges.get(v, ()):
            if w == first:
                path = [v]
                while path[-1] != first:
                    path.append(parent[path[-1]])
                return [*reversed(path), first]
            if w in component and w not in seen:
                seen.add(w)
                parent[w] = v
                todo.append(w)
    return sorted(component)


def check_paths(
    paths: Iterable[Path], extra_groups: Iterable[str] = ()
) -> tuple[list[Diagnostic], int]:
    """Check flow files or folders; returns the diagnostics and the number of flows checked.

    A folder is checked whole. A file is checked in the context of its
    folder (its calendars, skill groups and the other flows as sub-flow
    targets), but only its own problems are reported.
    """
    out: list[Diagnostic] = []
    checked = 0
    by_root: dict[Path, set[Path] | None] = {}
    for path in paths:
        if path.is_dir():
            by_root[path] = None
        elif path.is_file():
            files = by_root.setdefault(path.parent, set())
            if files is not None:
                files.add(path.resolve())
        else:
            out.append(Diagnostic(str(path), 1, "no such file or folder"))
    for root, files in by_root.items():
        flow_set, diagnostics = load_folder(root, extra_groups)
        if files is None:
            out.extend(diagnostics)
            only = None
            checked += len(flow_files(root))
        else:
            names = {display_path(f) for f in files}
            others = {display_path(f) for f in flow_files(root)} - names
            # The named files' problems, and those of the files they depend on.
            out.extend(d for d in diagnostics if d.path not in others)
            only = [fid for fid, lf in flow_set.flows.items() if lf.path.resolve() in files]
            checked += len(files)
        out.extend(check_set(flow_set, only))
    return out, checked
