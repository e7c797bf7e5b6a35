"""splitbrain: harness."""
