"""Every model run in the test suite is audited: an access to shared state that its step did not
announce fails the test at once (faultlab.execution.AUDIT, ``--audit`` on the command line)."""

from __future__ import annotations

import faultlab.execution

faultlab.execution.AUDIT = True
