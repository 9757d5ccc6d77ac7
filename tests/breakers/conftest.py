"""Breaker tests: the shared store contract lives in `contract.py`."""

import pytest

# contract.py is not a test module, so pytest would not rewrite its asserts (and failures
# would say only "AssertionError"); register it before the test modules import it.
pytest.register_assert_rewrite(f"{__package__}.contract")
