#!/usr/bin/env python3
"""Several `facekit serve` processes on one PostgreSQL gallery, on a throw-away PostgreSQL server.

  test_multi_server.py FACEKIT PG_CLUSTER_SH PHOTO

Phases, each on the same three servers A, B and C:
  1. enrol through A: B and C recognise the person; remove through C: A and B forget them.
  2. the servers' LISTEN connections are killed (a NOTIFY is lost): the next change still reaches B and C.
  3. PostgreSQL restarts while enrolments and recognitions run through all three: no enrolment that answered
     success is lost, and every server catches up without a restart.
  4. one server is kill -9'd mid-enrolment and started again: it catches up, nothing acknowledged is lost.
  5. a fourth server starts while enrolments run: it ends with the same people as the others.
  6. `facekit gallery copy` moves the gallery to an SQLite file and back into a new database, verified.
Exit 0 when all pass, 1 on a failure, 77 (skipped) when PostgreSQL cannot start here.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_servers import Server, converge, psql  # noqa: E402

FACEKIT, CLUSTER, PHOTO = sys.argv[1:4]
PHOTO_BYTES = open(PHOTO, "rb").read()
failures = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def enrol_many(server, names, ok, errors):
    for n in names:
        try:
            status, _ = server.enrol(n, PHOTO_BYTES)
            (ok if status == 201 else errors).append(n)
        except OSError:
            errors.append(n)


def main():
    work = tempfile.mkdtemp(prefix="facekit-multi-")
    os.chmod(work, 0o755)  # the PostgreSQL server runs as the postgres user when the test runs as root
    pg_dir = os.path.join(work, "pg")
    start = subprocess.run([CLUSTER, "start", pg_dir], capture_output=True, text=True)
    if start.returncode == 2:
        print("SKIP: " + start.stderr.strip())
        return 77
    if start.returncode != 0:
        print("cannot start PostgreSQL: " + start.stderr)
        return 1
    pg_url = start.stdout.strip()
    servers = []
    try:
        a, b, c = (Server(FACEKIT, n, pg_url, work) for n in "abc")
        servers = [a, b, c]
        for s in servers:
            s.start()
        for s in servers:
            check(s.wait_ready(timeout=120) is not None, f"server {s.name} is ready")

        # 1. enrol through A, recognise through B and C; remove through C, forgotten by A and B.
        status, _ = a.enrol("Alice", PHOTO_BYTES)
        check(status == 201, "A enrols Alice")
        lag = converge(servers)
        check(lag is not None, f"B and C hold A's change ({lag if lag is None else round(lag * 1000)} ms)")
        check(b.recognise(PHOTO_BYTES) == ["Alice"] and c.recognise(PHOTO_BYTES) == ["Alice"], "B and C recognise Alice")
        status, _ = c.request("DELETE", "/api/v1/recognition/subjects/Alice")
        check(status == 200, "C removes Alice")
        converge(servers)
        check(a.recognise(PHOTO_BYTES) == [] and b.recognise(PHOTO_BYTES) == [], "A and B no longer recognise Alice")

        # 2. a lost notification: the LISTEN connections are killed, then a change is made.
        killed = psql(pg_url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = 'facekit-listen'")
        check(killed == "3", f"the three servers' LISTEN connections are killed ({killed})")
        status, _ = a.enrol("Bob", PHOTO_BYTES)
        t0 = time.time()
        seen = all(s.wait_ready(a.revision(), 10) is not None for s in (b, c))
        check(seen and b.recognise(PHOTO_BYTES) == ["Bob"] and c.recognise(PHOTO_BYTES) == ["Bob"],
              f"B and C see Bob all the same ({round((time.time() - t0) * 1000)} ms)")
        time.sleep(1.5)
        listeners = psql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'facekit-listen'")
        check(listeners == "3", f"every server listens again ({listeners})")

        # 3. PostgreSQL restarts while enrolments and recognitions run through all three servers.
        ok, errors, recognitions = [], [], []
        stop = threading.Event()

        def recognise_loop():
            while not stop.is_set():
                for s in servers:
                    try:
                        recognitions.append(s.recognise(PHOTO_BYTES) is not None)
                    except OSError:
                        recognitions.append(False)

        threads = [threading.Thread(target=enrol_many, args=(s, [f"r{s.name}{i}" for i in range(12)], ok, errors))
                   for s in servers]
        threads.append(threading.Thread(target=recognise_loop))
        for t in threads:
            t.start()
        time.sleep(2.0)
        restart = subprocess.run([CLUSTER, "restart", pg_dir], capture_output=True, text=True)
        check(restart.returncode == 0, "PostgreSQL restarted mid-load")
        for t in threads[:-1]:
            t.join()
        stop.set()
        threads[-1].join()
        print(f"     {len(ok)} enrolments succeeded, {len(errors)} failed during the restart; "
              f"{sum(recognitions)} of {len(recognitions)} recognitions answered", flush=True)
        lag = converge(servers, 60)
        check(lag is not None, "every server catches up after the restart, without being restarted")
        subjects = [s.subjects() for s in servers]
        check(all(x == subjects[0] for x in subjects), "the three servers list the same people")
        check(set(ok) <= subjects[0], "no enrolment that answered success is lost")
        check(len(ok) > 0, "enrolments succeed around the restart")

        # 4. a server killed mid-enrolment, then started again.
        ok, errors = [], []
        t = threading.Thread(target=enrol_many, args=(b, [f"k{i}" for i in range(30)], ok, errors))
        t.start()
        time.sleep(1.5)
        b.kill()
        t.join()
        b.start()
        check(b.wait_ready(timeout=120) is not None, "the killed server starts again")
        check(converge(servers, 60) is not None, "and catches up")
        subjects = [s.subjects() for s in servers]
        check(all(x == subjects[0] for x in subjects) and set(ok) <= subjects[0],
              f"no acknowledged enrolment is lost ({len(ok)} before the kill) and all agree")
        in_db = int(psql(pg_url, "SELECT count(*) FROM facekit_people"))
        check(in_db == len(subjects[0]), f"the servers list what the database holds ({in_db})")

        # 5. a server started while enrolments run.
        ok, errors = [], []
        t = threading.Thread(target=enrol_many, args=(a, [f"n{i}" for i in range(20)], ok, errors))
        t.start()
        time.sleep(1.0)
        d = Server(FACEKIT, "d", pg_url, work)
        servers.append(d)
        d.start()
        t.join()
        check(d.wait_ready(timeout=120) is not None, "a server started mid-load is ready")
        check(converge(servers, 60) is not None, "and catches up")
        subjects = [s.subjects() for s in servers]
        check(all(x == subjects[0] for x in subjects) and set(ok) <= subjects[0],
              "the new server lists the same people as the others")
        # 6. gallery copy: PostgreSQL -> SQLite -> a new database, each verified by the command itself.
        lite = os.path.join(work, "copy.db")
        r1 = subprocess.run([FACEKIT, "gallery", "copy", "--from", pg_url, "--to", lite], capture_output=True, text=True)
        psql(pg_url, "CREATE DATABASE copied")
        second = pg_url.replace("/postgres?", "/copied?")
        r2 = subprocess.run([FACEKIT, "gallery", "copy", "--from", lite, "--to", second], capture_output=True, text=True)
        check(r1.returncode == 0 and r2.returncode == 0 and "verified" in r1.stdout and "verified" in r2.stdout,
              "gallery copy to SQLite and back into a new database, verified: " + r2.stdout.strip().replace("\n", "; "))
        check(psql(second, "SELECT count(*) FROM facekit_people") == psql(pg_url, "SELECT count(*) FROM facekit_people"),
              "the copy holds as many people as the original")
        r3 = subprocess.run([FACEKIT, "gallery", "copy", "--from", lite, "--to", second], capture_output=True, text=True)
        check(r3.returncode != 0 and "already holds people" in r3.stderr, "a copy into a gallery with people is refused")
    finally:
        for s in servers:
            s.stop()
        subprocess.run([CLUSTER, "stop", pg_dir], capture_output=True)
        if failures:
            print("logs kept in " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
