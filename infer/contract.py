"""The model contract between ``export`` (which writes it) and ``infer`` (which reads it).

An ONNX cloudmask model takes uint8 NHWC ``(N, H, W, C)`` raw map pixels with dynamic N, H, W
and returns float32 ``(N, H - 2*margin, W - 2*margin, 1)`` cloud probabilities.  Its
``metadata_props`` (all values strings) say how to use it: :class:`ModelInfo` holds them,
:meth:`ModelInfo.to_metadata` is what the exporter writes and :meth:`ModelInfo.from_metadata`
what the runtime reads, so the two sides cannot drift apart.

Keys and their defaults (a missing key takes the default, so old files keep loading):

==================  ==============================  =========================================
key                 default                         meaning
==================  ==============================  =========================================
``name``            the file's stem                 model name
``version``         ``unknown``                     model version
``threshold``       :data:`DEFAULT_THRESHOLD`       cloud threshold on the sigmoid output
``tile_in``         668 (``tile_out + 2 margin``)   input tile of the original plan, px
``tile_out``        484 (:data:`DEFAULT_TILE_OUT`)  output tile of the original plan, px
``margin``          92                              px lost per side by valid convolutions
``align``           16                              shift equivariance / size step, px
``polar_offset``    3 (deg)                         ``c`` of the polar bounds it was validated with
``input_channels``  ``rgb``                         what the input's channels hold, in order
==================  ==============================  =========================================

``input_channels`` is a channel spec of :mod:`.channels` (``rgb``, ``rgb,bdiff10,bdiff50``...):
the input then has ``3 + k`` channels, built per map by :func:`.channels.model_input`.

Every other key (``width``, ``depth``, ``split``, ``val_metrics``, ``created``...) travels in
:attr:`ModelInfo.extra`.  Files of model version 2 (the shipped ``cloudmask-unet.onnx``) have
no ``input_channels``: they read as ``rgb``.

Example::

    info = ModelInfo(name="cloudmask-unet", version="3", threshold=0.47, polar_offset=-3.0)
    meta = info.to_metadata()                      # dict[str, str] for metadata_props
    assert ModelInfo.from_metadata(meta, Path("m.onnx")) == info
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .channels import ChannelError, ChannelSpec, parse_spec
from .geometry import ALIGN, DEFAULT_POLAR_OFFSET, MARGIN, TILE_IN, TILE_OUT, check_tile_out

DEFAULT_THRESHOLD = 0.912
"""The original model's cloud threshold on the sigmoid output; models carry their own."""
DEFAULT_TILE_OUT = TILE_OUT
"""Output tile of the original plan (484 px): the default training and export tile."""
DEFAULT_CHANNELS = "rgb"
"""``input_channels`` of a model that does not declare it: the map's three JPEG channels."""

CONTRACT_KEYS = (
    "name",
    "version",
    "threshold",
    "tile_in",
    "tile_out",
    "margin",
    "align",
    "polar_offset",
    "input_channels",
)
"""The metadata keys :class:`ModelInfo` parses into fields (all others go to ``extra``)."""


class ModelError(RuntimeError):
    """The model file cannot be used; the one-line message names the file and the reason."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model's ``metadata_props`` say, with the defaults above for missing keys.

    ``tile_in`` / ``tile_out`` / ``margin`` / ``align`` in px; ``polar_offset`` in degrees;
    ``extra``: the other metadata keys, verbatim.  ``metadata`` (property): every key, as
    written to (or read from) the file.
    """

    name: str = "cloudmask-unet"
    version: str = "unknown"
    threshold: float = DEFAULT_THRESHOLD
    tile_in: int = TILE_IN
    tile_out: int = TILE_OUT
    margin: int = MARGIN
    align: int = ALIGN
    polar_offset: float = DEFAULT_POLAR_OFFSET
    input_channels: str = DEFAULT_CHANNELS
    extra: dict[str, str] = field(default_factory=dict, compare=True)

    @property
    def metadata(self) -> dict[str, str]:
        """All metadata keys as strings (what :meth:`to_metadata` writes)."""
        return self.to_metadata()

    def to_metadata(self) -> dict[str, str]:
        """The ``metadata_props`` of this model: contract keys first, then ``extra``."""
        meta = {
            "name": self.name,
            "version": str(self.version),
            "threshold": repr(float(self.threshold)),
            "tile_in": str(self.tile_in),
            "tile_out": str(self.tile_out),
            "margin": str(self.margin),
            "align": str(self.align),
            "polar_offset": repr(float(self.polar_offset)),
            "input_channels": self.input_channels,
        }
        meta.update({k: str(v) for k, v in self.extra.items() if k not in CONTRACT_KEYS})
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], path: str | Path) -> "ModelInfo":
        """Parse ``metadata_props``; raises :class:`ModelError` naming ``path`` on a bad number."""
        path = Path(path)
        try:
            margin = int(meta.get("margin", MARGIN))
            tile_in = int(meta.get("tile_in", TILE_IN))
            tile_out = int(meta.get("tile_out", tile_in - 2 * margin if "tile_in" in meta else TILE_OUT))
            return cls(
                name=meta.get("name", path.stem),
                version=meta.get("version", "unknown"),
                threshold=float(meta.get("threshold", DEFAULT_THRESHOLD)),
                tile_in=tile_in,
                tile_out=tile_out,
                margin=margin,
                align=int(meta.get("align", ALIGN)),
                polar_offset=float(meta.get("polar_offset", DEFAULT_POLAR_OFFSET)),
                input_channels=meta.get("input_channels", DEFAULT_CHANNELS).strip() or DEFAULT_CHANNELS,
                extra={k: str(v) for k, v in meta.items() if k not in CONTRACT_KEYS},
            ).checked(path)
        except ValueError as exc:
            raise ModelError(f"{path}: bad metadata value ({exc})") from None

    def checked(self, path: str | Path) -> "ModelInfo":
        """This info if every contract field is usable, else :class:`ModelError` naming ``path``
        and the key (the same ranges as ``cm-infer --threshold`` / ``--polar-offset``)."""
        problem = metadata_problem(self)
        if problem is not None:
            raise ModelError(f"{path}: bad model metadata: {problem}")
        return self

    def channel_spec(self, path: str | Path) -> ChannelSpec:
        """The parsed ``input_channels`` (:func:`.channels.parse_spec`): what the runtime feeds
        the model; :class:`ModelError` naming ``path`` for a spec it cannot provide."""
        try:
            return parse_spec(self.input_channels)
        except ChannelError as exc:
            raise ModelError(
                f"{path}: the model wants input channels {self.input_channels!r}, which this runtime cannot "
                f"provide ({exc}; a newer mars-cloudmask may support it)"
            ) from None


def metadata_problem(info: ModelInfo) -> str | None:
    """Why ``info``'s contract fields cannot be used (one phrase naming the key), or None.

    ``threshold``: finite, strictly between 0 and 1; ``margin`` >= 0; ``align`` >= 1;
    ``tile_out`` 4 mod ``align``; ``tile_in`` = ``tile_out + 2 margin``; ``polar_offset``
    (deg): finite, inside :func:`.plan.polar_offset_range`.
    """
    from .plan import polar_offset_range  # plan imports heavier modules; only needed here

    if not (math.isfinite(info.threshold) and 0.0 < info.threshold < 1.0):
        return f"threshold {info.threshold!r} must be a probability between 0 and 1 (exclusive)"
    if info.margin < 0:
        return f"margin {info.margin} must be >= 0 px"
    if info.align < 1:
        return f"align {info.align} must be >= 1 px"
    try:
        check_tile_out(info.tile_out, info.align)
    except ValueError as exc:
        return f"tile_out {info.tile_out}: {exc}"
    if info.tile_in != info.tile_out + 2 * info.margin:
        return f"tile_in {info.tile_in} must be tile_out {info.tile_out} + 2 * margin {info.margin}"
    low, high = polar_offset_range()
    if not (math.isfinite(info.polar_offset) and low <= info.polar_offset <= high):
        return (
            f"polar_offset {info.polar_offset!r} must be between {low:g} and {high:g} degrees, so that the "
            "polar bounds stay inside the map and apart at every Ls"
        )
    return None
