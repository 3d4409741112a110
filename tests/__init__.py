"""glider-relay's tests, one folder per package of the code."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository's top folder."""
