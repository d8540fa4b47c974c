"""Every test gets a Vm whose agent runs as a host process (fast; guest
paths are this host's paths). The Rust test `tests/pytest.rs` sets
KRUNBOX_AGENT_BIN and puts the built package on PYTHONPATH."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from krunbox.testing import HostAgentVm, host_agent


@pytest.fixture
async def vm() -> AsyncIterator[HostAgentVm]:
    async with host_agent() as vm:
        yield vm


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path
