"""splitbrain: checkers."""
