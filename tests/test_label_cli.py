"""``cm-label`` (infer/label/cli.py): argument errors, one-line input errors, and a real run in a
subprocess: it prints a tokened 127.0.0.1 URL, serves the page, saves, stops on Ctrl+C, and never
imports TensorFlow."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request

import numpy as np
from typer.testing import CliRunner

from mars_cloudmask.infer.label.cli import label_command
from mars_cloudmask.infer.netcdf import read_mask
from tests.test_label_load import make_out


def run(*args: str):
    import typer

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(label_command)
    return CliRunner().invoke(app, list(args))


def test_argument_forms_are_checked(tmp_path):
    labels = str(tmp_path / "labels")
    for args in ([], ["out"], ["out", "P01_day01", "--mask", "m.ncdf"], ["--mask", "m.ncdf"]):
        result = run(*args, "--labels", labels)
        assert result.exit_code == 2, (args, result.output)
    assert "--map" in run("--mask", "m.ncdf", "--labels", labels).output


def test_bad_inputs_fail_in_one_line_naming_the_file(tmp_path):
    out, map_path, mask, _ = make_out(tmp_path / "out")
    labels = str(tmp_path / "labels")
    result = run(str(out), "P01_day09", "--labels", labels)
    assert result.exit_code == 1 and "cloudmask_P01_day09.ncdf" in result.output
    bad = tmp_path / "bad.ncdf"
    bad.write_bytes(b"junk")
    result = run("--map", str(map_path), "--mask", str(bad), "--labels", labels)
    assert result.exit_code == 1 and str(bad) in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = run(str(out), "P01_day06", "--labels", labels, "--day", "../escape")
    assert result.exit_code == 1 and "escape" in result.output
    assert not (tmp_path / "labels").exists()


def test_a_real_run_serves_saves_and_stops_without_tensorflow(tmp_path):
    out, _, _, _ = make_out(tmp_path / "out")
    labels = tmp_path / "labels"
    code = (
        "import sys, runpy; sys.argv = ['cm-label'] + sys.argv[1:];"
        "import mars_cloudmask.infer.label.cli as c; import atexit;"
        "atexit.register(lambda: print('TF', any(m.split('.')[0] == 'tensorflow' for m in sys.modules), flush=True));"
        "c.main()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out), "P01_day06", "--labels", str(labels)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        for _ in range(5):
            line = proc.stdout.readline()
            if line.startswith("open "):
                url = line.split()[1]
                break
        assert url and url.startswith("http://127.0.0.1:") and "?token=" in url, proc.stderr.read()
        base, token = url.split("/?token=")
        with urllib.request.urlopen(url, timeout=30) as r:
            assert r.status == 200 and b"label.js" in r.read()
        with urllib.request.urlopen(f"{base}/api/edit?token={token}", timeout=30) as r:
            edit = r.read()
        req = urllib.request.Request(f"{base}/api/save?token={token}", data=edit)
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "TF False" in rest
    label = read_mask(labels / "cloudmask" / "cloudmask_P01day06.ncdf")
    sent = np.frombuffer(edit, np.uint8).reshape(1801, 3600)
    assert ((label > 0) == (sent == 1)).all() and ((label == -999) == (sent == 2)).all()
    assert (labels / "list_ls.txt").read_text() == "P01day06      28      135.250\n"
    assert (labels / "mdgms" / "P01day06.jpeg").is_file()
