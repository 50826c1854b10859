"""Serve PineLab with several API processes, as `pinelab serve` would, until it takes --workers.

    python bench/_serve.py HOST PORT PROCESSES

uvicorn's own process manager runs PROCESSES workers on one socket, each building the app from
the factory; the options are those `pinelab serve` passes (its logging, no access log, no proxy
headers). bench/_common.serve_argv uses `pinelab serve --workers N` instead once the CLI has it.
"""

import importlib.util
import sys

import uvicorn


def factory() -> str:
    """Return the app factory `pinelab serve` runs: the composition root if this tree has it."""
    if importlib.util.find_spec("pinelab.main") is not None:
        return "pinelab.main:create_app"
    return "pinelab.api.app:create_app"


if __name__ == "__main__":
    host, port, processes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    uvicorn.run(
        factory(),
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )
