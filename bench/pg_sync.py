#!/usr/bin/env python3
"""Three `facekit serve` processes on one PostgreSQL gallery: how fast a change reaches the others, and whether
they agree after many concurrent enrolments.

  bench/pg_sync.py [--facekit build/facekit] [--lfw ../shared/data/lfw] [--lag 1000] [--load 10000] [--json OUT]

1. Sync lag: --lag enrolments one after another through A (LFW photos, one per person, augment=false); for each,
   the time from A's 201 answer to B's and C's /readyz reporting the new revision (polled about every
   millisecond). p50, p90, p99, max.
2. Load: --load enrolments spread over A, B and C by six client threads at once. Afterwards: every server's
   people count, the database's, and the answers of the three servers for the same probe photos (top 5,
   names and similarities), which must be identical.
The PostgreSQL server is a throw-away one (tests/pg/pg_cluster.sh) with fsync on.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "tests", "server"))
from pg_servers import Server, converge, multipart, percentile, psql, start_cluster  # noqa: E402

CLUSTER = os.path.join(root, "tests", "pg", "pg_cluster.sh")


def lfw_photos(lfw):
    """One photo per person first (distinct identities), then the rest."""
    people = sorted(d for d in os.listdir(lfw) if os.path.isdir(os.path.join(lfw, d)))
    first, rest = [], []
    for p in people:
        files = sorted(f for f in os.listdir(os.path.join(lfw, p)) if f.endswith(".jpg"))
        first += [(p, os.path.join(lfw, p, files[0]))]
        rest += [(p, os.path.join(lfw, p, f)) for f in files[1:]]
    return first + rest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--facekit", default=os.path.join(root, "build", "facekit"))
    ap.add_argument("--lfw", default=os.path.join(root, "..", "shared", "data", "lfw"))
    ap.add_argument("--lag", type=int, default=1000)
    ap.add_argument("--load", type=int, default=10000)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--json")
    a = ap.parse_args()
    photos = lfw_photos(a.lfw)
    work = tempfile.mkdtemp(prefix="facekit-pgsync-")
    os.chmod(work, 0o755)
    pg_dir = os.path.join(work, "pg")
    url = start_cluster(CLUSTER, pg_dir, fsync=True)
    if url is None:
        print("PostgreSQL is not installed")
        return 2
    out = {"lag_enrolments": a.lag, "load_enrolments": a.load, "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": "),
           "cores": os.cpu_count()}
    servers = []
    try:
        servers = [Server(a.facekit, n, url, work) for n in "abc"]
        for s in servers:
            s.start()
        for s in servers:
            assert s.wait_ready(timeout=300) is not None, f"server {s.name} not ready"
        A, B, C = servers
        # Models load on first use: one recognition each before measuring.
        for s in servers:
            s.recognise(open(photos[0][1], "rb").read())

        # 1. lag
        revision = A.revision()
        lags = {"b": [], "c": []}
        refused = 0
        t_start = time.time()
        for i in range(a.lag):
            person, path = photos[i]
            status, _ = A.enrol(f"lag_{person}", open(path, "rb").read())
            t0 = time.perf_counter()
            if status != 201:
                refused += 1
                continue
            revision += 1
            pending = {"b": B, "c": C}
            while pending:
                for k in list(pending):
                    r = pending[k].ready()
                    if r is not None and r >= revision:
                        lags[k].append((time.perf_counter() - t0) * 1000)
                        del pending[k]
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError(f"enrolment {i} did not reach {list(pending)} in 30 s")
            if (i + 1) % 100 == 0:
                print(f"lag: {i + 1}/{a.lag}", flush=True)
        both = lags["b"] + lags["c"]
        out["lag_ms"] = {k: {"p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99),
                             "max": max(v), "n": len(v)} for k, v in {**lags, "both": both}.items()}
        out["lag_refused"] = refused
        out["lag_seconds"] = time.time() - t_start
        print(json.dumps(out["lag_ms"]["both"]), flush=True)

        # 2. load
        jobs = [(f"load{i}_{photos[(a.lag + i) % len(photos)][0]}", photos[(a.lag + i) % len(photos)][1])
                for i in range(a.load)]
        ok, refused_load, errors = [], [], []
        lock = threading.Lock()
        nxt = [0]

        def client(server):
            while True:
                with lock:
                    if nxt[0] >= len(jobs):
                        return
                    name, path = jobs[nxt[0]]
                    nxt[0] += 1
                try:
                    status, _ = server.enrol(name, open(path, "rb").read())
                    (ok if status == 201 else refused_load).append(name)
                except OSError as e:
                    errors.append(f"{name}: {e}")
                done = len(ok) + len(refused_load) + len(errors)
                if done % 500 == 0:
                    print(f"load: {done}/{len(jobs)}", flush=True)

        t0 = time.time()
        threads = [threading.Thread(target=client, args=(s,)) for s in servers for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["load_seconds"] = time.time() - t0
        out["load_ok"], out["load_refused"], out["load_errors"] = len(ok), len(refused_load), len(errors)
        out["converge_seconds_after_load"] = converge(servers, 120)
        counts = {s.name: len(s.subjects()) for s in servers}
        counts["database"] = int(psql(url, "SELECT count(*) FROM facekit_people"))
        out["people"] = counts
        names_ok = set(ok)
        out["all_acknowledged_present"] = names_ok <= servers[0].subjects()
        # identical answers for the same probe photos (photos of enrolled people, other than the enrolled one)
        probes = [p for _, p in photos[len(photos) // 2:len(photos) // 2 + a.probes]]
        same, answered = 0, 0
        for p in probes:
            data = open(p, "rb").read()
            answers = []
            for s in servers:
                status, j = s.request("POST", "/api/v1/recognition/recognize?limit=5",
                                      *multipart("file", "p.jpg", data))
                if status != 200:
                    answers.append(None)
                    continue
                answers.append([[(x["subject"], round(x["similarity"], 5)) for x in f["subjects"]] for f in j["result"]])
            if answers[0] is not None:
                answered += 1
                same += all(x == answers[0] for x in answers)
        out["probes_answered"], out["probes_identical"] = answered, same
        print(json.dumps({k: out[k] for k in ("load_seconds", "load_ok", "load_refused", "load_errors", "people",
                                              "all_acknowledged_present", "probes_answered", "probes_identical")}),
              flush=True)
    finally:
        for s in servers:
            s.stop()
        import subprocess
        subprocess.run([CLUSTER, "stop", pg_dir], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
