#!/usr/bin/env python3
"""Writes the checked-in seed corpus (fuzz/seeds/<target>/) from the wire vectors.

decode_request / decode_response: 2-byte little-endian MID, then a golden payload.
socket_stream: a knobs byte (FDs wanted, payload limit), then the framed message twice.
roundtrip: the golden payloads themselves, as raw material for `arbitrary`.
Run from the repository root; the output is deterministic.
"""
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
vectors = json.loads((root / "protocol/tests/data/wire-vectors.json").read_text())["vectors"]
seeds = root / "fuzz/seeds"
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
    ]:
        path = seeds / directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
