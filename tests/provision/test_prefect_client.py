"""How the Prefect client sets up TLS: verified for https, shared, and skipped only where no
TLS connection can be opened."""

from __future__ import annotations

import os
import ssl

import pytest

from provision.prefect.client import tls_setting


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # Every ``*_proxy`` variable, as urllib (and so httpx) reads them, in either case.
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


def test_https_is_verified_with_one_context_per_process():
    context = tls_setting("https://api.prefect.cloud/api/accounts/a/workspaces/w")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # The CA bundle is loaded once: every client (the service's, each resource call's) shares it.
    assert tls_setting("https://prefect.example.com/api") is context


def test_a_plain_http_server_opens_no_tls():
    assert tls_setting("http://127.0.0.1:4200/api") is False


def test_a_proxy_keeps_verification_even_for_http(monkeypatch):
    # An https:// proxy would be reached over TLS.
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.example.com:3128")
    assert isinstance(tls_setting("http://prefect.internal:4200/api"), ssl.SSLContext)


def test_no_proxy_alone_configures_no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert tls_setting("http://127.0.0.1:4200/api") is False


def test_another_ca_bundle_is_never_served_a_stale_context(monkeypatch):
    first = tls_setting("https://prefect.example.com/api")
    monkeypatch.setenv("SSL_CERT_FILE", ssl.get_default_verify_paths().openssl_cafile)
    assert tls_setting("https://prefect.example.com/api") is not first
