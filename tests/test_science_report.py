"""The run report page (infer/science/report.py), checked in headless Chromium when present."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

import numpy as np
import pytest

from mars_cloudmask.infer.geometry import INVALID, MAP_HEIGHT, MAP_WIDTH
from mars_cloudmask.infer.netcdf import write_mask
from mars_cloudmask.infer.science.report import collect_report, svg_plot, write_report

MAGENTA = (255, 0, 255)


def mask_with(cloud: float, valid_rows: int = 1200) -> np.ndarray:
    """North-up mask: ``valid_rows`` valid rows from row 300, the first ``cloud`` share of them cloud (0.95)."""
    mask = np.full((MAP_HEIGHT, MAP_WIDTH), INVALID, dtype=np.float32)
    mask[300 : 300 + valid_rows] = 0.1
    mask[300 : 300 + round(cloud * valid_rows)] = 0.95
    return mask


def make_run(out: Path) -> Path:
    """A run folder as cm-infer leaves it: 3 masks (one with a magenta quicklook), a failure,
    a run record and an older record in the history folder."""
    from PIL import Image

    maps = []
    for day, ls, cloud in [(1, 132.5, 0.25), (2, 140.0, 0.5), (3, 150.0, 0.125)]:
        name = f"P01_day{day:02d}"
        path = write_mask(
            out / "P" / "P01" / "cloudmasks" / f"cloudmask_{name}.ncdf",
            mask_with(cloud),
            {"solar_longitude": ls, "mars_year": 28, "map_name": name, "threshold": 0.912},
        )
        maps.append(
            {
                "name": name,
                "source": f"/maps/P/P01/{name}_zequat.jpg",
                "output": str(path),
                "status": "done",
                "ls": ls,
                "mars_year": 28,
            }
        )
    Image.new("RGB", (900, 451), MAGENTA).save(out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day01.png")
    maps.append(
        {
            "name": "P01_day04",
            "source": "/maps/P/P01/P01_day04_zequat.jpg",
            "output": str(out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day04.ncdf"),
            "status": "failed",
            "reason": "/maps/P/P01/P01_day04_zequat.jpg: corrupt JPEG (premature end)",
        }
    )
    record = {
        "tool": "cm-infer",
        "started": "2026-12-01T07:00:00+00:00",
        "finished": "2026-12-01T07:01:00+00:00",
        "command": ["cm-infer", "/maps", "--out", str(out)],
        "out": str(out),
        "provider": "CPUExecutionProvider",
        "model": {"name": "cloudmask-unet", "version": "1.2.3", "sha256": "abcdef0123456789"},
        "counts": {"done": 3, "skipped": 0, "failed": 1},
        "maps": maps,
        "failures": [{"source": m["source"], "reason": m["reason"]} for m in maps if m["status"] == "failed"]
        + [{"source": None, "reason": "/maps/P/P05: no _ls.txt"}],
    }
    (out / "cm-infer-run.json").write_text(json.dumps(record))
    older = {
        **record,
        "started": "2026-11-30T07:00:00+00:00",
        "finished": "2026-11-30T07:01:00+00:00",
        "model": {"name": "cloudmask-unet", "version": "1.2.2", "sha256": "0123"},
        "maps": [{**maps[1], "status": "failed", "reason": "disk full"}],
        "failures": [],
    }
    (out / "cm-infer-runs").mkdir()
    (out / "cm-infer-runs" / "2026-11-30T070000.json").write_text(json.dumps(older))
    (out / "cm-infer-runs" / "2026-12-01T070000.json").write_text(json.dumps(record))  # same run, twice
    return out


def test_collect_report_reads_records_masks_and_quicklooks(tmp_path):
    data = collect_report(make_run(tmp_path / "OUT"))
    by_name = {r.name: r for r in data.rows}
    assert list(by_name) == ["P01_day01", "P01_day02", "P01_day03", "P01_day04"]
    assert by_name["P01_day02"].status == "done"  # the later run's result wins over the older failure
    assert by_name["P01_day02"].cloud_fraction == pytest.approx(0.5)
    assert by_name["P01_day03"].cloud_fraction == pytest.approx(0.125)
    assert by_name["P01_day01"].valid_fraction == pytest.approx(1200 / MAP_HEIGHT)
    assert by_name["P01_day01"].thumbnail == "P/P01/cloudmasks/cloudmask_P01_day01.png"
    assert by_name["P01_day03"].thumbnail is None
    assert by_name["P01_day04"].status == "failed" and "corrupt JPEG" in by_name["P01_day04"].reason
    assert ("(input)", "/maps/P/P05: no _ls.txt") in data.failures
    assert [m["version"] for m in data.models] == ["1.2.2", "1.2.3"] and len(data.runs) == 2


def test_masks_without_a_record_and_bad_masks_get_rows(tmp_path):
    out = tmp_path / "OUT"
    write_mask(
        out / "cloudmask_P02_day01.nc", mask_with(0.5), {"solar_longitude": 10.0, "mars_year": 29, "threshold": 0.5}
    )
    (out / "cloudmask_P02_day02.ncdf").write_bytes(b"")
    good = (out / "cloudmask_P02_day01.nc").read_bytes()
    (out / "cloudmask_P02_day03.nc").write_bytes(good[: len(good) // 2])
    page = write_report(out).read_text(encoding="utf-8")
    rows = {r.name: r for r in collect_report(out).rows}
    assert rows["P02_day01"].status == "on disk" and rows["P02_day01"].cloud_fraction == pytest.approx(0.5)
    assert rows["P02_day02"].status == "bad mask" and "0 bytes" in rows["P02_day02"].reason
    assert rows["P02_day03"].status == "bad mask" and "truncated" in rows["P02_day03"].reason
    assert rows["P02_day03"].cloud_fraction is None and "truncated" in page
    assert (
        "no run record" in page
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_svg_plot_places_points_by_ls_and_fraction():
    svg = svg_plot([(10.0, 0.0, 28), (350.0, 0.4, 28), (90.0, 0.2, 29)], width=416, height=360)
    # a run that spans the year keeps 0..360: x from 56 to 306 (250 px for 360 deg), y from 16 (0.4) to 316 (0)
    assert '<circle cx="62.9" cy="316.0"' in svg and '<circle cx="299.1" cy="16.0"' in svg
    assert '<circle cx="118.5" cy="166.0"' in svg
    assert ">0.10</text>" in svg and ">0.40</text>" in svg and ">0</text>" in svg and ">360</text>" in svg
    assert "MY 28" in svg and "MY 29" in svg


def test_the_ls_axis_fits_a_run_that_covers_part_of_the_year():
    svg = svg_plot([(132.5, 0.25, 28), (140.0, 0.5, 28), (150.0, 0.125, 28)], width=416, height=360)
    ticks = [float(t) for t in re.findall(r'font-size="12">([0-9.]+)</text>', svg) if "." not in t]
    assert ticks[0] <= 132.5 and ticks[-1] >= 150.0 and ticks[-1] - ticks[0] <= 30, ticks
    assert ">0</text>" not in svg and ">360</text>" not in svg
    # 132.5 and 150 lie inside the plot area (56..306), at their share of the fitted axis
    xs = [float(v) for v in re.findall(r'<circle cx="([0-9.]+)" cy="[0-9.]+" r="3.5"', svg)]
    span = ticks[-1] - ticks[0]
    assert xs[0] == pytest.approx(56 + 250 * (132.5 - ticks[0]) / span, abs=0.06)
    assert xs[2] == pytest.approx(56 + 250 * (150.0 - ticks[0]) / span, abs=0.06)
    one = svg_plot([(132.5, 0.25, 28)], width=416, height=360)  # a single map: an axis around it
    assert ">0</text>" not in one and '<circle cx="56.0"' not in one and '<circle cx="306.0"' not in one


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return exe


def run_chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
        page.resolve().as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_the_page_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    chromium()
    page = write_report(make_run(tmp_path / "OUT"))
    shot = tmp_path / "shot.png"
    done = run_chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1400")
    assert shot.is_file(), done.stderr[-2000:]
    dom = run_chromium(page, tmp_path / "profile2", "--dump-dom").stdout
    for text in (
        "P01_day01",
        "P01_day04",
        "corrupt JPEG (premature end)",
        "no _ls.txt",
        "cloudmask-unet",
        "1.2.3",
        "CPUExecutionProvider",
        "Cloud fraction against Ls",
        "0.500",
        "0.125",
        "132.5",
    ):
        assert text in dom, text
    assert dom.count("<circle") >= 3 + 1  # three points and a legend mark
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1400, 1200)
    magenta = np.all(pixels == MAGENTA, axis=-1)
    assert magenta.sum() > 150 * 60  # the quicklook thumbnail loaded from its relative path
    blue = np.all(np.abs(pixels.astype(int) - (0x1F, 0x77, 0xB4)) < 8, axis=-1)
    assert blue.sum() > 3 * 10  # the plotted points of MY 28


# --------------------------------------------------------------------------- hostile names (issue 32.1, 32.14)
class LinkCollector(HTMLParser):
    """Every href and src value of a page, as the browser sees them (entities decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v or "" for k, v in attrs if k in ("href", "src")]


HOSTILE_FOLDERS = [
    "javascript:alert(document.domain)",
    "data:text,hi",
    'x"><script>alert(1)</script>',
    "a b#c?d%41e&f",
    "Ærø Ls°",
]


def hostile_run(out: Path) -> list[Path]:
    """One mask and quicklook per hostile phase folder, listed in a run record; the mask paths."""
    from PIL import Image

    masks, maps = [], []
    for k, folder in enumerate(HOSTILE_FOLDERS):
        name = f"P0{k}_day01"
        mask = write_mask(
            out / folder / "P01" / "cloudmasks" / f"cloudmask_{name}.ncdf",
            mask_with(0.25),
            {"solar_longitude": 10.0 + k, "mars_year": 28, "map_name": name, "threshold": 0.5},
        )
        Image.new("RGB", (90, 45), MAGENTA).save(mask.with_suffix(".png"))
        masks.append(mask)
        maps.append({"name": name, "source": f"/maps/{folder}/P01/{name}.jpg", "output": str(mask), "status": "done"})
    record = {
        "started": "2026-12-01T07:00:00+00:00",
        "finished": "2026-12-01T07:01:00+00:00",
        "out": str(out),
        "counts": {"done": len(maps)},
        "maps": maps,
    }
    (out / "cm-infer-run.json").write_text(json.dumps(record))
    return masks


def assert_links_safe(out: Path, page: str, expected: set[Path]) -> None:
    """Every href and src is a relative path without a scheme that names a file in OUT; together
    they name every file of ``expected``."""
    collector = LinkCollector()
    collector.feed(page)
    assert collector.links, "the page links nothing"
    targets = set()
    for link in collector.links:
        parts = urlsplit(link)
        assert parts.scheme == "" and parts.netloc == "" and not parts.query and not parts.fragment, link
        assert not link.startswith("/") and ":" not in link.split("/")[0], link
        target = out / os.fsdecode(unquote_to_bytes(parts.path))
        assert target.is_file(), (link, target)
        assert target.resolve().is_relative_to(out.resolve()), link
        targets.add(target)
    assert expected <= targets, expected - targets


def test_every_href_and_src_is_a_safe_relative_path_under_hostile_folder_names(tmp_path):
    out = tmp_path / "OUT"
    masks = hostile_run(out)
    page = write_report(out).read_text(encoding="utf-8")
    assert_links_safe(out, page, set(masks) | {m.with_suffix(".png") for m in masks})
    assert "<script>alert(1)" not in page and "javascript:" not in page.replace("javascript%3A", "")


# --------------------------------------------------------------------------- hostile run records (issue 32.2)
XSS = "<img src=x onerror=alert(1)>"


def hostile_record(out: Path) -> Path:
    """A run whose record carries markup in every text field, a string ``ls`` and mixed-type
    ``mars_year`` values; the record's path."""
    maps = []
    for day, ls, year in [(1, "abc", XSS), (2, 140.0, 28), (3, 150.0, "29"), (4, True, 28.5)]:
        name = f"P01_day0{day}"
        path = write_mask(
            out / "P" / "P01" / "cloudmasks" / f"cloudmask_{name}.ncdf",
            mask_with(0.25),
            {"solar_longitude": 100.0 + day, "mars_year": 28, "map_name": name, "threshold": 0.5},
        )
        maps.append({"name": name, "source": XSS, "output": str(path), "status": "done", "ls": ls, "mars_year": year})
    maps.append({"name": XSS, "status": XSS, "reason": XSS, "source": XSS, "output": XSS})
    maps.append({"name": ["not", "a", "name"], "status": "done"})
    record = {
        "started": XSS,
        "finished": {"x": XSS},
        "out": str(out),
        "provider": XSS,
        "precision": XSS,
        "model": {"name": XSS, "version": XSS, "sha256": XSS, "session_providers": [XSS]},
        "counts": {XSS: XSS, "done": 4},
        "interrupted": XSS,
        "maps": maps,
        "failures": [{"source": XSS, "reason": XSS}, "not a failure"],
    }
    path = out / "cm-infer-run.json"
    path.write_text(json.dumps(record))
    return path


def test_run_record_values_are_escaped_and_type_checked(tmp_path):
    from mars_cloudmask.infer.science.report import report_page

    out = tmp_path / "OUT"
    record = hostile_record(out)
    path, problems = report_page(out)
    page = path.read_text(encoding="utf-8")
    assert XSS not in page and "<img src=x" not in page and html.escape(XSS) in page
    collector = LinkCollector()
    collector.feed(page)
    tags = re.findall(r"<([a-zA-Z]+)", page)
    assert "script" not in tags and tags.count("img") == 0  # no quicklooks here, and no injected image
    rows = {r.name: r for r in collect_report(out).rows}
    # the bad values are dropped (the mask's own Ls and year are used) and each is named once
    assert rows["P01_day01"].ls == pytest.approx(101.0) and rows["P01_day01"].mars_year == 28
    assert rows["P01_day03"].mars_year == 28 and rows["P01_day04"].ls == pytest.approx(104.0)
    assert rows["P01_day02"].ls == pytest.approx(140.0)
    assert all(str(record) in p for p in problems), problems
    for words in (
        "P01_day01: ls",
        "P01_day01: mars_year",
        "P01_day03: mars_year",
        "P01_day04: ls",
        "P01_day04: mars_year",
        "finished",
        "counts",
    ):
        assert sum(words in p for p in problems) == 1, (words, problems)
    assert all("\n" not in p for p in problems)
    assert f"<h2>Run records and values left out ({len(problems)})</h2>" in page and "&ndash; ?: " in page


def test_cm_report_names_the_record_with_bad_values_in_one_line_and_carries_on(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mars_cloudmask.infer.science.cube_cli import report_command

    out = tmp_path / "OUT"
    record = hostile_record(out)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(report_command)
    res = CliRunner().invoke(app, [str(out)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert str(record) in res.output and "ls 'abc' is not a number" in res.output.replace("\n", "")
    assert (out / "index.html").is_file()


# --------------------------------------------------------------------------- names that are not ASCII (issue 32.14)
def odd_named_run(out: Path) -> dict[str, Path]:
    """Masks (cloud 0.25, each with a quicklook) under a folder whose name is not UTF-8, a
    Unicode folder and name, and a file name that is not UTF-8; display name -> mask path."""
    from PIL import Image

    src = write_mask(out / "src.ncdf", mask_with(0.25), {"solar_longitude": 10.0, "mars_year": 28, "threshold": 0.5})
    masks = {
        "P01_day01": out / os.fsdecode(b"P\xff\xfe") / "P01" / "cloudmask_P01_day01.ncdf",
        "Ærø_day01": out / "Ærø" / "cloudmask_Ærø_day01.ncdf",
        "P02_\ufffdt\ufffd": out / "R" / os.fsdecode(b"cloudmask_P02_\xe9t\xe9.ncdf"),
    }
    for mask in masks.values():
        mask.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, mask)
        Image.new("RGB", (90, 45), MAGENTA).save(mask.with_suffix(".png"))
    src.unlink()
    return masks


def test_names_that_are_not_utf8_or_not_ascii_render_and_link(tmp_path):
    out = tmp_path / "OUT"
    masks = odd_named_run(out)
    page = write_report(out).read_text(encoding="utf-8")  # the page was not writable before
    for shown in masks:
        assert f">{shown}</a>" in page, shown
    rows = collect_report(out).rows
    assert len(rows) == 3 and all(r.cloud_fraction == pytest.approx(0.25) for r in rows), rows
    assert_links_safe(out, page, set(masks.values()) | {m.with_suffix(".png") for m in masks.values()})


def test_cm_report_prints_names_escaped_on_one_line_each(tmp_path):
    import typer
    from typer.testing import CliRunner

    from mars_cloudmask.infer.science.cube_cli import report_command

    out = tmp_path / os.fsdecode(b"OUT[bold]\xff")
    out.mkdir()
    maps = [{"name": "[/red]P01\nforged: line", "status": "done", "ls": "x"}]
    (out / "cm-infer-run.json").write_text(json.dumps({"maps": maps}))
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(report_command)
    res = CliRunner().invoke(app, [str(out)])
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 2 and not any(line.startswith("forged") for line in lines), lines
    assert "[/red]P01\\nforged: line" in lines[0].replace(" \n", "") and "OUT[bold]\ufffd" in lines[0], lines
    assert lines[1].endswith("index.html") and "OUT[bold]\ufffd" in lines[1], lines


# --------------------------------------------------------------------------- a moved or copied OUT (issue 32.9)
def test_a_copied_or_moved_out_is_read_from_where_it_is_now(tmp_path):
    original = make_run(tmp_path / "OUT")
    copy = tmp_path / "COPY"
    shutil.copytree(original, copy)
    # the original changes after the copy: the copy's page must not show it
    write_mask(
        original / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day02.ncdf",
        mask_with(0.875),
        {"solar_longitude": 140.0, "mars_year": 28, "map_name": "P01_day02", "threshold": 0.912},
    )
    rows = collect_report(copy).rows
    assert [r.name for r in rows] == ["P01_day01", "P01_day02", "P01_day03", "P01_day04"]  # no row twice
    assert [r.status for r in rows] == ["done", "done", "done", "failed"]
    assert rows[1].cloud_fraction == pytest.approx(0.5) and rows[1].mask == "P/P01/cloudmasks/cloudmask_P01_day02.ncdf"
    page = write_report(copy).read_text(encoding="utf-8")
    assert str(original) not in page
    masks = {copy / "P" / "P01" / "cloudmasks" / f"cloudmask_P01_day0{d}.ncdf" for d in (1, 2, 3)}
    assert_links_safe(copy, page, masks)
    moved = tmp_path / "MOVED"
    original.rename(moved)
    rows = collect_report(moved).rows
    assert [r.status for r in rows] == ["done", "done", "done", "failed"]
    assert rows[1].cloud_fraction == pytest.approx(0.875) and rows[1].mask is not None


def test_a_record_naming_a_mask_outside_out_is_not_read_or_linked(tmp_path):
    out = tmp_path / "OUT"
    elsewhere = write_mask(tmp_path / "elsewhere" / "cloudmask_P09_day01.ncdf", mask_with(0.5), {"threshold": 0.5})
    maps = [{"name": "P09_day01", "output": str(elsewhere), "status": "done"}]
    out.mkdir()
    (out / "cm-infer-run.json").write_text(json.dumps({"out": str(out), "maps": maps}))
    (row,) = collect_report(out).rows
    assert row.cloud_fraction is None and row.mask is None and row.status == "missing"
    assert str(elsewhere) in row.reason and "not in" in row.reason
    page = write_report(out).read_text(encoding="utf-8")
    assert "href=" not in page and "src=" not in page


# --------------------------------------------------------------------------- what the page says (issue 35)
def test_the_page_says_the_threshold_precision_and_links_thumbnails_to_quicklooks(tmp_path):
    out = make_run(tmp_path / "OUT")
    record = json.loads((out / "cm-infer-run.json").read_text())
    record["precision"] = "bf16"
    (out / "cm-infer-run.json").write_text(json.dumps(record))
    page = write_report(out).read_text(encoding="utf-8")
    assert "<th>precision</th>" in page and "<td>bf16</td>" in page
    assert re.search(r"threshold[^<]*<b>0\.912</b>", page), "the fractions' threshold is not stated"
    thumb = "P/P01/cloudmasks/cloudmask_P01_day01.png"
    assert f'<a href="{thumb}"' in page and f'src="{thumb}"' in page
    assert page.index(f'<a href="{thumb}"') < page.index(f'src="{thumb}"')  # the image sits in the link
    write_mask(out / "P" / "P01" / "cloudmasks" / "cloudmask_P01_day09.ncdf", mask_with(0.5), {"threshold": 0.47})
    page = write_report(out).read_text(encoding="utf-8")
    assert "thresholds differ" in page and "0.47 (1 mask)" in page and "0.912 (3 masks)" in page


def test_a_quicklook_only_rerun_is_not_read_as_maps_done(tmp_path):
    out = make_run(tmp_path / "OUT")
    first = json.loads((out / "cm-infer-run.json").read_text())
    maps = [
        {**m, "timings": {"extras_s": 0.5}, "notes": ["quicklook made from the existing mask"]}
        for m in first["maps"]
        if m["status"] == "done"
    ]
    rerun = {
        **first,
        "started": "2026-12-02T07:00:00+00:00",
        "finished": "2026-12-02T07:00:10+00:00",
        "counts": {"done": 3, "skipped": 0, "failed": 0},
        "maps": maps,
        "failures": [],
    }
    (out / "cm-infer-runs" / "2026-12-02T070000.json").write_text(json.dumps(rerun))
    page = write_report(out).read_text(encoding="utf-8")
    runs = re.findall(r"run 2026-12-02T07:00:00[^<]*", page)
    assert len(runs) == 1 and "3 quicklooks from existing masks" in runs[0] and "done 3" not in runs[0], runs
    rows = {r.name: r for r in collect_report(out).rows}
    assert rows["P01_day02"].status == "done" and rows["P01_day02"].cloud_fraction == pytest.approx(0.5)


def test_cm_infer_report_says_which_record_values_it_left_out(tiny_model, map_tree, tmp_path):
    from typer.testing import CliRunner

    from mars_cloudmask.infer.cli import EXIT_FAILED, app

    out = tmp_path / "OUT"
    (out / "cm-infer-runs").mkdir(parents=True)
    old = out / "cm-infer-runs" / "old.json"
    old.write_text(json.dumps({"finished": "2000", "maps": [{"name": "P01_day01", "status": "done", "ls": "abc"}]}))
    args = [str(map_tree), "--out", str(out), "--model", str(tiny_model), "--report"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == EXIT_FAILED and "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if str(old) in ln]
    assert len(lines) == 1 and "ls 'abc' is not a number" in lines[0], res.output
    assert f"report: {out / 'index.html'}" in res.output


def test_collect_report_tells_progress_once_per_mask_read(tmp_path):
    out = make_run(tmp_path / "OUT")
    write_mask(out / "extra" / "cloudmask_P02_day01.nc", mask_with(0.5), {"threshold": 0.5})
    calls: list[tuple[str, int]] = []
    collect_report(out, progress=lambda name, total: calls.append((name, total)))
    assert sorted(calls) == [("P01_day01", 4), ("P01_day02", 4), ("P01_day03", 4), ("P02_day01", 4)]


def test_two_masks_of_one_map_are_both_shown_and_said_to_be_the_same_map(tmp_path):
    out = make_run(tmp_path / "OUT")
    folder = out / "P" / "P01" / "cloudmasks"
    shutil.copy(folder / "cloudmask_P01_day02.ncdf", folder / "cloudmask_P01_day02.nc")
    rows = [r for r in collect_report(out).rows if r.name == "P01_day02"]
    assert len(rows) == 2 and {r.mask for r in rows} == {
        "P/P01/cloudmasks/cloudmask_P01_day02.ncdf",
        "P/P01/cloudmasks/cloudmask_P01_day02.nc",
    }
    for r in rows:
        assert r.reason is not None and "2 masks of this map" in r.reason and "cloudmask_P01_day02.nc" in r.reason
    # issue 32 item 3: the map is counted once (the first mask in path order), the copy is a duplicate
    first, copy = sorted(rows, key=lambda r: r.mask or "")
    assert first.mask.endswith(".nc") and first.cloud_fraction is not None
    assert copy.status == "duplicate" and copy.cloud_fraction is None and copy.valid_fraction is None
    assert copy.reason is not None and f"the same map as {first.mask}" in copy.reason


@pytest.mark.parametrize("bad", [47.0, float("nan"), -1.0])
def test_a_mask_threshold_outside_0_1_is_named_not_used_silently(tmp_path, bad, monkeypatch):
    out = tmp_path / "OUT"
    from mars_cloudmask.infer import netcdf

    monkeypatch.setattr(netcdf, "mask_threshold", lambda *a, **k: bad)  # as an edited file has it
    write_mask(out / "cloudmask_P03_day01.nc", mask_with(0.5), {"threshold": bad})
    (row,) = collect_report(out).rows
    assert row.cloud_fraction == pytest.approx(0.5)  # at the default 0.912: the 0.95 rows are cloud
    assert row.reason is not None and "threshold attribute" in row.reason and "0.912" in row.reason, row.reason
    page = write_report(out).read_text(encoding="utf-8")
    assert "the masks have no threshold" not in page and "threshold attribute" in page


def test_thumbnails_under_hostile_and_odd_names_load_in_headless_chromium(tmp_path):
    from PIL import Image

    chromium()
    out = tmp_path / "OUT"
    n = len(hostile_run(out)) + len(odd_named_run(out))
    shot = tmp_path / "shot.png"
    done = run_chromium(write_report(out), tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2600")
    assert shot.is_file(), done.stderr[-2000:]
    magenta = np.all(np.asarray(Image.open(shot).convert("RGB")) == MAGENTA, axis=-1)
    rows_with_magenta = np.flatnonzero(magenta.sum(axis=1) > 150)
    runs = np.split(rows_with_magenta, np.flatnonzero(np.diff(rows_with_magenta) > 1) + 1)
    assert len(runs) == n, f"{len(runs)} of {n} thumbnails loaded"  # each thumbnail's relative link worked


@pytest.mark.parametrize("edit", [5.0, float("nan")])
def test_a_mask_edited_to_impossible_values_is_a_bad_mask_on_the_page(tmp_path, edit):
    """A mask edited to 5.0 everywhere read as 100 % cloud and 100 % valid, NaN as all invalid
    with no word (issue 32 item 8): the page gives it no figures and says why."""
    import netCDF4

    from tests.test_science_stats import write_odd_mask

    out = tmp_path / "OUT"
    path = write_odd_mask(out / "cloudmask_P02_day01.ncdf", (MAP_HEIGHT, MAP_WIDTH), {"solar_longitude": 10.0})
    with netCDF4.Dataset(path, "a") as ds:
        ds["cloudmask"][:] = np.full((MAP_HEIGHT, MAP_WIDTH), edit, np.float32)
    (row,) = collect_report(out).rows
    assert row.status == "bad mask" and row.cloud_fraction is None and row.valid_fraction is None
    assert ("NaN" if edit != edit else "outside [0, 1]") in row.reason and str(path) in row.reason
