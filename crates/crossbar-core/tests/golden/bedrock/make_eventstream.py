#!/usr/bin/env python3
"""Writes the binary ConverseStream fixtures from their readable sources (*.frames.json).

An encoder independent of the Rust code under test (aws-smithy-eventstream): the
application/vnd.amazon.eventstream layout of providers.md §5.6, with zlib's CRC-32.
Each source frame is [message_type, name, payload]; headers are the type-7 strings Bedrock
sends, in its order. Run from this directory: python3 make_eventstream.py
"""
import glob
import json
import struct
import zlib


def header(name, value):
    name, value = name.encode(), value.encode()
    return bytes([len(name)]) + name + bytes([7]) + struct.pack(">H", len(value)) + value


def frame(message_type, name, payload):
    kind = {"event": ":event-type", "exception": ":exception-type"}[message_type]
    headers = b"".join(
        header(n, v)
        for n, v in [(kind, name), (":content-type", "application/json"), (":message-type", message_type)]
    )
    body = json.dumps(payload, separators=(",", ":")).encode()
    total = 16 + len(headers) + len(body)
    prelude = struct.pack(">II", total, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


for source in sorted(glob.glob("*.frames.json")):
    frames = json.load(open(source))
    with open(source.replace(".frames.json", ".eventstream"), "wb") as out:
        for message_type, name, payload in frames:
            out.write(frame(message_type, name, payload))
