"""``rnn workflow validate FILE``: check a workflow file offline.

Why offline: an author should be able to check a file in an editor loop or in CI without a
running node.  Services and peers are then only checked for form (``any`` references are
resolved when a run starts); everything else (YAML, keys, ports, cycles, dangling inputs) is
checked fully.  Problems print one per line as ``FILE:LINE:COL: message``, the format editors
and CI annotate, and the exit status is 1 when there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rnn_tui.workflow.problems import WorkflowInvalid
from rnn_tui.workflow.validate import validate_workflow
from rnn_tui.workflow.yaml_io import load_workflow_file

__all__ = ["register", "cmd_validate", "cmd_import", "cmd_export"]


def register(sub: Any) -> None:
    workflow = sub.add_parser("workflow", help="workflow files: validate (import/export with a node)")
    wsub = workflow.add_subparsers(dest="workflow_command", metavar="ACTION", required=True)
    validate = wsub.add_parser("validate", help="check a workflow YAML file offline; print "
                                                "FILE:LINE:COL: message per problem")
    validate.add_argument("file", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="print problems as JSON")
    validate.set_defaults(func=cmd_validate)
    imp = wsub.add_parser("import", help="validate a workflow file and store it in the node")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_import)
    exp = wsub.add_parser("export", help="print a stored workflow as YAML")
    exp.add_argument("name", metavar="NAME")
    exp.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    exp.set_defaults(func=cmd_export)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        loaded = load_workflow_file(args.file)
    except WorkflowInvalid as exc:
        return _report(args, [(p.source, p.line, p.column, p.message) for p in exc.located])
    problems = validate_workflow(loaded.workflow, loaded.marks, loaded.source)
    if problems:
        return _report(args, [(p.source, p.line, p.column, p.message) for p in problems])
    wf = loaded.workflow
    if getattr(args, "json", False):
        json.dump({"file": args.file, "ok": True, "name": wf.name, "jobs": len(wf.jobs),
                   "connections": len(wf.connections)}, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"{args.file}: ok: workflow {wf.name!r}, {len(wf.jobs)} jobs, "
              f"{len(wf.connections)} connections")
    return 0


def _report(args: argparse.Namespace, rows: list[tuple[str, int, int, str]]) -> int:
    if getattr(args, "json", False):
        json.dump({"file": args.file, "ok": False, "problems": [
            {"line": line, "column": col, "message": msg} for _, line, col, msg in rows]},
            sys.stdout)
        sys.stdout.write("\n")
    else:
        for source, line, col, msg in rows:
            print(f"{source}:{line}:{col}: {msg}" if line else f"{source}: {msg}",
                  file=sys.stderr)
    return 1


def cmd_import(args: argparse.Namespace) -> int:
    """Store a workflow in the running node (validated there, with line:column errors)."""
    from rnn_tui.commands.common import control_call
    from rnn_tui.errors import RnnError

    try:
        with open(args.file, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RnnError(f"{args.file}: cannot read: {exc}") from None
    result = control_call(args, "workflow.import", {"yaml": text, "source": args.file})
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"imported workflow {result['name']!r} ({result['jobs']} jobs)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Print (or write) a stored workflow exactly as it was imported."""
    from rnn_tui.commands.common import control_call

    result = control_call(args, "workflow.export", {"name": args.name})
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(result["yaml"])
    else:
        sys.stdout.write(result["yaml"])
    return 0
