"""`splitbrain test-all PLAN.toml`: run a plan, the gate's verdict as the exit code."""

from __future__ import annotations

import argparse
from typing import Any

from splitbrain.harness.plan.model import POLICIES

TEST_ALL_EXIT_CODES = """exit codes: 0 every test met its expectation (valid, or its bug found, as its pass policy asks), 1 a
test did not, 2 a test is only unknown (the checkers could not decide), 3 a wrong plan or option
(one line naming the file, the line and the key; nothing was started), 4 the harness failed on a
run. Stopped by SIGINT/SIGTERM/SIGHUP: the running runs heal and clean up, the index and JUnit file
are written for what ran, and the exit code is 1 if a test already failed, else 128 + the signal."""


def add_test_all(sub: Any) -> None:
    p = sub.add_parser("test-all", help="run a test plan: a matrix of tests with repeats and pass policies",
                       description="Run every test of a TOML plan (targets x workloads x nemesis sets x options "
                                   "x seeds, count repeats), each run in its own run directory of a new plan "
                                   "folder with an index (index.json), failures grouped by signature, and "
                                   "JUnit XML. See docs/plans.md.",
                       epilog=TEST_ALL_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", metavar="PLAN.toml")
    p.add_argument("--junit", metavar="FILE", help="also write the JUnit XML here (it is always in the plan folder)")
    p.add_argument("--test-count", type=int, metavar="N", help="run every test N times (overrides each count)")
    p.add_argument("--pass-policy", choices=POLICIES,
                   help="every test passes when all | most | any of its runs meet its expectation "
                        "(default: each test's policy: all for valid, any for invalid)")
    p.add_argument("--only", action="append", metavar="PATTERN",
                   help="run only the tests whose name matches (shell pattern, e.g. 'raft-*'), repeatable")
    p.add_argument("--parallel", type=int, default=1, metavar="K",
                   help="runs at once (local and Docker nodes; each run has its own namespaces, subnet, "
                        "cgroups and containers) (default: 1)")
    p.add_argument("--store", metavar="DIR", help="where plan folders go (default: the plan's store, plans)")
    p.set_defaults(run=run_test_all)


def run_test_all(args: argparse.Namespace) -> int:
    from splitbrain.harness.plan.runner import run_plan
    from splitbrain.harness.plan.toml_plan import load_plan

    plan = load_plan(args.plan)
    result = run_plan(plan, parallel=args.parallel, test_count=args.test_count, pass_policy=args.pass_policy,
                      only=args.only, junit=args.junit, store=args.store)
    return result.exit_code
