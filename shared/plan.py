"""Workbook -> plan, with the secrets check wired in. The one entry point callers use."""

from __future__ import annotations

import os
from typing import Optional, Union

from shared.workbook import build_plan
from shared.workbook.models import Plan
from shared.secrets import missing_secrets


def load_plan(source: Union[str, os.PathLike, bytes], *, source_label: Optional[str] = None) -> Plan:
    """Read and validate a workbook, checking that every enabled source has its secrets.

    Args:
        source: Path to the `.xlsx` file, or its bytes.
        source_label: How to name the workbook in messages (defaults to the path).

    Returns:
        The plan.

    Raises:
        PlanError: With every problem found, each naming sheet, cell, column and value.
    """
    return build_plan(source, check_secrets=missing_secrets, source_label=source_label)
