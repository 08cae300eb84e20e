#!/usr/bin/env python3
"""Checks tests/vectors/card-format.json against docs/card-format.md, outside Rust.

Written from the document alone (key diversification, MAD, record layouts v1 and v2, the MAC,
record selection and card states), with AES and AES-CMAC from the `cryptography` package. A
lock vendor can run it as is: `python3 check_vectors.py card-format.json`. Exits non-zero on
the first disagreement.
"""
import json
import sys

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

DOMAIN = b"encoder-bridge"
EPOCH_2020 = 1577836800


def aes_ecb(key, block):
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def an10922(key, m):
    """NXP AN10922 AES-128 diversification: CMAC-style over exactly 32 bytes `01 || M`."""
    def dbl(b):
        n = int.from_bytes(b, "big") << 1
        if n >> 128:
            n = (n & ((1 << 128) - 1)) ^ 0x87
        return n.to_bytes(16, "big")
    k1 = dbl(aes_ecb(key, bytes(16)))
    k2 = dbl(k1)
    data = b"\x01" + m
    if len(data) < 32:
        data = data + b"\x80" + bytes(31 - len(data))
        sub = k2
    else:
        sub = k1
    assert len(data) == 32, "M too long for AN10922's 32-byte input"
    last = bytes(a ^ b for a, b in zip(data[16:], sub))
    enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return (enc.update(data[:16] + last) + enc.finalize())[16:]


def aes_cmac(key, data):
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def crc8_mad(data):
    crc = 0xC7
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def card_keys(master, uid):
    div = lambda p: an10922(master, uid + bytes([p]) + DOMAIN)
    return {"key_a": div(1)[:6], "key_b": div(2)[:6], "mac_key": div(3)}


class Verdict(Exception):
    pass


def stored_len(desc):
    count = desc & 0x7F
    return (count + 1) // 2 if desc & 0x80 else count


def card_number(desc, raw):
    if not desc & 0x80:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Verdict("bad_card_number")
    count = desc & 0x7F
    nibbles = []
    for b in raw:
        nibbles += [b >> 4, b & 0x0F]
    digits, pad = nibbles[:count], nibbles[count:]
    if any(d > 9 for d in digits) or any(p != 0x0F for p in pad):
        raise Verdict("bad_card_number")
    return "".join(str(d) for d in digits)


def decode_record(rec, uid, keys, version):
    """Returns (format_version, sequence, credential dict) or raises Verdict(name)."""
    if len(rec) < 16:
        raise Verdict("bad_length")
    if all(b == 0 for b in rec[:16]):
        raise Verdict("empty")
    v = rec[0]
    if v == 1:
        hlen, fixed, maclen = 11, 24, 4
        kv, seq, desc, alen = rec[1], rec[2], rec[3], rec[4]
        counter = int.from_bytes(rec[5:7], "big")
        mac = rec[7:11]
    elif v == 2:
        hlen, fixed, maclen = 13, 22, 8
        kv, seq, desc, alen, counter = None, rec[1], rec[2], rec[3], rec[4]
        mac = rec[5:13]
    else:
        raise Verdict("unknown_format_version")
    if (desc & 0x7F) > 32 or desc == 0x80:
        raise Verdict("bad_length")
    blen = fixed + stored_len(desc) + alen
    if len(rec) < hlen + blen:
        raise Verdict("bad_length")
    body = rec[hlen:hlen + blen]
    ulen = bytes([len(uid)])
    if v == 1:
        expected = aes_cmac(keys["mac_key"], b"encoder-bridge/v1" + ulen + uid + rec[:7] + body)[:4]
    else:
        expected = aes_cmac(keys["mac_key"], b"encoder-bridge/v2" + bytes([version]) + ulen + uid + rec[:5] + body)[:8]
    if expected != mac:
        raise Verdict("mac_mismatch")
    if v == 1 and kv != version:
        raise Verdict("key_version_mismatch")
    cid = body[:16].hex()
    cid = "-".join([cid[0:8], cid[8:12], cid[12:16], cid[16:20], cid[20:32]])
    if v == 1:
        t = [int.from_bytes(body[16:20], "big"), int.from_bytes(body[20:24], "big")]
        times = [x or None for x in t]
        rest = body[24:]
    else:
        t = [int.from_bytes(body[16:19], "big"), int.from_bytes(body[19:22], "big")]
        times = [EPOCH_2020 + 60 * x if x else None for x in t]
        rest = body[22:]
    n = stored_len(desc)
    return v, seq, {
        "credential_id": cid,
        "card_number": card_number(desc, rest[:n]),
        "starts_at": times[0],
        "ends_at": times[1],
        "issue_counter": counter,
        "access_data": rest[n:].hex().upper(),
    }


def newer(a, b):
    return a != b and (a - b) % 256 < 128


def sites_of(vectors):
    out = {}
    for s in vectors["sites"]:
        out[s["name"]] = {k["version"]: bytes.fromhex(k["key"]) for k in s["master_keys"]}
    return out


def decode_image(img, uid, master_keys):
    """§5.5 on a dump: returns the expected-verdict dict of the vectors file."""
    t0 = img[48:64]
    gpb = t0[9]
    if not (gpb & 0x80 and gpb & 0x03 in (1, 2)):
        return {"state": "blank" if t0[6:9] == bytes.fromhex("FF0780") else "foreign"}
    mad = img[16:48]
    if crc8_mad(mad[1:]) != mad[0] or (mad[1] & 0x3F) > 0x0F:
        return {"state": "corrupt"}
    sectors = len(img) // 64 if len(img) <= 1024 else 40
    aids = [mad[2 + 2 * i] | mad[3 + 2 * i] << 8 for i in range(15)]
    ours = [i + 1 for i, a in enumerate(aids) if a == 0xF0EB and i + 1 < sectors]
    if not ours:
        used = any(a not in (0x0000, 0x0005) for a in aids)
        return {"state": "foreign" if used else "blank"}
    if len(ours) not in (2, 4):
        return {"state": "corrupt"}
    k = len(ours) // 2
    slots = []
    for group in (ours[:k], ours[k:]):
        slots.append(b"".join(img[s * 64 + b * 16: s * 64 + b * 16 + 16] for s in group for b in range(3)))
    key_b = img[ours[0] * 64 + 48 + 10: ours[0] * 64 + 64]
    candidates = {v: card_keys(m, uid) for v, m in master_keys.items()}
    if any(key_b):
        found = [v for v, kk in candidates.items() if kk["key_b"] == key_b]
        if not found:
            return {"state": "foreign"}
        version = found[0]
    else:
        version = next((v for v, kk in sorted(candidates.items(), reverse=True)
                        if any(_ok(s, uid, kk, v) for s in slots)), max(candidates))
    keys = candidates[version]
    results = []
    for s in slots:
        try:
            results.append(decode_record(s, uid, keys, version))
        except Verdict as v:
            results.append(str(v))
    valid = [(i, r) for i, r in enumerate(results) if isinstance(r, tuple)]
    if valid:
        # Total order: serial arithmetic on the sequence; neither newer -> slot A.
        best = valid[0]
        for cand in valid[1:]:
            if newer(cand[1][1], best[1][1]):
                best = cand
        slot, (fv, seq, cred) = best
        return {"state": "ours", "slot": "AB"[slot], "format_version": fv,
                "key_version": version, "sequence": seq, "credential": cred}
    if any(r not in ("empty", "unknown_format_version") for r in results):
        return {"state": "damaged"}
    if "unknown_format_version" in results:
        return {"state": "unknown_format_version"}
    return {"state": "ours_empty"}


def _ok(rec, uid, keys, version):
    try:
        decode_record(rec, uid, keys, version)
        return True
    except Verdict:
        return False


def main(path):
    vectors = json.load(open(path))
    # AN10922 itself, against NXP's published vector.
    nxp = an10922(bytes.fromhex("00112233445566778899AABBCCDDEEFF"),
                  bytes.fromhex("04782E21801D803042F54E585020416275"))
    assert nxp.hex().upper() == "A8DD63A3B89D54B37CA802473FDA9175", nxp.hex()
    sites = sites_of(vectors)
    counts = {}

    def count(name):
        counts[name] = counts.get(name, 0) + 1

    for k in vectors["keys"]:
        master = sites[k["site"]][k["key_version"]]
        uid = bytes.fromhex(k["uid"])
        assert bytes.fromhex(k["m_key_a"]) == uid + b"\x01" + DOMAIN, k
        ck = card_keys(master, uid)
        for field in ("key_a", "key_b", "mac_key"):
            assert ck[field].hex().upper() == k[field], (k["uid"], field)
        trailer = ck["key_a"] + bytes.fromhex("78778869") + ck["key_b"]
        assert trailer.hex().upper() == k["sector_trailer"], k
        directory = bytes.fromhex("A0A1A2A3A4A5787788C1") + ck["key_b"]
        assert directory.hex().upper() == k["directory_trailer"], k
        count("keys")
    for m in vectors["mad"]:
        b = bytes.fromhex(m["blocks"])
        assert crc8_mad(b[1:]) == b[0] and b[1] == m["info"], m["name"]
        aids = ["%04X" % (b[2 + 2 * i] | b[3 + 2 * i] << 8) for i in range(15)]
        assert aids == m["aids"], m["name"]
        count("mad")
    for r in vectors["records"]:
        uid = bytes.fromhex(r["uid"])
        keys = card_keys(sites[r["site"]][r["key_version"]], uid)
        fv, seq, cred = decode_record(bytes.fromhex(r["record"]), uid, keys, r["key_version"])
        assert (fv, seq) == (r["format_version"], r["sequence"]), r["name"]
        assert cred == r["decoded"], (r["name"], cred, r["decoded"])
        count("records")
    for r in vectors["negative_records"]:
        uid = bytes.fromhex(r["uid"])
        keys = card_keys(sites[r["site"]][r["key_version"]], uid)
        try:
            decode_record(bytes.fromhex(r["record"]), uid, keys, r["key_version"])
            raise AssertionError("%s decoded" % r["name"])
        except Verdict as v:
            assert str(v) == r["verdict"], (r["name"], str(v), r["verdict"])
        count("negative_records")
    for i in vectors["images"]:
        img = bytes.fromhex(i["image"])
        got = decode_image(img, bytes.fromhex(i["uid"]), sites[i["decode_with"]])
        assert got == i["expect"], (i["name"], got, i["expect"])
        count("images")
    print("ok: " + ", ".join("%d %s" % (n, k) for k, n in counts.items()))


if __name__ == "__main__":
    main(sys.argv[1])
