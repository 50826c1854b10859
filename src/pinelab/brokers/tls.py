"""The process's one TLS client context, shared by every adapter's HTTP client.

Building a context reads the whole CA bundle (tens of milliseconds of CPU, on the event loop).
An adapter is built per broker account, so a context each would stall alert handling every
time an account is first used; one context serves any number of clients.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def tls_context() -> ssl.SSLContext:
    """Return the shared client context (certifi's CA bundle, or SSL_CERT_FILE/SSL_CERT_DIR)."""
    return httpx.create_ssl_context()
