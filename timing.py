import time, statistics, numpy as np, simplejpeg
from pathlib import Path
from PIL import Image
p = Path("/work/shared/data/mdgm/P/P01/P01_day01_zequat.jpg")
def pil():
    with Image.open(p) as im:
        im.load(); return np.asarray(im, dtype=np.uint8)
def sj():
    return simplejpeg.decode_jpeg(p.read_bytes(), colorspace="RGB", strict=True)
a, b = pil(), sj()
print("max abs diff", int(np.abs(a.astype(int)-b.astype(int)).max()), "mean", np.abs(a.astype(int)-b.astype(int)).mean())
for f in (pil, sj):
    t = []
    for _ in range(5):
        t0 = time.perf_counter(); f(); t.append(time.perf_counter()-t0)
    print(f.__name__, "median %.1f ms" % (1000*statistics.median(t)), ["%.0f" % (1000*x) for x in t])
