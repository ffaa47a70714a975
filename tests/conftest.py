"""Test-session settings: dataset-validation caches go to a temporary folder, not ~/.cache."""
import os
import tempfile

os.environ.setdefault("SEETHROUGHNET_CACHE_DIR", tempfile.mkdtemp(prefix="stn-test-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")
