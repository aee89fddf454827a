import io, numpy as np, simplejpeg
from PIL import Image
rng = np.random.default_rng(0)
rgb = (rng.integers(0, 255, (1801//8+1, 3600//8, 3), dtype=np.uint8).repeat(8,0).repeat(8,1))[:1801,:3600]
rgb = np.ascontiguousarray(rgb)
buf = io.BytesIO(); Image.fromarray(rgb).save(buf, "JPEG", quality=90); good = buf.getvalue()
print(len(good))
half = good[: len(good)//2] + b"\xff\xd9"
mid = len(good)//2
zeros = good[:mid] + bytes(4096) + good[mid+4096:]
buf = io.BytesIO(); Image.fromarray(rgb[:16,:16].copy()).save(buf, "JPEG"); small = bytearray(buf.getvalue())
i = small.find(b"\xff\xc0"); small[i+5:i+7] = (1801).to_bytes(2,"big"); small[i+7:i+9] = (3600).to_bytes(2,"big"); small=bytes(small)
for name, d in [("good", good), ("half", half), ("zeros", zeros), ("sof", small)]:
    try:
        im = Image.open(io.BytesIO(d)); im.load(); pil = "ok %s" % (im.size,)
    except Exception as e: pil = "ERR %s" % e
    try:
        a = simplejpeg.decode_jpeg(d, colorspace="RGB", strict=True); sj = "ok %s" % (a.shape,)
    except Exception as e: sj = "ERR %r" % e
    print(name, "| pillow:", pil, "| simplejpeg:", sj)
    print("   header", simplejpeg.decode_jpeg_header(d))
