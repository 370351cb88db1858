"""Damaging checkpoints in tests as storage would: bytes changed inside the tensor data, the file still loads."""
from __future__ import annotations

import zipfile
from pathlib import Path


def flip_tensor_bytes(checkpoint: Path, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of the largest tensor record of a torch zip checkpoint (stored, not
    compressed): ``torch.load`` still reads it, the weights are silently wrong."""
    with zipfile.ZipFile(checkpoint) as archive:
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    assert record.compress_type == zipfile.ZIP_STORED and record.file_size >= 2 * count, record
    data = bytearray(checkpoint.read_bytes())
    header = record.header_offset
    name_length = int.from_bytes(data[header + 26: header + 28], "little")
    extra_length = int.from_bytes(data[header + 28: header + 30], "little")
    start = header + 30 + name_length + extra_length + record.file_size // 2 - count // 2
    data[start: start + count] = bytes(255 - b for b in data[start: start + count])
    checkpoint.write_bytes(bytes(data))
