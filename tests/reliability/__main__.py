"""``python -m tests.reliability``: run the reliability suite; it ends by printing
"reliability: N bad inputs, K kills survived, R races, F files checked"."""

import sys
from pathlib import Path

import pytest

if __name__ == "__main__":
    sys.exit(pytest.main([str(Path(__file__).parent), "-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
