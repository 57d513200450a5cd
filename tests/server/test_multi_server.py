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
Exit 0 when all pass, 1 on a failure, 77 (skipped) when PostgreSQL cannot start here.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

FACEKIT, CLUSTER, PHOTO = sys.argv[1:4]
PHOTO_BYTES = open(PHOTO, "rb").read()
failures = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def multipart(field, filename, data):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Server:
    def __init__(self, name, url, work):
        self.name, self.url, self.work = name, url, work
        self.proc, self.port = None, None

    def start(self):
        port_file = os.path.join(self.work, f"port_{self.name}")
        if os.path.exists(port_file):
            os.remove(port_file)
        env = dict(os.environ, OMP_NUM_THREADS="1", XDG_DATA_HOME=os.path.join(self.work, "data"),
                   XDG_CACHE_HOME=os.path.join(self.work, f"cache_{self.name}"))
        self.log = open(os.path.join(self.work, f"log_{self.name}"), "ab")
        self.proc = subprocess.Popen(
            [FACEKIT, "serve", "--gallery", self.url, "--port", "0", "--port-file", port_file, "--workers", "1",
             "--state", os.path.join(self.work, f"state_{self.name}.db"),
             "--admin-key-file", os.path.join(self.work, f"key_{self.name}"), "--sync-interval-ms", "500"],
            stdout=self.log, stderr=self.log, env=env)
        for _ in range(600):
            if os.path.exists(port_file) and open(port_file).read().strip():
                self.port = int(open(port_file).read())
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name} exited: see {self.log.name}")
            time.sleep(0.05)
        self.key = open(os.path.join(self.work, f"key_{self.name}")).read().strip()

    def request(self, method, path, body=None, ctype=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"x-api-key": self.key}
        if ctype:
            headers["Content-Type"] = ctype
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, (json.loads(data) if data and data[:1] in b"{[" else data)

    def ready(self):
        try:
            status, j = self.request("GET", "/readyz", timeout=5)
            return j.get("revision") if status == 200 else None
        except OSError:
            return None

    def wait_ready(self, revision=None, timeout=60):
        t0 = time.time()
        while time.time() - t0 < timeout:
            r = self.ready()
            if r is not None and (revision is None or r >= revision):
                return time.time() - t0
            time.sleep(0.02)
        return None

    def enrol(self, subject):
        body, ctype = multipart("file", "face.jpg", PHOTO_BYTES)
        return self.request("POST", f"/api/v1/recognition/faces?subject={subject}&augment=false", body, ctype)

    def recognise(self):
        body, ctype = multipart("file", "face.jpg", PHOTO_BYTES)
        status, j = self.request("POST", "/api/v1/recognition/recognize?limit=1", body, ctype)
        if status != 200:
            return None
        subjects = j["result"][0]["subjects"] if j.get("result") else []
        return [s["subject"] for s in subjects]

    def subjects(self):
        status, j = self.request("GET", "/api/v1/recognition/subjects")
        return set(j["subjects"]) if status == 200 else None

    def revision(self):
        return self.request("GET", "/api/v1/facekit/status")[1]["gallery"]["revision"]

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def psql(pg_url, sql):
    return subprocess.run(["psql", "-At", pg_url, "-c", sql], capture_output=True, text=True).stdout.strip()


def converge(servers, timeout=30):
    """Waits until every server's index holds the gallery's current revision; the seconds it took."""
    target = servers[0].revision()
    t0 = time.time()
    for s in servers:
        if s.wait_ready(target, timeout) is None:
            return None
    return time.time() - t0


def enrol_many(server, names, ok, errors):
    for n in names:
        try:
            status, _ = server.enrol(n)
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
        a, b, c = (Server(n, pg_url, work) for n in "abc")
        servers = [a, b, c]
        for s in servers:
            s.start()
        for s in servers:
            check(s.wait_ready(timeout=120) is not None, f"server {s.name} is ready")

        # 1. enrol through A, recognise through B and C; remove through C, forgotten by A and B.
        status, _ = a.enrol("Alice")
        check(status == 201, "A enrols Alice")
        lag = converge(servers)
        check(lag is not None, f"B and C hold A's change ({lag if lag is None else round(lag * 1000)} ms)")
        check(b.recognise() == ["Alice"] and c.recognise() == ["Alice"], "B and C recognise Alice")
        status, _ = c.request("DELETE", "/api/v1/recognition/subjects/Alice")
        check(status == 200, "C removes Alice")
        converge(servers)
        check(a.recognise() == [] and b.recognise() == [], "A and B no longer recognise Alice")

        # 2. a lost notification: the LISTEN connections are killed, then a change is made.
        killed = psql(pg_url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = 'facekit-listen'")
        check(killed == "3", f"the three servers' LISTEN connections are killed ({killed})")
        status, _ = a.enrol("Bob")
        t0 = time.time()
        seen = all(s.wait_ready(a.revision(), 10) is not None for s in (b, c))
        check(seen and b.recognise() == ["Bob"] and c.recognise() == ["Bob"],
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
                        recognitions.append(s.recognise() is not None)
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
        d = Server("d", pg_url, work)
        servers.append(d)
        d.start()
        t.join()
        check(d.wait_ready(timeout=120) is not None, "a server started mid-load is ready")
        check(converge(servers, 60) is not None, "and catches up")
        subjects = [s.subjects() for s in servers]
        check(all(x == subjects[0] for x in subjects) and set(ok) <= subjects[0],
              "the new server lists the same people as the others")
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
