#!/usr/bin/python3
"""The straightforward alternative to encoder-bridge a user might write with pyscard: for
each job, open a connection to the reader, load the key, authenticate the sector, write the
blocks, read them back, close. The bridge benchmark (tests/benches/bridge.rs) runs it through
the same private pcscd (PCSCLITE_CSOCK_NAME) next to the bridge's own job.

usage: pyscard_encode.py READER JOBS BLOCKS  -> one JSON line: per-job wall times in ms
"""
import json
import sys
import time

from smartcard.System import readers

KEY = [0xFF] * 6  # factory key A of a blank card
FIRST_BLOCK = 4   # sector 1's data blocks


def job(reader, blocks, payload):
    connection = reader.createConnection()
    connection.connect()
    try:
        def tx(apdu):
            data, sw1, sw2 = connection.transmit(apdu)
            if (sw1, sw2) != (0x90, 0x00):
                raise RuntimeError("%s -> %02X%02X" % (bytes(apdu[:4]).hex(), sw1, sw2))
            return data

        tx([0xFF, 0x82, 0x00, 0x00, 0x06] + KEY)
        sector_blocks = [FIRST_BLOCK + i + i // 3 for i in range(blocks)]  # skip trailers
        authenticated = None
        for block in sector_blocks:
            if authenticated != block // 4:
                tx([0xFF, 0x86, 0x00, 0x00, 0x05, 0x01, 0x00, block, 0x60, 0x00])
                authenticated = block // 4
            tx([0xFF, 0xD6, 0x00, block, 0x10] + payload)
        for block in sector_blocks:
            if tx([0xFF, 0xB0, 0x00, block, 0x10]) != payload:
                raise RuntimeError("read-back mismatch at block %d" % block)
    finally:
        connection.disconnect()


def main():
    name, jobs, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    reader = next((r for r in readers() if str(r) == name), None)
    if reader is None:
        sys.exit("reader %r not found" % name)
    times = []
    for n in range(jobs):
        payload = [(n + i) & 0xFF for i in range(16)]
        start = time.perf_counter()
        job(reader, blocks, payload)
        times.append((time.perf_counter() - start) * 1000.0)
    print(json.dumps({"reader": name, "jobs": jobs, "blocks": blocks, "ms": times}))


if __name__ == "__main__":
    main()
