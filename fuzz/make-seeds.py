#!/usr/bin/env python3
"""Writes the checked-in seed corpus (fuzz/seeds/<target>/) from the wire vectors.

decode_request / decode_response: 2-byte little-endian MID, then a golden payload.
socket_stream: a knobs byte (FDs wanted, payload limit), then the framed message twice.
roundtrip: the golden payloads themselves, as raw material for `arbitrary`.
channel_requests: a knobs byte (PWrite split after 20 bytes), then the request as the
client writes it into a channel's window (data length, byte count, header and payload),
twice.
Run from the repository root; the output is deterministic.
"""
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
vectors = json.loads((root / "protocol/tests/data/wire-vectors.json").read_text())["vectors"]
seeds = root / "fuzz/seeds"


def channel_request(mid, payload):
    """The knobs byte, then the request as one record of the window, twice."""
    data = mid.to_bytes(2, "little") + b"\0\0" + payload
    record = (len(data)).to_bytes(4, "little") + len(data).to_bytes(2, "little") + data
    return bytes([20]) + record * 2


for v in vectors:
    name = f'{v["mid"]:02d}-{v["name"]}-{v["kind"]}'
    mid = v["mid"].to_bytes(2, "little")
    header = bytes.fromhex(v["header"])
    payload = bytes.fromhex(v["payload"])
    target = "decode_request" if v["kind"] == "request" else "decode_response"
    for directory, data in [
        (target, mid + payload),
        ("socket_stream", bytes([0b1101]) + (header + payload) * 2),
        ("roundtrip", payload),
    ] + ([("channel_requests", channel_request(v["mid"], payload))] if v["kind"] == "request" else []):
        path = seeds / directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
