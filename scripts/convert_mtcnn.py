#!/usr/bin/env python3
"""Convert facenet-pytorch's MTCNN weights (pnet.pt, rnet.pt, onet.pt) into one
safetensors file, assets/models/mtcnn.safetensors, without torch.

One-off tool, not used at run time by the crate. Needs only numpy.

    python3 scripts/convert_mtcnn.py                    # pip-downloads the wheel
    python3 scripts/convert_mtcnn.py --wheel facenet_pytorch-2.6.0-py3-none-any.whl
    python3 scripts/convert_mtcnn.py --list             # also print names/shapes

The .pt files use torch's legacy (non-zip) serialization:
    pickle(magic number) pickle(protocol version) pickle(sys info)
    pickle(state dict; tensors reference storages via persistent ids)
    pickle(list of storage keys)
    for each key: int64 LE element count, then the raw little-endian data.
They are parsed here with a restricted pickle.Unpickler.

Output tensor names are the state-dict names prefixed with "pnet.", "rnet.",
"onet." (e.g. pnet.conv1.weight, onet.dense6_3.bias); every tensor is F32.
"""

import argparse
import glob
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
NETS = ("pnet", "rnet", "onet")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "assets", "models", "mtcnn.safetensors")

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _StorageRef:
    """A storage referenced by a persistent id; filled in after the main pickle."""

    def __init__(self, key, storage_type, numel):
        self.key = key
        self.dtype = storage_type.dtype
        self.numel = numel
        self.data = None


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def materialize(self):
        data = self.storage.data
        if data is None:
            raise ValueError("storage %s was never read" % self.storage.key)
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *rest):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *rest):
    return data


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError("refusing to load %s.%s" % (module, name))

    def persistent_load(self, pid):
        # ('storage', storage_type, root_key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError("unexpected persistent id %r" % (pid,))
        _, storage_type, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _StorageRef(key, storage_type, numel)
        return self.storages[key]


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError("refusing to load %s.%s" % (module, name))


def load_legacy_state_dict(raw):
    """Parse a legacy-format torch .pt (bytes) into {name: np.ndarray}."""
    f = io.BytesIO(raw)
    magic = _PlainUnpickler(f).load()
    if magic != MAGIC_NUMBER:
        raise ValueError("not a legacy torch file (magic %r)" % (magic,))
    protocol = _PlainUnpickler(f).load()
    if protocol != PROTOCOL_VERSION:
        raise ValueError("unsupported protocol version %r" % (protocol,))
    sys_info = _PlainUnpickler(f).load()
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian files are not supported")
    storages = {}
    state = _TorchUnpickler(f, storages).load()
    keys = _PlainUnpickler(f).load()
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        ref = storages[key]
        nbytes = numel * ref.dtype.itemsize
        buf = f.read(nbytes)
        if len(buf) != nbytes:
            raise ValueError("truncated storage %s" % key)
        ref.data = np.frombuffer(buf, dtype=ref.dtype)
    if f.read(1):
        raise ValueError("trailing bytes after the last storage")
    return {name: t.materialize() for name, t in state.items()}


def write_safetensors(path, tensors, metadata=None):
    """tensors: ordered {name: np.float32 array}; writes a safetensors file."""
    header = {}
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        data = arr.tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(hdr)))
        out.write(hdr)
        for b in blobs:
            out.write(b)


def find_or_download_wheel(tmpdir, version):
    spec = "facenet-pytorch" + ("==" + version if version else "")
    subprocess.check_call(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
         "-d", tmpdir, spec]
    )
    wheels = glob.glob(os.path.join(tmpdir, "facenet_pytorch-*.whl"))
    if len(wheels) != 1:
        raise SystemExit("expected one facenet_pytorch wheel in %s, got %r" % (tmpdir, wheels))
    return wheels[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", help="facenet_pytorch-*.whl (default: pip download it)")
    ap.add_argument("--version", default="2.6.0", help="facenet-pytorch version to download")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--list", action="store_true", help="print tensor names and shapes")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        wheel = args.wheel or find_or_download_wheel(tmpdir, args.version)
        tensors = {}
        with zipfile.ZipFile(wheel) as z:
            for net in NETS:
                sd = load_legacy_state_dict(z.read("facenet_pytorch/data/%s.pt" % net))
                for name, arr in sd.items():
                    if arr.dtype != np.float32:
                        raise ValueError("%s.%s is %s, expected float32" % (net, name, arr.dtype))
                    if not np.all(np.isfinite(arr)):
                        raise ValueError("%s.%s has non-finite values" % (net, name))
                    tensors["%s.%s" % (net, name)] = arr
        write_safetensors(
            args.out,
            tensors,
            metadata={"source": "facenet-pytorch %s (PyPI wheel %s), MIT" % (
                os.path.basename(wheel).split("-")[1], os.path.basename(wheel)),
                      "format": "pt"},
        )
    total = sum(a.size for a in tensors.values())
    print("wrote %s: %d tensors, %d parameters" % (args.out, len(tensors), total))
    if args.list:
        for name, arr in tensors.items():
            print("%-22s %s" % (name, list(arr.shape)))


if __name__ == "__main__":
    main()
