"""PLY point clouds with normals, read from untrusted bytes (ASCII and binary, either endianness)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.platform.errors import NotAPointCloud, PayloadTooLarge

MAX_HEADER_BYTES = 65536
REQUIRED = ("x", "y", "z", "nx", "ny", "nz")
SCALAR_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
#: The byte order of each binary format, in numpy's notation.
BYTE_ORDERS = {"binary_little_endian": "<", "binary_big_endian": ">"}
FORMATS = ("ascii", *BYTE_ORDERS)


@dataclass(frozen=True)
class PlyElement:
    name: str
    count: int
    properties: tuple[tuple[str, str], ...]  # (name, numpy scalar code); lists are not allowed in vertices
    has_lists: bool


@dataclass(frozen=True)
class PlyHeader:
    format: str
    elements: tuple[PlyElement, ...]
    data_offset: int  # first byte after end_header

    @property
    def vertex(self) -> PlyElement:
        return next(element for element in self.elements if element.name == "vertex")


def parse_header(data: bytes, max_points: int) -> PlyHeader:
    """Check the header: a PLY file with a vertex element carrying x y z nx ny nz."""
    if not data:
        raise NotAPointCloud("The file is empty")
    if not data.startswith(b"ply"):
        raise NotAPointCloud(f"The file is not a PLY point cloud (it must start with 'ply'); first bytes: {data[:8].hex()}")
    end = data.find(b"end_header", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise NotAPointCloud(f"PLY header has no end_header within its first {MAX_HEADER_BYTES} bytes")
    newline = data.find(b"\n", end)
    data_offset = len(data) if newline < 0 else newline + 1
    file_format, elements = _header_lines(data[:end].decode("ascii", errors="replace").splitlines())
    header = PlyHeader(file_format, tuple(elements), data_offset)
    vertex = next((element for element in elements if element.name == "vertex"), None)
    if vertex is None or vertex.count == 0:
        raise NotAPointCloud("The PLY file has no points (element vertex is missing or empty)")
    names = {name for name, _ in vertex.properties}
    if len(names) != len(vertex.properties):
        raise NotAPointCloud("PLY vertex element names a property twice")
    missing = [name for name in REQUIRED if name not in names]
    if any(name in missing for name in ("nx", "ny", "nz")):
        raise NotAPointCloud(
            "The PLY vertices have no normals (nx, ny, nz); surface matching (PPF) needs them. "
            "Compute normals first, e.g. cv2.ppf_match_3d.computeNormalsPC3d or Open3D estimate_normals"
        )
    if missing:
        raise NotAPointCloud(f"The PLY vertices lack coordinates: {', '.join(missing)}")
    if vertex.has_lists:
        raise NotAPointCloud("PLY vertex elements with list properties are not supported")
    if vertex.count > max_points:
        raise PayloadTooLarge(f"The PLY file has {vertex.count} points; the limit is {max_points}")
    return header


def _header_lines(lines: list[str]) -> tuple[str, list[PlyElement]]:
    """The format and the elements the header's lines declare (after the ``ply`` line)."""
    file_format, elements = None, []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            if words[1] not in FORMATS:
                raise NotAPointCloud(f"PLY format '{words[1]}' is not supported; use ascii or binary")
            file_format = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(PlyElement(words[1], int(words[2]), (), False))
        elif words[0] == "property" and elements and len(words) >= 3:
            elements[-1] = _with_property(elements[-1], words, number)
        else:
            raise NotAPointCloud(f"PLY header line {number} is not valid: {line.strip()[:80]!r}")
    if file_format is None:
        raise NotAPointCloud("PLY header has no format line")
    return file_format, elements


def _with_property(element: PlyElement, words: list[str], number: int) -> PlyElement:
    """``element`` with the property that header line ``number`` declares."""
    if words[1] == "list":
        return PlyElement(element.name, element.count, element.properties, True)
    if words[1] in SCALAR_TYPES:
        return PlyElement(element.name, element.count, (*element.properties, (words[2], SCALAR_TYPES[words[1]])), element.has_lists)
    raise NotAPointCloud(f"PLY header line {number}: unknown property type '{words[1]}'")


def _vertex_table(data: bytes, header: PlyHeader) -> np.ndarray:
    """The vertex rows as a float64 array with one column per vertex property."""
    vertex = header.vertex
    before = header.elements[: header.elements.index(vertex)]
    if header.format == "ascii":
        rows_before = sum(element.count for element in before)
        lines = data[header.data_offset :].splitlines()[rows_before : rows_before + vertex.count]
        tokens = b" ".join(lines).split()
        expected = vertex.count * len(vertex.properties)
        if len(lines) < vertex.count or len(tokens) != expected:
            raise NotAPointCloud(
                f"PLY data does not hold {vertex.count} vertices of {len(vertex.properties)} values each "
                f"(found {len(lines)} lines, {len(tokens)} values): the file is truncated or malformed"
            )
        try:
            return np.array(tokens, dtype=np.float64).reshape(vertex.count, len(vertex.properties))
        except ValueError as error:
            raise NotAPointCloud(f"PLY vertex data holds a value that is not a number: {error}") from error
    if any(element.has_lists for element in before):
        raise NotAPointCloud("Binary PLY files must list the vertex element before elements with lists")
    endian = BYTE_ORDERS[header.format]
    dtype = np.dtype([(name, endian + code) for name, code in vertex.properties])
    offset = header.data_offset + sum(
        element.count * np.dtype([(n, endian + c) for n, c in element.properties]).itemsize for element in before
    )
    available = max(0, len(data) - offset) // dtype.itemsize
    if available < vertex.count:
        raise NotAPointCloud(f"PLY data is truncated: the header declares {vertex.count} vertices, the file holds {available}")
    table = np.frombuffer(data, dtype=dtype, count=vertex.count, offset=offset)
    return np.stack([table[name].astype(np.float64) for name, _ in vertex.properties], axis=1)


#: OpenCV computes in float32: a coordinate's square (distances, normals) must fit in it too.
MAX_COORDINATE = 1e18


def parse_point_cloud(data: bytes, max_points: int) -> np.ndarray:
    """An (N, 6) float32 array ``x y z nx ny nz`` with unit normals, or a NotAPointCloud error."""
    header = parse_header(data, max_points)
    table = _vertex_table(data, header)
    columns = [name for name, _ in header.vertex.properties]
    cloud = table[:, [columns.index(name) for name in REQUIRED]].astype(np.float64)
    limit = MAX_COORDINATE
    bad = ~(np.isfinite(cloud) & (np.abs(cloud) <= limit)).all(axis=1)
    if bad.any():
        raise NotAPointCloud(
            f"{int(bad.sum())} of {len(cloud)} PLY vertices hold NaN, infinite or out-of-range values (beyond "
            f"±{limit:.0e}; first at vertex {int(np.argmax(bad))}); remove them first"
        )
    lengths = np.linalg.norm(cloud[:, 3:], axis=1)
    if (lengths == 0).any():
        raise NotAPointCloud(
            f"{int((lengths == 0).sum())} of {len(cloud)} PLY vertices have a zero normal (first at vertex "
            f"{int(np.argmax(lengths == 0))}); every point needs a direction"
        )
    cloud[:, 3:] /= lengths[:, None]
    return cloud.astype(np.float32)
