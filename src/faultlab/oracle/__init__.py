"""The real-kernel oracle: run a scenario sequentially on a real kernel with a small C probe.

- :mod:`faultlab.oracle.build`: compile ``probe.c`` into the cache directory.
- :mod:`faultlab.oracle.program`: Scenario -> probe input text; probe output -> RunRecord.
- :mod:`faultlab.oracle.host`: run on this machine (``host-tmpfs``, ``host-ext4``).
- :mod:`faultlab.oracle.measure`: re-measure the facts ``docs/fidelity.md`` quotes.
"""

from faultlab.oracle.build import build_probe
from faultlab.oracle.errors import (
    CompilerNotFoundError,
    DaxNotActiveError,
    OracleError,
    ProbeBuildError,
    ProbeFailedError,
    UnsupportedScenarioError,
)
from faultlab.oracle.host import HOST_KERNELS, run_on_host, time_faults_on_host
from faultlab.oracle.program import ProbeProgram, parse_probe_output, to_probe_program

__all__ = [
    "HOST_KERNELS",
    "CompilerNotFoundError",
    "DaxNotActiveError",
    "OracleError",
    "ProbeBuildError",
    "ProbeFailedError",
    "ProbeProgram",
    "UnsupportedScenarioError",
    "build_probe",
    "parse_probe_output",
    "run_on_host",
    "time_faults_on_host",
    "to_probe_program",
]
