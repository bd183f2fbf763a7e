"""What tests and benchmarks share: tiny random models, fault-injecting HTTP servers, chromium,
screenshot checks."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository's root, wherever a test module sits in the tiers."""
