"""The signals package's dependencies: the ingestor the composition root built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pinelab.signals.service import Ingestor


async def get_ingestor(request: Request) -> Ingestor:
    """Return the process's ingestor (token lookup, rate limits, parser, signal writer)."""
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]
