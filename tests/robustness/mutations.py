"""Byte mutations shared by the fuzz tests: flip, truncate, insert or delete at a position."""

from __future__ import annotations

from hypothesis import strategies as st

# Where: mostly anywhere, often the first 64 bytes (headers decide sizes, modes and chunk lengths).
positions = st.one_of(st.integers(0, 63), st.integers(0, 1 << 16))
mutation = st.one_of(
    st.tuples(st.just("flip"), positions, st.integers(1, 255)),
    st.tuples(st.just("truncate"), positions, st.just(0)),
    st.tuples(st.just("insert"), positions, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), positions, st.integers(1, 32)),
)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    data = bytearray(data)
    for kind, position, value in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= value
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = value
        elif kind == "delete":
            del data[at : at + value]
    return bytes(data)
