"""Test plans: a matrix of tests with repeats, expectations and pass policies, run into a plan folder
with an index, grouped failures and JUnit XML (`splitbrain test-all PLAN.toml`, or ``run_plan`` in
Python). docs/plans.md is the user's guide."""
