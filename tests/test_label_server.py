"""cm-label's server (infer/label/server.py): a real server on port 0 in a thread, driven with
urllib / http.client: the token on every route, no way out of its folders, 413, loopback only."""

from __future__ import annotations

import errno
import http.client
import json
import os
import socket
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, valid_pixels
from mars_cloudmask.infer.label import server as label_server
from mars_cloudmask.infer.label.core import CLEAR, CLOUD, EDIT_BYTES, NO_DATA, edit_from_values
from mars_cloudmask.infer.label.server import MAX_BODY, Session, make_server
from mars_cloudmask.infer.maps import read_map
from mars_cloudmask.infer.netcdf import read_mask
from tests.synthetic import make_map, write_map

GET_ROUTES = ["/", "/index.html", "/static/label.css", "/static/label.js", "/api/info", "/api/map", "/api/edit"]


@pytest.fixture(scope="module")
def map_file(tmp_path_factory):
    path = write_map(tmp_path_factory.mktemp("map") / "P01_day04_zequat.jpg", make_map(seed=4))
    rgb = read_map(path)
    values = np.where(valid_pixels(rgb), (rgb[..., 2] >= 200).astype(np.float32), np.float32(INVALID))
    return path, rgb, edit_from_values(values, 0.5)


@pytest.fixture
def served(tmp_path, map_file):
    path, rgb, base = map_file
    session = Session(path, rgb, base, tmp_path / "labels", "P01day04", 28, 133.9)
    srv = make_server(session, 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def base_url(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def fetch(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def raw_get(srv, target: str) -> tuple[int, bytes]:
    """GET with the request target sent exactly as written (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=30)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_every_route_needs_the_token(served):
    token = served.session.token
    for route in GET_ROUTES:
        assert fetch(base_url(served) + route)[0] == 403, route
        assert fetch(f"{base_url(served)}{route}?token=wrong")[0] == 403, route
        assert fetch(f"{base_url(served)}{route}?token={token[:-1]}")[0] == 403, route
        status, body = fetch(f"{base_url(served)}{route}?token={token}")
        assert status == 200 and body, route
    edit = served.session.base.tobytes()
    assert fetch(base_url(served) + "/api/save", edit)[0] == 403
    assert fetch(f"{base_url(served)}/api/save?token=nope", edit)[0] == 403
    assert not (served.session.labels).exists()  # nothing written without the token


def test_the_page_carries_the_token_to_its_css_and_js_and_data_are_right(served):
    token = served.session.token
    _, page = fetch(f"{base_url(served)}/?token={token}")
    assert f"?token={token}" in page.decode()
    _, info = fetch(f"{base_url(served)}/api/info?token={token}")
    assert json.loads(info)["name"] == "P01day04"
    _, jpeg = fetch(f"{base_url(served)}/api/map?token={token}")
    assert jpeg == served.session.map_path.read_bytes()
    _, edit = fetch(f"{base_url(served)}/api/edit?token={token}")
    assert edit == served.session.base.tobytes()


def test_save_writes_the_label_and_edit_then_serves_it(served):
    token = served.session.token
    edit = served.session.base.copy()
    valid = np.argwhere(edit != NO_DATA)[:3]
    for y, x in valid:
        edit[y, x] = CLOUD
    edit[np.argwhere(edit == NO_DATA)[0][0], np.argwhere(edit == NO_DATA)[0][1]] = CLOUD  # ignored: no data stays
    status, body = fetch(f"{base_url(served)}/api/save?token={token}", edit.tobytes())
    assert status == 200, body
    saved = json.loads(body)["saved"]
    label = read_mask(saved["label"])
    expected = np.where(served.session.base == NO_DATA, NO_DATA, edit)
    assert ((label > 0) == (expected == CLOUD)).all() and ((label == 0) == (expected == CLEAR)).all()
    assert fetch(f"{base_url(served)}/api/edit?token={token}")[1] == expected.astype(np.uint8).tobytes()


@pytest.mark.parametrize(
    "target",
    [
        "/static/../core.py",
        "/static/%2e%2e/core.py",
        "/static/..%2fserver.py",
        "/static/%2E%2E%2F__init__.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
    ],
)
def test_paths_out_of_the_static_folder_are_refused(served, target):
    sep = "&" if "?" in target else "?"
    status, body = raw_get(served, f"{target}{sep}token={served.session.token}")
    assert status in (403, 404)
    assert b"import" not in body and b"root:" not in body


def test_a_symlink_out_of_the_static_folder_is_refused(served, tmp_path, monkeypatch):
    static = tmp_path / "static"
    static.mkdir()
    secret = tmp_path / "secret.js"
    secret.write_text("SECRET")
    os.symlink(secret, static / "evil.js")
    (static / "ok.js").write_text("OK")
    monkeypatch.setattr(label_server, "STATIC_DIR", static)
    token = served.session.token
    assert fetch(f"{base_url(served)}/static/ok.js?token={token}") == (200, b"OK")
    status, body = fetch(f"{base_url(served)}/static/evil.js?token={token}")
    assert status == 403 and b"SECRET" not in body


def test_a_body_larger_than_an_edit_gets_413_before_it_is_read(served):
    conn = http.client.HTTPConnection("127.0.0.1", served.server_address[1], timeout=30)
    try:
        conn.putrequest("POST", f"/api/save?token={served.session.token}")
        conn.putheader("Content-Length", str(MAX_BODY + 1))
        conn.endheaders()  # no body sent: the server must answer from the headers alone
        r = conn.getresponse()
        assert r.status == 413
    finally:
        conn.close()
    assert MAX_BODY == EDIT_BYTES
    status, _ = fetch(f"{base_url(served)}/api/save?token={served.session.token}", b"\x00" * 10)
    assert status == 400  # a small wrong body: refused, nothing written
    assert not served.session.labels.exists()


def test_it_binds_loopback_only(served):
    host, port = served.server_address[:2]
    assert host == "127.0.0.1"
    assert served.url.startswith(f"http://127.0.0.1:{port}/?token=")
    with socket.socket() as s:  # another loopback address on the same port: nobody listens there
        s.settimeout(5)
        assert s.connect_ex(("127.0.0.2", port)) in (errno.ECONNREFUSED, errno.EADDRNOTAVAIL)
