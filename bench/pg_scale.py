#!/usr/bin/env python3
"""A gallery of a million templates in PostgreSQL against the same in SQLite, served by `facekit serve`.

  bench/pg_scale.py [--people 200000 --per 5] [--probes 1000] [--copy] [--json OUT]

For each store: the bulk load (`facekit gallery import` of a synthetic export, bench/synthetic_export.py; binary
COPY into PostgreSQL, transactions into SQLite), a server's start to /readyz with nothing cached (models load and
the index is built from the store), on a new machine (no local cache: a database gallery keeps a copy of the
index, a file gallery does not) and with its local cache, identify latency on the warm server
(POST /api/v1/recognition/embeddings/recognize, one probe per request, client round trip), and the server's
resident memory. --copy also times `facekit gallery copy` from the SQLite file into a second database and its
verification. The PostgreSQL server is a throw-away one (tests/pg/pg_cluster.sh) with fsync on.
"""
import argparse
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "tests", "server"))
from pg_servers import Server, percentile as pct, start_cluster  # noqa: E402

CLUSTER = os.path.join(root, "tests", "pg", "pg_cluster.sh")


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def timed(cmd):
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(" ".join(cmd) + ": " + r.stderr[-2000:])
    return time.time() - t0, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--facekit", default=os.path.join(root, "build", "facekit"))
    ap.add_argument("--people", type=int, default=200000)
    ap.add_argument("--per", type=int, default=5)
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--copy", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the server (one server, all cores)")
    ap.add_argument("--json")
    ap.add_argument("--work", help="working folder (default: a new temporary one, removed after)")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="facekit-pgscale-")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    out = {"people": a.people, "templates": a.people * a.per, "cores": os.cpu_count()}
    export = os.path.join(work, "synthetic.jsonl")
    if not os.path.exists(export):
        subprocess.run([sys.executable, os.path.join(root, "bench", "synthetic_export.py"), export, "--people",
                        str(a.people), "--per", str(a.per)], check=True)
    # Probes: a template of a random enrolled person, moved a little.
    rng = random.Random(3)
    wanted = set(rng.sample(range(a.people), a.probes))
    probes = []
    with open(export) as f:
        next(f)
        for i, line in enumerate(f):
            if i in wanted:
                e = np.frombuffer(base64.b64decode(json.loads(line)["templates"][0]["embedding"]), "<f4").copy()
                e += np.random.default_rng(i).standard_normal(e.size).astype(np.float32) * 0.02
                probes.append((f"syn{i}", (e / np.linalg.norm(e)).tolist()))
    pg_dir = os.path.join(work, "pg")
    url = start_cluster(CLUSTER, pg_dir, fsync=True)
    if url is None:
        print("PostgreSQL is not installed")
        return 2
    stores = {"sqlite": os.path.join(work, "gallery.db"), "postgresql": url}
    try:
        for store, loc in stores.items():
            s, _ = timed([a.facekit, "gallery", "import", export, "--gallery", loc])
            out[f"{store}_bulk_load_s"] = s
            print(f"{store}: bulk load {s:.1f} s", flush=True)
        out["postgresql_bytes"] = int(subprocess.run(
            ["psql", "-At", url, "-c", "SELECT pg_database_size(current_database())"], capture_output=True,
            text=True).stdout)
        out["sqlite_bytes"] = os.path.getsize(stores["sqlite"])
        # Starts: "cold" with nothing cached anywhere (the index is built from the store), "new_machine" with
        # no local cache (a database gallery keeps a copy of the index; a file gallery has none, so it builds
        # again), "cached" with the local cache from the previous start.
        for store, loc in stores.items():
            for start in ("cold", "new_machine", "cached"):
                if start != "cached":
                    shutil.rmtree(os.path.join(work, f"cache_{store}"), ignore_errors=True)
                    if store == "sqlite":
                        shutil.rmtree(loc + ".cache", ignore_errors=True)
                if start == "cold" and store == "postgresql":
                    subprocess.run(["psql", url, "-c", "DELETE FROM facekit_index_cache"], capture_output=True)
                srv = Server(a.facekit, store, loc, work, threads=a.threads)
                t0 = time.time()
                srv.start()
                ok = srv.wait_ready(timeout=1800)
                out[f"{store}_{start}_start_to_ready_s"] = time.time() - t0 if ok is not None else None
                print(f"{store}: {start} start to ready {out[f'{store}_{start}_start_to_ready_s']:.1f} s", flush=True)
                if start == "cold":
                    lat, right = [], 0
                    for name, e in probes:
                        body = json.dumps({"embeddings": [e]}).encode()
                        t1 = time.perf_counter()
                        status, j = srv.request("POST", "/api/v1/recognition/embeddings/recognize", body,
                                                "application/json")
                        lat.append((time.perf_counter() - t1) * 1000)
                        right += status == 200 and j["result"][0]["similarities"][0]["subject"] == name
                    out[f"{store}_identify_ms"] = {"p50": pct(lat, 50), "p99": pct(lat, 99), "mean": sum(lat) / len(lat)}
                    out[f"{store}_identify_rank1"] = right / len(probes)
                    out[f"{store}_rss_mb"] = rss_mb(srv.proc.pid)
                    print(f"{store}: identify p50 {pct(lat, 50):.2f} ms p99 {pct(lat, 99):.2f} ms, rank-1 "
                          f"{right / len(probes):.3f}, RSS {out[f'{store}_rss_mb']:.0f} MB", flush=True)
                srv.stop()
        if a.copy:
            second = url.replace("/postgres?", "/copy?")
            subprocess.run(["psql", url, "-c", "CREATE DATABASE copy"], capture_output=True, check=True)
            s, text = timed([a.facekit, "gallery", "copy", "--from", stores["sqlite"], "--to", second])
            out["copy_sqlite_to_postgresql_s"] = s
            out["copy_output"] = text.strip().splitlines()
            print(f"copy: {s:.1f} s; " + " / ".join(out["copy_output"]), flush=True)
    finally:
        subprocess.run([CLUSTER, "stop", pg_dir], capture_output=True)
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
