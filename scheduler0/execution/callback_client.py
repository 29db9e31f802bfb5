"""
The HTTP client callbacks are sent with: a POST over a Twisted C{Agent} and nothing else.

treq's C{HTTPClient} was used before, and three of its conveniences are wrong for a
scheduler that POSTs to URLs chosen by many tenants:

  - it keeps a cookie jar shared by every request it sends, so a cookie one project's
    receiver set went out with another project's callbacks to the same host;
  - it can follow redirects (the executor had turned that off; here there is no redirect
    code at all: a 3xx is an answer like any other, and not a 2xx);
  - it turns every URL into a request with C{hyperlink}, whose IDNA step refuses an IPv6
    literal: C{http://[::1]:3001/}, which the API accepted, failed with
    C{InvalidCodepoint}.

So: no cookie jar, no redirects, no content decoding, and L{request_uri} builds the request
target itself. The API validates a callback URL with the same function, so every URL it
accepts can be sent (a host name Twisted cannot connect to, such as C{my_service} with its
underscore, is refused at creation rather than failing every delivery).
"""

from __future__ import annotations

from functools import lru_cache
from io import BytesIO
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

import idna
from twisted.internet.defer import Deferred, fail
from twisted.web.client import FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent

# RFC 3986: what may stay as it is in a path (and, with "?", in a query); "%" keeps the
# escapes already there
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


class UnsupportedURL(ValueError):
    """A callback URL that cannot be sent as it is written; the message says why."""


@lru_cache(maxsize=4096)
def request_host(host: str) -> str:
    """
    The host (as C{urlsplit} gives it) as the request names it: an IPv6 literal in
    brackets, a host name as Twisted's C{HostnameEndpoint} will take it (it refuses a name
    IDNA 2008 refuses, e.g. one with an underscore). Cached: callback hosts repeat.

    @raise UnsupportedURL: the host name cannot be connected to.
    """
    if ":" in host:  # an IPv6 literal (urlsplit checked it); IDNA has nothing to say
        return f"[{host}]"
    try:
        if host.isascii():
            idna.encode(host)
            return host
        return idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError as e:  # idna.IDNAError and the codec's own
        shown = repr(host) if len(host) <= 64 else f"of {len(host)} characters"
        reason = str(e).rstrip(".") if len(str(e)) <= 120 else type(e).__name__
        raise UnsupportedURL(f"the host name {shown} is not a valid DNS name "
                             f"({reason})") from None


def request_uri(url: str) -> bytes:
    """
    The absolute URI a POST to C{url} is sent to: the host IDNA-encoded when it is not
    ASCII, the path and query percent-encoded where RFC 3986 requires it, no fragment.

    @raise UnsupportedURL: the URL is not an absolute http(s) URL, carries user info
        (C{user:password@}), or its host cannot be encoded.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsupportedURL(f"not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsupportedURL("not an absolute http:// or https:// URL")
    if "@" in parts.netloc:
        raise UnsupportedURL("user:password@ in the URL is not supported")
    netloc = request_host(parts.hostname)
    if port is not None:
        netloc += f":{port}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = f"?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{path}{query}".encode("ascii")


class CallbackClient:
    """
    C{post} as the executor calls it, over an C{IAgent} (its pool and endpoint factory
    decide the connections): no cookies kept or sent, no redirect followed, the body not
    decoded. Answers are Twisted C{IResponse}s: the executor reads C{code}, C{headers} and
    the body through C{deliverBody}.
    """

    def __init__(self, agent: IAgent) -> None:
        self._agent = agent

    def post(self, url: str, data: bytes, headers: Mapping[str, Any] | None = None,
             unbuffered: bool = True, allow_redirects: bool = False) -> Deferred:
        """POST C{data} to C{url}. C{unbuffered} and C{allow_redirects} are accepted for
        treq's signature: the body is never buffered and redirects are never followed."""
        try:
            uri = request_uri(url)
        except UnsupportedURL as e:
            return fail(e)
        raw = Headers()
        for name, values in (headers or {}).items():
            raw.setRawHeaders(name, values if isinstance(values, list) else [values])
        return self._agent.request(b"POST", uri, raw, FileBodyProducer(BytesIO(data)))
