"""Every model run in the test suite is audited: an access to shared state that its step did not
announce fails the test at once (faultlab.execution.AUDIT, ``--audit`` on the command line).
The DAX VM's assets, for the tests that boot it (``vm``), are set up once per module."""

from __future__ import annotations

import pytest

import faultlab.execution
from faultlab.oracle import vm

faultlab.execution.AUDIT = True


@pytest.fixture(scope="module")
def assets() -> vm.VmAssets:
    try:
        return vm.setup(log=lambda s: print(s))
    except vm.VmUnavailableError as e:
        pytest.skip(f"DAX VM unavailable: {e}")
