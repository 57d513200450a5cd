"""Several `facekit serve` processes on one gallery, driven over HTTP: the harness of
tests/server/test_multi_server.py and bench/pg_sync.py."""
import http.client
import json
import os
import signal
import subprocess
import time
import urllib.parse
import uuid


def multipart(field, filename, data):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Server:
    def __init__(self, facekit, name, url, work, extra=(), threads=1):
        self.facekit, self.name, self.url, self.work, self.extra = facekit, name, url, work, list(extra)
        self.threads = threads
        self.proc, self.port = None, None

    def start(self):
        port_file = os.path.join(self.work, f"port_{self.name}")
        if os.path.exists(port_file):
            os.remove(port_file)
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), XDG_DATA_HOME=os.path.join(self.work, "data"),
                   XDG_CACHE_HOME=os.path.join(self.work, f"cache_{self.name}"))
        self.log = open(os.path.join(self.work, f"log_{self.name}"), "ab")
        self.proc = subprocess.Popen(
            [self.facekit, "serve", "--gallery", self.url, "--port", "0", "--port-file", port_file, "--workers", "1",
             "--state", os.path.join(self.work, f"state_{self.name}.db"),
             "--admin-key-file", os.path.join(self.work, f"key_{self.name}"), "--sync-interval-ms", "500"] + self.extra,
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

    def enrol(self, subject, photo):
        body, ctype = multipart("file", "face.jpg", photo)
        return self.request("POST", f"/api/v1/recognition/faces?subject={urllib.parse.quote(subject)}"
                            "&augment=false&allow_poor=true", body, ctype)

    def recognise(self, photo, limit=1):
        body, ctype = multipart("file", "face.jpg", photo)
        status, j = self.request("POST", f"/api/v1/recognition/recognize?limit={limit}", body, ctype)
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




def start_cluster(cluster_sh, directory, fsync=False):
    """Starts a throw-away PostgreSQL server (tests/pg/pg_cluster.sh); its URL, or None when PostgreSQL is
    not installed (exit 2). fsync=True for benchmarks: commits then cost what they cost in production."""
    env = dict(os.environ, FACEKIT_PG_FSYNC="on" if fsync else "off")
    r = subprocess.run([cluster_sh, "start", directory], capture_output=True, text=True, env=env)
    if r.returncode == 2:
        return None
    if r.returncode != 0:
        raise RuntimeError("cannot start PostgreSQL: " + r.stderr)
    return r.stdout.strip()


def percentile(xs, q):
    """The q-th percentile of xs (nearest rank), for the benchmarks' latency figures."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]
