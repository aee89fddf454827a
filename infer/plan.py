"""The run plan: every option of a run settled against the model, and validated, once.

``cm-infer`` (and :func:`mars_cloudmask.infer.engine.run`) turns what the user asked for
(:class:`InferOptions`, every field optional) into a frozen, picklable :class:`RunPlan` before
anything is written: the threshold, polar offset and tile size come from the model's metadata
unless given, and every value is checked against the model (the tile size against its
alignment, the threshold against [0, 1], the polar offset against the Ls formula of
``docs/spec.md`` section 2).  A bad option is a :class:`PlanError` naming the option; the
run record stores the plan, and the Dask workers receive it as it is.

Example::

    from mars_cloudmask.infer.plan import InferOptions, resolve_plan
    from mars_cloudmask.infer.runtime import load_model

    model = load_model()
    plan = resolve_plan(InferOptions(out="masks", binary=True), model)
    print(plan.threshold, plan.polar_offset)   # the model's own values
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .background import composite_file_name
from .channels import ChannelError, parse_spec
from .geometry import MAP_HEIGHT, MAP_WIDTH, Bounds, check_tile_out, polar_latitudes
from .netcdf import MASK_SUFFIXES
from .stitch import STITCH_MODES

if TYPE_CHECKING:  # pragma: no cover
    from .maps import MapJob
    from .runtime import CloudModel


POLAR_BAND_MIN_DEG = 1.0
"""The polar offset must leave at least this much latitude between the bounds at every Ls."""


class PlanError(ValueError):
    """An option that cannot work with this model; the message names the option and the reason."""


@dataclass(frozen=True)
class InferOptions:
    """What the user asked for; ``None`` = the model's value (see :func:`resolve_plan`).

    ``bounds``: ``(xmin, xmax, ymin, ymax)`` north-up px, exclusive max, for every map instead
    of the Ls-derived box.  ``tile_out``: output tile size in px (None: per stitch mode).
    ``suffix``: ``.ncdf`` (the original's names) or ``.nc``.  ``background``: a composite file
    (:func:`.background.write_netcdf`) every map uses instead of its subphase's own, for a
    model whose channels need one (``cm-infer --background FILE``).
    """

    out: Path | str
    binary: bool = False
    bounds: tuple[int, int, int, int] | None = None
    polar_offset: float | None = None
    stitch: str = "seamless"
    batch_size: int = 1
    tile_out: int | None = None
    threshold: float | None = None
    overwrite: bool = False
    copy_maps: bool = False
    quicklook: bool = False
    suffix: str = ".ncdf"
    report: bool = False
    background: Path | str | None = None


@dataclass(frozen=True)
class RunPlan:
    """Every setting of a run, resolved and validated (picklable; stored in the run record).

    ``out`` is absolute (workers may start elsewhere).  ``threshold`` is the cloud threshold
    on the probability in use (for ``binary`` masks and quicklooks); ``polar_offset`` in degrees
    towards the equator; ``tile_out`` None = chosen per map (``seamless``) or the model's tile.
    ``model_*`` name the model the plan was resolved against.  ``channels``: the model's input
    channel spec (:mod:`.channels`); ``background``: the absolute path of a given composite
    (None: each subphase gets its own, :meth:`composite_path`).  ``run_id``: the run the plan is
    carried out by (set by :func:`mars_cloudmask.infer.engine.run`; written into every mask).
    """

    out: Path
    binary: bool
    bounds: tuple[int, int, int, int] | None
    polar_offset: float
    stitch: str
    batch_size: int
    tile_out: int | None
    threshold: float
    overwrite: bool
    copy_maps: bool
    quicklook: bool
    suffix: str
    report: bool
    model_path: str
    model_sha256: str
    model_name: str
    model_version: str
    channels: str = "rgb"
    background: str | None = None
    run_id: str | None = None

    def output_path(self, job: "MapJob") -> Path:
        """``OUT/<phase>/<subphase>/cloudmasks/cloudmask_<name><suffix>``."""
        return self.out / job.relative_output(self.suffix)

    def other_output_paths(self, job: "MapJob") -> list[Path]:
        """The map's mask under the other suffixes (:data:`MASK_SUFFIXES`): a mask there is the
        map's output too (a rerun with another ``--suffix`` does not predict it again)."""
        return [self.out / job.relative_output(s) for s in MASK_SUFFIXES if s != self.suffix]

    @property
    def percentiles(self) -> tuple[int, ...]:
        """Background percentiles the model's channels need (empty: no background)."""
        return tuple(parse_spec(self.channels).percentiles())

    @property
    def needs_background(self) -> bool:
        """Whether each map needs a background composite (a ``bdiffQ`` / ``bratioQ`` channel)."""
        return bool(self.percentiles)

    def composite_path(self, job: "MapJob") -> Path | None:
        """The composite the map uses: ``--background FILE`` if given, else
        ``OUT/<phase>/<subphase>/background_<subphase>.nc`` (beside ``cloudmasks/``); None for a
        model that needs none."""
        if not self.needs_background:
            return None
        if self.background is not None:
            return Path(self.background)
        return self.out / job.phase / job.subphase / composite_file_name(job.subphase)

    def to_record(self) -> dict[str, Any]:
        """The plan as JSON-ready values."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def polar_offset_range(step_deg: float = 0.5) -> tuple[float, float]:
    """``(lowest, highest)`` polar offset (deg) keeping ``-90 <= lat_s < lat_n <= 90`` with at
    least :data:`POLAR_BAND_MIN_DEG` between them at every Ls (checked every ``step_deg``)."""
    lss = [k * step_deg for k in range(int(360 / step_deg))]
    # lat_n - lat_s and the bounds move linearly with the offset: find the limits from offset 0.
    base = [polar_latitudes(ls, 0.0) for ls in lss]
    low = max(max(n - 90.0 for n, _ in base), max(-90.0 - s for _, s in base))
    high = min((n - s - POLAR_BAND_MIN_DEG) / 2 for n, s in base)
    return math.ceil(low * 100) / 100, math.floor(high * 100) / 100


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise PlanError(message)


def validate_options(options: InferOptions, *, align: int) -> None:
    """Raise :class:`PlanError` for an option no model could use (names the option)."""
    _check(options.stitch in STITCH_MODES, f"--stitch {options.stitch}: use one of {', '.join(STITCH_MODES)}")
    _check(
        isinstance(options.batch_size, int) and options.batch_size >= 1,
        f"--batch-size {options.batch_size}: must be >= 1",
    )
    if options.threshold is not None:
        t = options.threshold
        _check(
            math.isfinite(t) and 0.0 < t < 1.0,
            f"--threshold {t:g}: must be a probability between 0 and 1 (exclusive); the model's own is in its metadata",
        )
    if options.polar_offset is not None:
        low, high = polar_offset_range()
        c = options.polar_offset
        _check(
            math.isfinite(c) and low <= c <= high,
            f"--polar-offset {c:g}: must be between {low:g} and {high:g} degrees, so that the polar bounds "
            "stay inside the map and apart at every Ls",
        )
    if options.tile_out is not None:
        try:
            check_tile_out(int(options.tile_out), align)
        except ValueError as exc:
            raise PlanError(f"--tile-out {options.tile_out}: {exc} for this model") from None
    if options.bounds is not None:
        try:
            Bounds(*(int(v) for v in options.bounds))
        except (TypeError, ValueError) as exc:
            raise PlanError(f"--bounds {' '.join(map(str, options.bounds))}: {exc}") from None
    _check(options.suffix in MASK_SUFFIXES, f"--suffix {options.suffix}: use one of {', '.join(MASK_SUFFIXES)}")


def check_background_file(path: Path, channels: str) -> None:
    """Raise :class:`PlanError` unless ``path`` is a readable composite of map size holding the
    percentiles the channel spec ``channels`` needs (``--background FILE``)."""
    from .background import read_netcdf

    spec = parse_spec(channels)
    if not spec.needs_background:
        raise PlanError(f"--background {path}: the model's input channels {spec.text!r} need no background composite")
    if not path.is_file():
        raise PlanError(f"--background {path}: no such file")
    try:
        bg = read_netcdf(path, spec.percentiles())
    except KeyError as exc:
        raise PlanError(f"--background {path}: {exc.args[0]} (the model's channels {spec.text!r})") from None
    except Exception as exc:  # netCDF4 raises OSError, RuntimeError, IndexError... on a bad file
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise PlanError(f"--background {path}: not a background composite ({msg})") from None
    if bg.count.shape != (MAP_HEIGHT, MAP_WIDTH):
        raise PlanError(f"--background {path}: composite is {bg.count.shape}, maps are {(MAP_HEIGHT, MAP_WIDTH)}")


def check_jobs(plan: RunPlan, jobs: "Sequence[MapJob]") -> None:
    """Raise :class:`PlanError` when the maps cannot run under ``plan`` together: a given
    ``--background`` is one subphase's composite, so its maps must come from one folder."""
    if plan.background is None:
        return
    folders = sorted({str(j.path.parent) for j in jobs})
    if len(folders) > 1:
        shown = ", ".join(folders[:3]) + (f" and {len(folders) - 3} more" if len(folders) > 3 else "")
        raise PlanError(
            f"--background {plan.background}: a composite is one subphase's background, but the maps come "
            f"from {len(folders)} folders ({shown}); run one subphase (or map) at a time, or leave "
            "--background out to build each subphase's own"
        )


def resolve_plan(options: InferOptions, model: "CloudModel") -> RunPlan:
    """Settle ``options`` against ``model`` (its threshold, polar offset, alignment and channels).

    Raises:
        PlanError: an option that cannot work (the message names it).
    """
    info = model.info
    validate_options(options, align=info.align)
    try:
        channels = parse_spec(info.input_channels).text
    except ChannelError as exc:  # a loaded model has a usable spec; a stand-in model might not
        raise PlanError(f"{model.path}: {exc}") from None
    background = None
    if options.background is not None:
        background = Path(options.background).expanduser().absolute()
        check_background_file(background, channels)
    return RunPlan(
        out=Path(options.out).expanduser().absolute(),
        binary=bool(options.binary),
        bounds=tuple(int(v) for v in options.bounds) if options.bounds is not None else None,  # type: ignore[arg-type]
        polar_offset=float(info.polar_offset if options.polar_offset is None else options.polar_offset),
        stitch=options.stitch,
        batch_size=int(options.batch_size),
        tile_out=None if options.tile_out is None else int(options.tile_out),
        threshold=float(info.threshold if options.threshold is None else options.threshold),
        overwrite=bool(options.overwrite),
        copy_maps=bool(options.copy_maps),
        quicklook=bool(options.quicklook),
        suffix=options.suffix,
        report=bool(options.report),
        model_path=str(Path(model.path).absolute()),
        model_sha256=model.sha256,
        model_name=info.name,
        model_version=info.version,
        channels=channels,
        background=None if background is None else str(background),
    )


def as_plan(options: "InferOptions | RunPlan", model: "CloudModel") -> RunPlan:
    """``options`` resolved against ``model`` (a plan is returned as it is, after checking it
    was resolved against this very model file)."""
    if isinstance(options, RunPlan):
        if options.model_sha256 != model.sha256:
            raise PlanError(f"the run plan was resolved for model {options.model_path}, not {model.path}")
        return options
    return resolve_plan(options, model)
