"""One place that turns transport failures into retryable ProviderErrors."""

from __future__ import annotations

import httpx

from providers.errors import ProviderError

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def new_http_client() -> httpx.Client:
    return httpx.Client(timeout=DEFAULT_TIMEOUT)


def send(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    try:
        return http.request(method, url, content=content, headers=headers)
    except httpx.TimeoutException as exc:
        # The provider may have acted: the caller must query before retrying.
        raise ProviderError("timeout", str(exc) or "request timed out", retryable=True) from exc
    except httpx.TransportError as exc:
        raise ProviderError("network_error", str(exc), retryable=True) from exc
