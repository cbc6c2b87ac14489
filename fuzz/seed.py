#!/usr/bin/env python3
"""Fills corpus/<target>/ with seeds from real inputs, at run time (corpus/ is git-ignored).

Sources: our own SDK captures (tests/fixtures/clients/) and, when present, Pyroscope's AGPL test
profiles in ../shared/fixtures/pyroscope (read here, never copied into the repository).
Each target's input layout is described in its fuzz_targets/<name>.rs; selector bytes are
prepended where a target reads one.
"""
import gzip
import hashlib
import json
import os
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent
MAIN = ROOT.parent
CLIENTS = MAIN / "tests" / "fixtures" / "clients"
SHARED = MAIN.parent / "shared" / "fixtures" / "pyroscope"
CORPUS = ROOT / "corpus"


def put(target, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest())).write_bytes(data)


def maybe_gunzip(data):
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except Exception:
            return data
    return data


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def node(name, value, children):
    return uvarint(len(name)) + name + uvarint(value) + uvarint(children)


def client_seeds():
    for meta in sorted(CLIENTS.glob("*/req*.json")):
        req = json.loads(meta.read_text())
        body = (meta.parent / req["body_file"]).read_bytes()
        headers = {k.lower(): v for k, v in req.get("headers", [])}
        if headers.get("content-encoding") == "gzip":
            body = maybe_gunzip(body)
        params = dict(req.get("query_params", []))
        ct = headers.get("content-type", "")
        if req["path"].startswith("/push.v1"):
            put("connect", bytes([0]) + body)
            continue
        fmt = params.get("format", "")
        if fmt == "pprof":
            put("pprof", body)
            put("pprof", maybe_gunzip(body))
        elif "multipart/form-data" in ct:
            m = re.search(r"boundary=([^;]+)", ct)
            if m:
                put("ingest_multipart", bytes([0]) + body.replace(m.group(1).encode(), b"b"))
        else:
            put("folded", bytes([1 if fmt == "folded" else 0]) + body)
            put("folded", bytes([2]) + body)


def shared_seeds():
    if not SHARED.is_dir():
        print(f"notice: {SHARED} absent, AGPL seeds skipped")
        return
    for f in sorted(SHARED.iterdir()):
        n = f.name
        data = f.read_bytes()
        if ".jfr" in n:
            put("jfr", maybe_gunzip(data))
        elif "speedscope" in n:
            put("speedscope", data)
        elif n.endswith(".pb.bin"):
            put("otlp", data)
        elif n.startswith(("og__convert__pprof", "og__convert__testdata", "pprof__", "phlaredb__")) and not n.endswith(".json"):
            if len(data) <= 64 << 10:
                put("pprof", data)
            raw = maybe_gunzip(data)
            if len(raw) <= 128 << 10:
                put("pprof", raw)


def synthetic_seeds():
    # tree: a virtual root with children a (a;b 3, a;c 2) and d 1
    tree = node(b"", 0, 2) + node(b"a", 0, 2) + node(b"b", 3, 0) + node(b"c", 2, 0) + node(b"d", 1, 0)
    put("tree", tree)
    # trie: fragments "a;" -> "b" (5), "c" (7)
    trie = node(b"", 0, 1) + node(b"a;", 0, 2) + node(b"b", 5, 0) + node(b"c", 7, 0)
    put("trie", trie)
    put("folded", b"\x01main;foo;bar 10\nmain;baz 3\n")
    put("folded", b"\x02main;foo\nmain;foo\nmain\n")
    q = {
        5: b'{"profileTypeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","labelSelector":"{service_name=\\"a\\"}","start":"1","end":"2","maxNodes":"100"}',
        8: b'{"profileTypeID":"x","labelSelector":"{}","start":1,"end":2,"groupBy":["a"],"step":15.5,"aggregation":"AGGREGATION_TYPE_SUM"}',
        2: b'{"name":"service_name","matchers":["{}"],"start":"0","end":"1"}',
        0: b'{"series":[{"labels":[{"name":"a","value":"b"}],"samples":[{"rawProfile":"AAEC","ID":"x"}]}]}',
        10: b'{"left":{"profileTypeID":"a","labelSelector":"{}","start":0,"end":1},"right":{}}',
    }
    for sel, body in q.items():
        put("connect", bytes([sel]) + body)
    put("connect", bytes([14]) + gzip.compress(b"hello" * 100))
    put("connect", bytes([16]) + gzip.compress(q[5][0:] if isinstance(q[5], bytes) else b""))


if __name__ == "__main__":
    client_seeds()
    shared_seeds()
    synthetic_seeds()
    for d in sorted(CORPUS.iterdir()):
        print(d.name, len(list(d.iterdir())))
