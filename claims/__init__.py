"""Claim tests: one file per paper section."""
