"""forestops."""
