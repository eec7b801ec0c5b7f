"""``rnn run start|status|logs|cancel|results|receipts``: workflow runs on the local node.

Every command talks to the running node over its control socket; the node does the work
(resolving services, driving executors, verifying receipts).  ``--follow`` streams live
log lines (``run.logs``) until the run ends, then prints the final state.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from rnn_tui.commands.common import control_call, control_stream, print_json, print_table
from rnn_tui.errors import RnnError

__all__ = ["register"]

_FINAL = ("COMPLETED", "FAILED", "CANCELLED")


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="start, watch and inspect workflow runs")
    rsub = run.add_subparsers(dest="run_command", metavar="ACTION", required=True)

    start = rsub.add_parser("start", help="start a run of a stored workflow (NAME) or a file")
    start.add_argument("workflow", metavar="NAME|FILE")
    start.add_argument("--follow", action="store_true", help="stream logs until the run ends")
    start.add_argument("--resume", action="store_true",
                       help="reuse outputs of identical earlier jobs (same image, parameters "
                            "and input hashes) and keep this run's for later")
    start.add_argument("--json", action="store_true")
    start.set_defaults(func=cmd_start)

    status = rsub.add_parser("status", help="list runs, or show one run and its jobs")
    status.add_argument("run_id", nargs="?", metavar="RUN_ID")
    status.add_argument("--wait", type=float, metavar="SECONDS",
                        help="wait up to SECONDS for the run to end")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    logs = rsub.add_parser("logs", help="show a run's job output (STDOUT/STDERR lines)")
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("job", nargs="?", metavar="JOB")
    logs.add_argument("--follow", "-f", action="store_true", help="keep streaming until the end")
    logs.add_argument("--json", action="store_true", help="one JSON object per line")
    logs.set_defaults(func=cmd_logs)

    cancel = rsub.add_parser("cancel", help="cancel a run; every executor is told to stop")
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(func=cmd_cancel)

    results = rsub.add_parser("results", help="list (and copy) the results delivered to you")
    results.add_argument("run_id", metavar="RUN_ID")
    results.add_argument("--output", metavar="DIR", help="copy the result files into DIR")
    results.add_argument("--json", action="store_true")
    results.set_defaults(func=cmd_results)

    receipts = rsub.add_parser("receipts", help="show the executors' signed receipts")
    receipts.add_argument("run_id", metavar="RUN_ID")
    receipts.add_argument("--verify", action="store_true",
                          help="re-check every signature and result hash; exit 1 on a problem")
    receipts.add_argument("--json", action="store_true")
    receipts.set_defaults(func=cmd_receipts)


def cmd_start(args: argparse.Namespace) -> int:
    path = Path(args.workflow)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RnnError(f"{path}: cannot read: {exc}") from None
        params: dict[str, Any] = {"yaml": text, "source": str(path)}
    else:
        params = {"name": args.workflow}
    params["resume"] = bool(args.resume)
    run = control_call(args, "run.start", params, timeout=60.0)
    if args.follow:
        _follow(args, run["run_id"])
        run = control_call(args, "run.status", {"run_id": run["run_id"], "wait": 30})
    if args.json:
        print_json(run)
    else:
        print(f"run {run['run_id']} of {run['workflow']}: {run['status']}")
        if args.follow:
            _print_run(run)
    return 0 if not args.follow or run["status"] == "COMPLETED" else 1


def _follow(args: argparse.Namespace, run_id: str) -> None:
    for item in control_stream(args, "run.logs", {"run_id": run_id, "follow": True}):
        out = sys.stderr if item["stream"] == "STDERR" else sys.stdout
        print(f"[{item['job']}] {item['text']}", file=out, flush=True)


def cmd_status(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"run_id": args.run_id} if args.run_id else {}
    if args.run_id and args.wait:
        params["wait"] = args.wait
    result = control_call(args, "run.status", params,
                          timeout=30.0 + (args.wait or 0 if args.run_id else 0))
    if args.json:
        print_json(result)
    elif args.run_id:
        _print_run(result)
    else:
        print_table(["RUN", "WORKFLOW", "STATUS", "JOBS", "REASON"],
                    [[r["run_id"], r["workflow"], r["status"],
                      f"{sum(1 for j in r['jobs'] if j['status'] == 'COMPLETED')}/{len(r['jobs'])}",
                      r["reason"][:60]] for r in result])
    return 0


def _print_run(run: dict[str, Any]) -> None:
    print(f"run {run['run_id']} ({run['workflow']}): {run['status']}"
          + (f" — {run['reason']}" if run["reason"] else ""))
    print_table(["JOB", "STATUS", "TRY", "EXECUTOR", "EXIT", "REASON"],
                [[j["job"], j["status"], str(j["attempt"]), j["executor"][:10],
                  "" if j["exit_code"] is None else str(j["exit_code"]), j["reason"][:70]]
                 for j in run["jobs"]])


def cmd_logs(args: argparse.Namespace) -> int:
    params = {"run_id": args.run_id, "job": args.job, "follow": args.follow}
    for item in control_stream(args, "run.logs", params):
        if args.json:
            print_json(item)
            continue
        out = sys.stderr if item["stream"] == "STDERR" else sys.stdout
        prefix = "" if args.job else f"[{item['job']}] "
        print(f"{prefix}{item['text']}", file=out, flush=True)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    result = control_call(args, "run.cancel", {"run_id": args.run_id})
    if args.json:
        print_json(result)
    else:
        print(f"run {result['run_id']}: {result['status']} ({result['reason']})")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    result = control_call(args, "run.results", {"run_id": args.run_id}, timeout=120.0)
    if args.output:
        target = Path(args.output)
        target.mkdir(parents=True, exist_ok=True)
        for item in result["files"]:
            if not item.get("missing"):
                dest = target / item["file"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(item["path"], dest)
                item["copied_to"] = str(dest)
    if args.json:
        print_json(result)
        return 0
    print_table(["FILE", "JOB", "SIZE", "SHA256", "RECEIPT"],
                [[f["file"], f["job"], str(f.get("size", "-")), f.get("sha256", "missing")[:16],
                  "ok" if f["matches_receipt"] else "MISMATCH"] for f in result["files"]])
    if args.output:
        print(f"copied to {args.output}")
    return 0


def cmd_receipts(args: argparse.Namespace) -> int:
    result = control_call(args, "run.receipts", {"run_id": args.run_id}, timeout=120.0)
    if args.json:
        print_json(result)
    else:
        print_table(["JOB", "TRY", "EXECUTOR", "EXIT", "SERVICE", "VERIFIED", "PROBLEMS"],
                    [[r["job"], str(r.get("attempt", "?")), r["executor"][:10],
                      str(r.get("exit_code", "?")), str(r.get("service", "?")),
                      "yes" if r["verified"] else "NO", "; ".join(r["problems"])[:60]]
                     for r in result["receipts"]])
        for f in result["results"]:
            if not f["matches_receipt"]:
                print(f"result {f['file']}: does not match its receipt"
                      + (" (missing)" if f.get("missing") else ""))
        print("all receipts and results verify" if result["ok"] else "VERIFICATION FAILED")
    return 0 if result["ok"] or not args.verify else 1
