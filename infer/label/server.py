"""The loopback HTTP server of ``cm-label`` (stdlib ``ThreadingHTTPServer``).

Safe for one person on one machine, as Jupyter is: it binds 127.0.0.1 only; every request
(page, CSS, JS, data, save) must carry ``?token=`` with the session's random token
(``secrets.token_urlsafe``), else 403; the only files it reads are the session's map and the
page's own files (static paths go through :func:`~.core.safe_path`: ``..``, absolute paths and
symlinks out are refused), and it writes only into the labelled folder; a body larger than an
edit is refused with 413 before it is read.

Routes (GET unless said): ``/`` the page, ``/static/<file>``, ``/api/info`` (JSON),
``/api/map`` (the JPEG), ``/api/edit`` (the current edit, ``EDIT_BYTES`` bytes north-up),
POST ``/api/save`` (body: an edit) -> JSON naming the files written.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from ..geometry import MAP_HEIGHT, MAP_WIDTH
from .core import EDIT_BYTES, EditError, PathError, edit_from_bytes, safe_path, save_label

HOST = "127.0.0.1"
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY = EDIT_BYTES
"""The largest request body accepted (an edit); more gets 413."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
_CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'"


@dataclass
class Session:
    """What one ``cm-label`` run edits: the map (path and north-up RGB), the edit it started
    from, where the label goes (folder, day name, Mars year, Ls) and the URL token."""

    map_path: Path
    rgb: np.ndarray
    base: np.ndarray
    labels: Path
    name: str
    mars_year: int
    ls: float
    source: str = ""
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    current: np.ndarray | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def info(self) -> dict[str, Any]:
        """The page's ``/api/info``: names, size and where saving writes."""
        return {
            "name": self.name,
            "map": self.map_path.name,
            "source": self.source,
            "labels": str(self.labels),
            "width": MAP_WIDTH,
            "height": MAP_HEIGHT,
            "mars_year": self.mars_year,
            "ls": self.ls,
        }


class LabelHandler(BaseHTTPRequestHandler):
    """One request; the session is ``self.server.session``."""

    server: LabelServer
    protocol_version = "HTTP/1.1"
    server_version = "cm-label"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Quiet: the URL holds the token, which must not end up in a terminal log."""

    # ----------------------------------------------------------------- plumbing
    def _send(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", _CSP)
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, (message + "\n").encode())

    def _authorised(self) -> str | None:
        """The request's path (unquoted) when its token is right, else None (403 sent).

        A refused request's body, when not larger than :data:`MAX_BODY`, is read and dropped
        first, so the client gets the 403 rather than a reset connection."""
        url = urlsplit(self.path)
        given = parse_qs(url.query).get("token", [""])[0]
        if not hmac.compare_digest(given.encode(), self.server.session.token.encode()):
            length = self._length()
            if length is not None and 0 < length <= MAX_BODY:
                self.rfile.read(length)
            self._error(HTTPStatus.FORBIDDEN, "403: missing or wrong token (open the URL cm-label printed)")
            return None
        return unquote(url.path)

    def _length(self) -> int | None:
        """The request's Content-Length, None when absent or not a number."""
        try:
            return int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None

    # ----------------------------------------------------------------- routes
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self._authorised()
        if path is None:
            return
        session = self.server.session
        if path in ("/", "/index.html"):
            page = (STATIC_DIR / "index.html").read_text().replace("{{TOKEN}}", session.token)
            self._send(HTTPStatus.OK, page.encode(), _TYPES[".html"])
        elif path.startswith("/static/"):
            self._static(path[len("/static/") :])
        elif path == "/api/info":
            self._send(HTTPStatus.OK, json.dumps(session.info()).encode(), "application/json")
        elif path == "/api/map":
            self._send(HTTPStatus.OK, session.map_path.read_bytes(), "image/jpeg")
        elif path == "/api/edit":
            with session.lock:
                edit = session.base if session.current is None else session.current
                body = edit.tobytes()
            self._send(HTTPStatus.OK, body, "application/octet-stream")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"404: {path}: no such page")

    def _static(self, relative: str) -> None:
        try:
            file = safe_path(STATIC_DIR, relative)
        except PathError as exc:
            self._error(HTTPStatus.FORBIDDEN, f"403: {exc}")
            return
        ctype = _TYPES.get(file.suffix)
        if ctype is None or not file.is_file():
            self._error(HTTPStatus.NOT_FOUND, f"404: {relative}: no such file")
            return
        self._send(HTTPStatus.OK, file.read_bytes(), ctype)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        path = self._authorised()
        if path is None:
            return
        if path != "/api/save":
            self._error(HTTPStatus.NOT_FOUND, f"404: {path}: no such endpoint")
            return
        length = self._length()
        if length is None:
            self._error(HTTPStatus.LENGTH_REQUIRED, "411: Content-Length required")
            return
        if length > MAX_BODY or length < 0:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"413: body of {length} bytes, at most {MAX_BODY}")
            return
        body = self.rfile.read(length)
        session = self.server.session
        try:
            with session.lock:
                edit = edit_from_bytes(body, session.base)
                paths = save_label(
                    session.labels, session.name, edit, session.rgb, session.map_path, session.mars_year, session.ls
                )
                session.current = edit
        except (EditError, PathError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"400: {exc}")
            return
        except OSError as exc:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"500: cannot save: {exc}")
            return
        saved = {"label": str(paths.mask), "map": str(paths.map), "table": str(paths.table)}
        self._send(HTTPStatus.OK, json.dumps({"saved": saved}).encode(), "application/json")

    def do_HEAD(self) -> None:  # noqa: N802 - the stdlib's name
        self.do_GET()

    def _refuse(self) -> None:
        if self._authorised() is not None:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"405: {self.command} not allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815 - the stdlib's names


class LabelServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer on 127.0.0.1 holding one :class:`Session`."""

    daemon_threads = True

    def __init__(self, session: Session, port: int = 0) -> None:
        self.session = session
        super().__init__((HOST, port), LabelHandler)

    @property
    def url(self) -> str:
        """The page's URL, with the token."""
        return f"http://{HOST}:{self.server_address[1]}/?token={self.session.token}"


def make_server(session: Session, port: int = 0) -> LabelServer:
    """A server for ``session`` bound to 127.0.0.1 (``port`` 0: a free one); not yet serving."""
    return LabelServer(session, port)
