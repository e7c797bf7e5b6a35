"""splitbrain: targets."""
