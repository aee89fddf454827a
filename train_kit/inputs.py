"""A run's model inputs: the channel spec and the background composites it needs, per subphase.

Labelled days take the background of the maps in ``background_maps`` (e.g. all 25 maps of
``mdgm/P/P01``: a user's subphase folder, test days' maps included, since the composite needs
no label).  Reference (weak-target) maps take the background of the maps beside them (their
own subphase folder).  With ``subset = N`` each labelled day takes the composite of its own
random ``N`` of those maps (drawn from ``(seed, day number)``): a net trained so sees
backgrounds as noisy as a 5-map subphase folder gives (the shared sample's other seasons).
The last composite built is kept in memory (float32 planes, 26 MB per percentile), so maps
of one folder, loaded in a row, share it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from mars_cloudmask.infer.background import Background, composite_of_files, map_files
from mars_cloudmask.infer.channels import ChannelError, ChannelSpec, model_input, parse_spec
from mars_cloudmask.infer.maps import MapError

from .data import DataError, Sample, day_number


class ChannelInputs:
    """Callable ``(sample, rgb) -> uint8 (H, W, 3 + k)`` for :func:`.data.load_sample`."""

    def __init__(
        self, spec: str | ChannelSpec, background_maps: Sequence[str | Path] = (), subset: int = 0, seed: int = 0
    ):
        try:
            self.spec = parse_spec(spec) if isinstance(spec, str) else spec
        except ChannelError as exc:
            raise DataError(str(exc)) from None
        self.background_maps = [Path(p) for p in background_maps]
        if self.spec.needs_background and not self.background_maps:
            raise DataError(f"channels {self.spec.text} need a background: give --background-maps FOLDER")
        if subset < 0:
            raise DataError(f"--background-subset {subset}: expected 0 (all maps) or a number of maps")
        self.subset, self.seed = subset, seed
        self._cache: dict[tuple[str, ...], Background] = {}

    def background_files(self, sample: Sample) -> list[Path]:
        """The maps whose composite is ``sample``'s background."""
        folders = self.background_maps if sample.source == "label" else [sample.image.parent]
        files: list[Path] = []
        for f in folders:
            if f.is_file():
                files.append(f)
            elif f.is_dir():
                files.extend(map_files(f))
            else:
                raise DataError(f"{f}: no such background map or folder")
        if not files:
            raise DataError(f"{', '.join(map(str, folders))}: no map to build the background of {sample.name} from")
        if sample.source == "label" and 0 < self.subset < len(files):
            rng = np.random.default_rng([self.seed, day_number(sample.name)])
            files = [files[i] for i in sorted(rng.choice(len(files), self.subset, replace=False))]
        return files

    def background(self, sample: Sample) -> Background:
        files = self.background_files(sample)
        key = tuple(str(p) for p in files)
        if key not in self._cache:
            self._cache.clear()
            try:
                self._cache[key] = composite_of_files(files, self.spec.percentiles())
            except MapError as exc:
                raise DataError(str(exc)) from None
        return self._cache[key]

    def __call__(self, sample: Sample, rgb: np.ndarray) -> np.ndarray:
        if not self.spec.extras:
            return rgb
        bg = self.background(sample) if self.spec.needs_background else None
        return model_input(rgb, self.spec, bg, sample.ls)
