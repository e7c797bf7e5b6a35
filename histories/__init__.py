"""splitbrain: histories."""
