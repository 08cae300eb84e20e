#!/usr/bin/python3
"""An independent reader-side DESFire EV2 client, written with pyscard and Python's
`cryptography` from docs/reference/desfire-card.md, run through a real pcscd against the
virtual card (tests/tests/pcsc_desfire_pyscard.rs). Nothing here shares code with the card.

It creates an AES application (free create on a factory card), authenticates with
AuthenticateEV2First, creates a full-mode backup file (MAC mode), writes it (full mode),
commits, reads it back (full mode) and asks GetCardUID (full answer); then a wrong MAC must
give 91 1E and end the session. Then the same with EV1 secure messaging in a second
application: AuthenticateAES, the IV chained through every CMAC and cryptogram, CRC32.

usage: desfire_ev2.py READER  -> one JSON line with what it saw
"""
import json
import os
import sys
import zlib

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from smartcard.System import readers

AID = [0x33, 0x22, 0x11]  # 0x112233
KEY = bytes(16)


def aes_cbc(key, iv, data, encrypt):
    c = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(data) + op.finalize()


def aes_cmac(key, data):
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def cmac_iv(key, iv, msg):
    """AES-CMAC whose CBC chain starts from `iv` (EV1), for a non-empty message: the CMAC of
    D(iv) ‖ msg, whose first block enciphers to iv."""
    first = Cipher(algorithms.AES(key), modes.ECB()).decryptor().update(iv)
    return aes_cmac(key, first + msg)


def crc32(data):
    """DESFire's CRC32 (no final XOR): the complement of zlib's."""
    return (zlib.crc32(data) ^ 0xFFFFFFFF).to_bytes(4, "little")


def rotl(b):
    return b[1:] + b[:1]


class Card:
    def __init__(self, connection):
        self.c = connection

    def raw(self, ins, data=b""):
        apdu = [0x90, ins, 0, 0] + ([len(data)] + list(data) if data else []) + [0]
        out, sw1, sw2 = self.c.transmit(apdu)
        if sw1 != 0x91:
            raise RuntimeError("not a DESFire answer: %02X%02X" % (sw1, sw2))
        return bytes(out), sw2

    def chained(self, ins, data=b""):
        """A logical command in frames of at most 59 data bytes (AF continuations) and its
        logical answer, gathered over AF frames."""
        parts = [data[i:i + 59] for i in range(0, len(data), 59)] or [b""]
        out, sw = self.raw(ins, parts[0])
        for part in parts[1:]:
            if sw != 0xAF:
                return out, sw
            out, sw = self.raw(0xAF, part)
        answer = out
        while sw == 0xAF:
            out, sw = self.raw(0xAF)
            answer += out
        return answer, sw


class Ev2:
    def __init__(self, card, enc, mac, ti):
        self.card, self.enc, self.mac, self.ti, self.ctr = card, enc, mac, ti, 0

    def mact(self, head, ctr, data):
        full = aes_cmac(self.mac, bytes([head]) + ctr.to_bytes(2, "little") + self.ti + data)
        return full[1::2]

    def iv(self, tag, ctr):
        block = bytes(tag) + self.ti + ctr.to_bytes(2, "little") + bytes(8)
        return aes_cbc(self.enc, bytes(16), block, True)

    def send(self, ins, header=b"", plain=None, full_answer=False, tamper=False):
        body = header
        if plain is not None:
            padded = plain + b"\x80" + bytes((15 - len(plain)) % 16)
            body += aes_cbc(self.enc, self.iv([0xA5, 0x5A], self.ctr), padded, True)
        mac = self.mact(ins, self.ctr, body)
        if tamper:
            mac = bytes([mac[0] ^ 1]) + mac[1:]
        out, sw = self.card.chained(ins, body + mac)
        if sw != 0:
            return None, sw
        self.ctr += 1
        data, got = out[:-8], out[-8:]
        if got != self.mact(0x00, self.ctr, data):
            raise RuntimeError("answer MAC wrong for %02X" % ins)
        if full_answer and data:
            p = aes_cbc(self.enc, self.iv([0x5A, 0xA5], self.ctr), data, False)
            data = p[: p.rindex(b"\x80")]
        return data, sw


def main():
    reader = next(r for r in readers() if str(r) == sys.argv[1])
    connection = reader.createConnection()
    connection.connect()
    seen = {"atr": bytes(connection.getATR()).hex()}
    uid, sw1, sw2 = connection.transmit([0xFF, 0xCA, 0x00, 0x00, 0x00])
    seen["uid"] = bytes(uid).hex()
    card = Card(connection)
    version = b""
    out, sw = card.raw(0x60)
    while True:
        version += out
        if sw != 0xAF:
            break
        out, sw = card.raw(0xAF)
    seen["version"] = version.hex()
    seen["create_app"] = card.raw(0xCA, bytes(AID + [0x0F, 0x82]))[1]
    seen["select"] = card.raw(0x5A, bytes(AID))[1]
    # AuthenticateEV2First with key 0.
    ek, sw = card.raw(0x71, b"\x00\x00")
    rnd_b = aes_cbc(KEY, bytes(16), ek, False)
    rnd_a = os.urandom(16)
    answer, sw = card.raw(0xAF, aes_cbc(KEY, bytes(16), rnd_a + rotl(rnd_b), True))
    plain = aes_cbc(KEY, bytes(16), answer, False)
    seen["auth"] = sw
    seen["rnd_a_ok"] = plain[4:20] == rotl(rnd_a)
    ti = plain[:4]
    sv1 = bytes([0xA5, 0x5A, 0, 1, 0, 0x80]) + rnd_a[0:2] + bytes(
        a ^ b for a, b in zip(rnd_a[2:8], rnd_b[0:6])) + rnd_b[6:16] + rnd_a[8:16]
    sv2 = bytes([0x5A, 0xA5]) + sv1[2:]
    s = Ev2(card, aes_cmac(KEY, sv1), aes_cmac(KEY, sv2), ti)
    # Backup file 1, full mode, every right key 0, 32 bytes.
    seen["create_file"] = s.send(0xCB, bytes([1, 0x03, 0x00, 0x00, 32, 0, 0]))[1]
    secret = b"encoder-bridge DESFire"
    header = bytes([1, 0, 0, 0, len(secret), 0, 0])
    seen["write"] = s.send(0x3D, header, secret)[1]
    seen["commit"] = s.send(0xC7)[1]
    data, sw = s.send(0xBD, bytes([1, 0, 0, 0, len(secret), 0, 0]), full_answer=True)
    seen["read"] = (data or b"").decode(errors="replace")
    # 100 bytes in full mode: the command (7 + 112 + 8 bytes) and the answer (112 + 8) both
    # travel in several frames, the MAC covering the whole of each.
    seen["create_long"] = s.send(0xCD, bytes([2, 0x03, 0x00, 0x00, 128, 0, 0]))[1]
    long = bytes(range(100))
    seen["write_long"] = s.send(0x3D, bytes([2, 0, 0, 0, 100, 0, 0]), long)[1]
    data, sw = s.send(0xBD, bytes([2, 0, 0, 0, 100, 0, 0]), full_answer=True)
    seen["read_long_ok"] = data == long
    data, sw = s.send(0x51, full_answer=True)
    seen["card_uid"] = (data or b"").hex()
    seen["ctr"] = s.ctr
    # A wrong MAC: integrity error, and the session is over.
    seen["tampered"] = s.send(0x6F, tamper=True)[1]
    seen["after"] = card.raw(0x51)[1]  # GetCardUID needs an authentication
    # EV1: a second AES application, AuthenticateAES, one IV through everything.
    aid2 = bytes([0x44, 0x22, 0x11])
    card.raw(0x5A, bytes(3))
    seen["ev1_create_app"] = card.raw(0xCA, aid2 + bytes([0x0F, 0x81]))[1]
    card.raw(0x5A, aid2)
    ek, sw = card.raw(0xAA, b"\x00")
    rnd_b = aes_cbc(KEY, bytes(16), ek, False)
    rnd_a = os.urandom(16)
    sent = aes_cbc(KEY, ek, rnd_a + rotl(rnd_b), True)
    answer, sw = card.raw(0xAF, sent)
    seen["ev1_auth"] = sw
    seen["ev1_rnd_a_ok"] = aes_cbc(KEY, sent[-16:], answer, False) == rotl(rnd_a)
    key = rnd_a[0:4] + rnd_b[0:4] + rnd_a[12:16] + rnd_b[12:16]
    iv = bytes(16)

    def plain(ins, data=b""):
        nonlocal iv
        iv = cmac_iv(key, iv, bytes([ins]) + data)
        out, sw = card.raw(ins, data)
        if sw == 0:
            mac = cmac_iv(key, iv, out[:-8] + b"\x00")
            if mac[:8] != out[-8:]:
                raise RuntimeError("EV1 answer CMAC wrong for %02X" % ins)
            iv, out = mac, out[:-8]
        return out, sw

    seen["ev1_create_file"] = plain(0xCD, bytes([2, 0x03, 0x00, 0x00, 40, 0, 0]))[1]
    secret2 = b"the IV runs through it all"
    header = bytes([2, 0, 0, 0, len(secret2), 0, 0])
    body = secret2 + crc32(bytes([0x3D]) + header + secret2)
    body += bytes(-len(body) % 16)
    ct = aes_cbc(key, iv, body, True)
    iv = ct[-16:]
    out, sw = card.raw(0x3D, header + ct)
    seen["ev1_write"] = sw
    if sw == 0:
        mac = cmac_iv(key, iv, b"\x00")
        seen["ev1_write_mac_ok"] = mac[:8] == out
        iv = mac
    header = bytes([2, 0, 0, 0, len(secret2), 0, 0])
    iv = cmac_iv(key, iv, bytes([0xBD]) + header)
    out, sw = card.raw(0xBD, header)
    p = aes_cbc(key, iv, out, False)
    iv = out[-16:]
    n = len(secret2)
    seen["ev1_read"] = p[:n].decode(errors="replace")
    seen["ev1_read_crc_ok"] = p[n:n + 4] == crc32(p[:n] + b"\x00")
    seen["ev1_key_version"] = plain(0x64, b"\x00")[0].hex()
    print(json.dumps(seen))


main()
