"""A FastAPI app served by uvicorn on a free loopback port in a thread, for tests that need a real socket."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


def serve_in_thread(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Start ``app`` and wait until it listens; returns the server (set ``should_exit`` to stop), its thread and base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"
