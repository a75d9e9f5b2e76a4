"""A small, synchronous client for the Prefect REST API: retries, backoff, typed errors.

Only the calls the writer needs go through here. Request bodies (which carry block data, i.e.
secrets) are never logged or put into an error; neither is anything the server echoes back of
them (Prefect's 422 responses include the whole ``request_body``).
"""

from __future__ import annotations

import base64
import email.utils
import functools
import logging
import os
import random
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from provision import __version__
from provision.errors import PrefectError, PrefectUnreachableError
from provision.prefect.config import PrefectApi

if "httpx" in sys.modules or "httpx._main" in sys.modules:
    import httpx
else:
    # httpx's __init__ imports its command-line client, and with it click, pygments and rich
    # (some 4.5 MB and 40 ms), whenever they are installed. Nothing here runs that client, and
    # nothing else of the tool needs them on a run that renders no terminal output. Only
    # ``httpx.main`` differs (its "not installed" stand-in); ``httpx._main`` imports as usual.
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx
    finally:
        del sys.modules["httpx._main"]

log = logging.getLogger(__name__)


def tls_setting(url: str) -> ssl.SSLContext | bool:
    """What a client of ``url`` verifies TLS with.

    Building a verifying context loads the CA bundle (~20 ms): it is built once per process
    and shared by every client (the service's, and each Prefect resource call the engine
    makes of this process). A plain-``http://`` URL with no proxy configured never opens a
    TLS connection (the client follows no redirect), so it gets none.
    """
    # The proxies httpx itself would use (it asks ``getproxies`` too); ``no`` is NO_PROXY.
    proxies = {k for k, v in urllib.request.getproxies().items() if v and k != "no"}
    if url.startswith("http://") and not proxies:
        return False
    return _verifying_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _verifying_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # Keyed on the variables httpx reads, so a changed CA setting is never served stale.
    return httpx.create_ssl_context()


# Statuses meaning "not available right now". Prefect itself answers 503 for retryable database
# errors (a busy SQLite). Other 5xx are retried too (proxies and load balancers emit them
# transiently), but when they persist the server did answer: that is reported as an API error,
# not as "unreachable".
_UNAVAILABLE = frozenset({429, 502, 503, 504})
_MIN_SECRET_LEN = 4


class PrefectHttpError(PrefectError):
    """The Prefect API answered with an error status that retrying does not fix."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        detail: str,
        fields: tuple[str, ...] = (),
        hint: str | None = None,
        details: str | None = None,
    ):
        super().__init__(message, hint=hint, details=details)
        self.status_code = status_code
        self.detail = detail
        """The server's own explanation (``detail`` field), already stripped of secrets."""
        self.fields = fields
        """For validation errors (422): the dotted locations of the rejected fields."""


class PrefectClient:
    """Synchronous JSON client for one Prefect API, with retries on transient failures.

    Retried: connection errors and timeouts, 429 (honouring ``Retry-After``) and 5xx, with
    exponential backoff, jitter and a cap. Everything else fails at once.
    """

    def __init__(
        self,
        api: PrefectApi,
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """``attempts`` counts the first try; ``backoff`` is the first delay in seconds, doubled
        per retry up to ``max_backoff``. A server's ``Retry-After`` is honoured up to
        ``max_retry_after`` so a misbehaving proxy cannot stall the CLI for hours."""
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.api = api
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        headers = {"Accept": "application/json", "User-Agent": f"provision/{__version__}"}
        # As the prefect client does: a server's auth string wins over an API key.
        if api.auth_string:
            token = base64.b64encode(api.auth_string.encode("utf-8")).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        elif api.key:
            headers["Authorization"] = f"Bearer {api.key}"
        self._http = httpx.Client(
            # The trailing slash makes httpx append paths to the API prefix instead of
            # replacing its last segment.
            base_url=api.url + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            # The headers hold the key: never follow a redirect to another host with them.
            follow_redirects=False,
            verify=tls_setting(api.url),
        )

    def __repr__(self) -> str:
        return f"PrefectClient(url={self.api.url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> PrefectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- verbs ---------------------------------------------------------------------------------

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` (relative to the API URL) and return the parsed JSON."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, *, secret: bool = False) -> Any:
        """POST a JSON body; ``secret=True`` when the body holds secrets (see ``request``)."""
        return self.request("POST", path, json=json, secret=secret)

    def patch(self, path: str, json: Any = None, *, secret: bool = False) -> Any:
        """PATCH a JSON body; ``secret=True`` when the body holds secrets (see ``request``)."""
        return self.request("PATCH", path, json=json, secret=secret)

    def delete(self, path: str) -> Any:
        """DELETE ``path``."""
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        secret: bool = False,
    ) -> Any:
        """Send one request, retrying transient failures; return the parsed JSON (``None`` for
        an empty body).

        Raises ``PrefectUnreachableError`` when the API stays unreachable after the retries and
        ``PrefectHttpError`` for any other error status. With ``secret=True`` every string of
        the request body is also scrubbed from the error, in case the server echoes it.
        """
        url = path.lstrip("/")
        scrub = json if secret else None
        last_reason = ""
        response: httpx.Response | None = None
        for attempt in range(1, self.attempts + 1):
            retry_after: float | None = None
            try:
                response = self._http.request(method, url, json=json, params=params)
            except httpx.UnsupportedProtocol as exc:
                raise PrefectError(
                    f"Cannot call the Prefect API at {self.api.url}: {exc}"
                ) from None
            except httpx.TransportError as exc:
                # str() of httpx transport errors is the OS/protocol reason; never a body.
                response = None
                last_reason = str(exc) or type(exc).__name__
            else:
                status = response.status_code
                if status < 300:
                    return _parse(response, self.api.url)
                if status < 400:
                    # Redirects are not followed (they would carry the key along), and an empty
                    # 3xx body must not pass for a successful call.
                    raise PrefectError(
                        f"Prefect API at {self.api.url} redirected {method} {path} to "
                        f"{response.headers.get('location', '(no location)')}.",
                        hint="Use the final API URL (https, and the exact path) directly.",
                    )
                if status != 429 and status < 500:
                    raise self._http_error(method, path, response, scrub)
                last_reason = f"HTTP {status}: {_detail(response, scrub)}"
                retry_after = _retry_after(response)
            if attempt < self.attempts:
                delay = self._delay(attempt, retry_after)
                log.info(
                    "Prefect API %s %s failed (%s); retry %d/%d in %.1fs",
                    method,
                    path,
                    last_reason,
                    attempt,
                    self.attempts - 1,
                    delay,
                )
                self._sleep(delay)

        if response is not None and response.status_code not in _UNAVAILABLE:
            # The server answered every time, with a 5xx that isn't "come back later".
            raise self._http_error(method, path, response, scrub)
        raise PrefectUnreachableError(
            f"Prefect API at {self.api.url} is unreachable: {last_reason}",
            hint=f"Check that the server is up and that the URL (from {self.api.source}) is right.",
        )

    # -- helpers -------------------------------------------------------------------------------

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        # "Equal jitter": at least half the exponential delay, so retries from several clients
        # spread out without any of them hammering the server immediately.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _http_error(
        self, method: str, path: str, response: httpx.Response, body: Any
    ) -> PrefectHttpError:
        status = response.status_code
        detail = _detail(response, body)
        hint = None
        if status in (401, 403) and self.api.is_cloud:
            hint = (
                "Check PREFECT_API_KEY: it must be valid and allowed to write to this "
                "workspace (`prefect cloud login` refreshes it)."
            )
        elif status == 401 and self.api.auth_string:
            hint = (
                "The server refused PREFECT_API_AUTH_STRING: it must equal the server's "
                "PREFECT_SERVER_API_AUTH_STRING (user:password)."
            )
        elif status == 401:
            hint = (
                "The server requires authentication: set PREFECT_API_AUTH_STRING to its "
                "PREFECT_SERVER_API_AUTH_STRING (user:password), or PREFECT_API_KEY."
            )
        elif status == 404 and path.strip("/") == "health" and not self.api.url.endswith("/api"):
            hint = f"Is the URL the API root? Self-hosted servers serve it at {self.api.url}/api."
        return PrefectHttpError(
            f"Prefect API {method} {path} failed with HTTP {status}: {detail}",
            status_code=status,
            detail=detail,
            fields=_error_fields(response),
            hint=hint,
        )


def _parse(response: httpx.Response, api_url: str) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        content_type = response.headers.get("content-type", "unknown")
        raise PrefectError(
            f"Prefect API at {api_url} returned non-JSON ({content_type}) for "
            f"{response.request.method} {response.request.url.path}.",
            hint="Check that the URL points at the API (self-hosted: ends in /api).",
        ) from None


def _detail(response: httpx.Response, body: Any) -> str:
    """The server's explanation, never the request as the server echoes it back."""
    try:
        payload = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        detail = text[0][:200] if text else response.reason_phrase
        return _scrub(detail, body)
    if isinstance(payload, dict):
        if isinstance(payload.get("detail"), str):
            detail = payload["detail"]
        elif isinstance(payload.get("detail"), list):
            detail = _validation_errors(payload["detail"])
        elif isinstance(payload.get("exception_detail"), list):
            # Prefect's 422 handler: {"exception_message", "exception_detail", "request_body"}.
            # Only the locations and messages are kept; "input" and "request_body" hold our
            # (possibly secret) request.
            detail = _validation_errors(payload["exception_detail"])
        else:
            detail = str(payload.get("exception_message") or response.reason_phrase)
    else:
        detail = response.reason_phrase
    return _scrub(detail, body)


def _validation_errors(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        if isinstance(error, dict):
            loc = _loc(error)
            parts.append(f"{loc}: {error.get('msg', '')}" if loc else str(error.get("msg", "")))
    return "; ".join(parts) or "invalid request"


def _error_fields(response: httpx.Response) -> tuple[str, ...]:
    try:
        payload = response.json()
    except ValueError:
        return ()
    if not isinstance(payload, dict):
        return ()
    errors = payload.get("exception_detail", payload.get("detail"))
    if not isinstance(errors, list):
        return ()
    return tuple(_loc(e) for e in errors if isinstance(e, dict) and _loc(e))


def _loc(error: Mapping[str, Any]) -> str:
    # FastAPI locations start with where the value came from ("body", "query", "path").
    loc = [str(p) for p in error.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path"):
        loc = loc[1:]
    return ".".join(loc)


def _scrub(text: str, body: Any) -> str:
    for value in sorted(_strings(body), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _strings(obj: Any) -> Iterator[str]:
    """Every string leaf of a JSON value long enough to be worth hiding."""
    if isinstance(obj, str):
        if len(obj) >= _MIN_SECRET_LEN:
            yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            yield from _strings(value)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
