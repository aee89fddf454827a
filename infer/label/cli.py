"""``cm-label``: correct a cloud mask in the browser and save it as a training label.

Thin Typer wrapper over :func:`.load.find_in_out`, :func:`.load.open_session` and
:func:`.server.make_server`.  Prints the page's URL (with its token) and serves on 127.0.0.1
until Ctrl+C.  Errors are one line on stderr naming the file.  Exit status: 0 after Ctrl+C;
1 a mask or map that cannot be used; 2 a bad combination of arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def label_command(
    out: Optional[Path] = typer.Argument(None, help="A cm-infer output folder (with NAME)."),
    name: Optional[str] = typer.Argument(None, help="The map name in it, e.g. P01_day01."),
    labels: Path = typer.Option(..., "--labels", help="The labelled folder to save into (labels/P01 layout)."),
    map_path: Optional[Path] = typer.Option(
        None, "--map", help="The map JPEG (default with OUT NAME: its copy in OUT/.../mdgms)."
    ),
    mask: Optional[Path] = typer.Option(None, "--mask", help="The mask to start from (instead of OUT NAME)."),
    threshold: Optional[float] = typer.Option(None, help="Cloud threshold (default: the mask's, else 0.912)."),
    mars_year: Optional[int] = typer.Option(None, "--mars-year", help="Mars year (default: the mask's or _ls.txt)."),
    ls: Optional[float] = typer.Option(None, "--ls", help="Solar longitude, deg (default: the mask's or _ls.txt)."),
    day: Optional[str] = typer.Option(None, "--day", help="The label's day name (default: P01_day01 -> P01day01)."),
    port: int = typer.Option(0, help="Port on 127.0.0.1 (0: any free port)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
) -> None:
    """Open a mask over its map in the browser (127.0.0.1 only, token in the URL); saving
    writes a label that cm-train --data reads: cloudmask/, mdgms/ and list_ls.txt in --labels."""
    from .core import PathError, label_paths
    from .load import LabelInputError, find_in_out, open_session
    from .server import make_server

    if (out is None) != (name is None) or (out is None) == (mask is None):
        raise _fail("give either OUT NAME (a cm-infer output folder and a map name) or --map MAP --mask MASK", 2)
    try:
        if out is not None and name is not None:
            found = find_in_out(out, name, map_path)
            mask, map_path = found.mask, found.map
        elif map_path is None:
            raise _fail("--mask needs --map MAP.jpeg (the map the mask was made from)", 2)
        assert mask is not None and map_path is not None
        session = open_session(mask, map_path, labels, threshold=threshold, mars_year=mars_year, ls=ls, name=day)
        label_paths(labels, session.name)  # a day name or folder that would leave --labels: refused now
    except (LabelInputError, PathError) as exc:
        raise _fail(str(exc), 1) from None
    try:
        server = make_server(session, port)
    except OSError as exc:
        raise _fail(f"127.0.0.1:{port}: cannot listen ({exc.strerror or exc})", 2) from None
    print(f"cm-label: {session.map_path.name} with {Path(session.source).name} -> {labels}/ as {session.name}")
    print(f"open {server.url}", flush=True)
    print("Ctrl+C to stop", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main() -> None:
    """Entry point of ``cm-label``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(label_command)
    app()


if __name__ == "__main__":
    main()
