"""dev/fixture.py: writes the fixture files that tests/fixture.h reads (named arrays, no Python in CI).

Format (little-endian): b"MGFX" | uint32 count | count x { uint32 name_len | name | uint32 dtype
(0 f32, 1 i32, 2 f64) | uint32 ndim | int32 dims[ndim] | data }.
"""
import struct

import numpy as np

_DTYPES = {np.dtype(np.float32): 0, np.dtype(np.int32): 1, np.dtype(np.float64): 2}


def write_fixture(path, arrays):
    """arrays: an ordered dict (or list of pairs) name -> numpy array (float32, int32 or float64)."""
    items = list(arrays.items()) if hasattr(arrays, "items") else list(arrays)
    with open(path, "wb") as f:
        f.write(b"MGFX")
        f.write(struct.pack("<I", len(items)))
        for name, a in items:
            a = np.ascontiguousarray(a)
            if a.dtype not in _DTYPES:
                raise TypeError(f"{name}: dtype {a.dtype} is not float32, int32 or float64")
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<II", _DTYPES[a.dtype], a.ndim))
            f.write(struct.pack(f"<{a.ndim}i", *a.shape))
            f.write(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
