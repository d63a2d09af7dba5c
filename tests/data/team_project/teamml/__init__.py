"""The team's training code."""
