"""End-to-end tests of the Python bindings on real photos (Debian's libdlib19.1 examples), with Debian's python3.

Run against an installed prefix: PYTHONPATH=<prefix>/lib/python3/dist-packages python3 -m unittest test_facekit
(tests/python/run_installed.sh installs the build into a temporary prefix and does that).
"""
import os
import pathlib
import tempfile
import threading
import unittest

import numpy as np

import facekit

FACES = pathlib.Path("/usr/share/doc/libdlib19.1/examples/faces")
TOM = FACES / "Tom_Cruise_avp_2014_4.jpg"
BALD = FACES / "bald_guys.jpg"


def crops_of_bald_guys(engine):
    """The 24 faces of bald_guys.jpg cut out with a margin, as RGB arrays, grouped into the four actors by the
    engine's own verification (each group: crops whose embeddings are within the threshold of its first)."""
    img = engine.load(BALD)
    faces = engine.embed(img)
    crops, embs = [], []
    for f in faces:
        x, y, w, h = f.face.box
        m = 0.3 * max(w, h)
        x0, y0 = max(0, int(x - m)), max(0, int(y - m))
        x1, y1 = min(img.shape[1], int(x + w + m)), min(img.shape[0], int(y + h + m))
        crop = np.ascontiguousarray(img[y0:y1, x0:x1])
        if len(engine.detect(crop)) != 1:
            continue
        crops.append(crop)
        embs.append(f.embedding)
    threshold = engine.verify_threshold
    groups = []
    for c, e in zip(crops, embs):
        for g in groups:
            if np.linalg.norm(g[0][1] - e) < threshold:
                g.append((c, e))
                break
        else:
            groups.append([(c, e)])
    groups.sort(key=len, reverse=True)
    return [[c for c, _ in g] for g in groups]


class FacekitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not BALD.exists():
            raise unittest.SkipTest("libdlib19.1's example photos are not installed")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.engine = facekit.Engine(gallery=os.path.join(cls.tmp.name, "people.db"), augment=False)
        cls.actors = crops_of_bald_guys(cls.engine)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_module_comes_from_the_installed_prefix(self):
        prefix = os.environ.get("FACEKIT_TEST_PREFIX")
        if not prefix:
            self.skipTest("not run from an installed prefix")
        self.assertTrue(os.path.realpath(facekit.__file__).startswith(os.path.realpath(prefix)), facekit.__file__)

    def test_detect_takes_numpy_paths_and_bytes(self):
        from_path = self.engine.detect(str(BALD))
        self.assertEqual(len(from_path), 24)
        arr = self.engine.load(BALD)
        self.assertEqual(arr.dtype, np.uint8)
        self.assertEqual(arr.ndim, 3)
        self.assertEqual(arr.shape[2], 3)
        from_array = self.engine.detect(arr)
        from_bytes = self.engine.detect(BALD.read_bytes())
        self.assertEqual(len(from_array), 24)
        self.assertEqual(len(from_bytes), 24)
        f = from_array[0]
        self.assertEqual(f.landmarks.shape, (68, 2))
        self.assertEqual(f.landmarks.dtype, np.float32)
        x, y, w, h = f.box
        self.assertTrue(w > 20 and h > 20)
        grey = np.ascontiguousarray(arr.mean(axis=2).astype(np.uint8))  # H x W greyscale is accepted too
        self.assertGreaterEqual(len(self.engine.detect(grey)), 20)
        self.assertEqual(f.json()["box"]["width"], w)

    def test_embed_gives_unit_float32_vectors(self):
        faces = self.engine.embed(TOM)
        self.assertEqual(len(faces), 1)
        e = faces[0].embedding
        self.assertEqual(e.dtype, np.float32)
        # The default embedder fuses the dlib ResNet (128-D) and faceplugin's MobileFaceNet (512-D).
        self.assertTrue(self.engine.embedder.startswith("dlib_faceplugin@"), self.engine.embedder)
        self.assertEqual(e.shape, (128 + 512,))
        self.assertAlmostEqual(float(np.linalg.norm(e)), 1.0, places=4)

    def test_verify(self):
        a, b = self.actors[0][0], self.actors[0][1]
        other = self.actors[1][0]
        same = self.engine.verify(a, b)
        self.assertTrue(same.same)
        self.assertTrue(bool(same))
        self.assertLess(same.distance, same.threshold)
        diff = self.engine.verify(a, other)
        self.assertFalse(diff.same)
        self.assertTrue(self.engine.verify(a, other, threshold=1.99).same)

    def test_enroll_identify_rename_remove(self):
        e = self.engine
        r = e.enroll("py first", self.actors[0][:2], metadata={"team": "a"})
        self.assertTrue(r.created)
        self.assertEqual(r.added, 2)
        self.assertEqual(r.person.metadata, {"team": "a"})
        e.enroll("py second", self.actors[1][:2])
        who = e.identify(self.actors[0][2])
        self.assertEqual(len(who.faces), 1)
        self.assertTrue(who.faces[0].known)
        self.assertEqual(who.faces[0].identity, "py first")
        self.assertEqual(who.faces[0].candidates[0].person_id, r.person.id)
        j = who.json()
        self.assertEqual(j["schema_version"], facekit.SCHEMA_VERSION)
        self.assertEqual(j["images"][0]["faces"][0]["identity"], "py first")
        emb = e.embed(self.actors[1][2])[0].embedding
        self.assertEqual(e.identify_embedding(emb).faces[0].identity, "py second")
        e.rename("py second", "py renamed")
        self.assertEqual(e.identify_embedding(emb).faces[0].identity, "py renamed")
        removed = e.remove(["py renamed"])
        self.assertEqual([p.name for p in removed], ["py renamed"])
        self.assertNotEqual(e.identify_embedding(emb).faces[0].identity, "py renamed")
        self.assertIn("py first", [p.name for p in e.people()])
        e.remove(["py first"])

    def test_bad_input_raises_with_the_library_message(self):
        e = self.engine
        with self.assertRaises(facekit.BadImageError) as cm:
            e.detect(b"\xff\xd8\xff\xe0 not really a jpeg")
        self.assertIsInstance(cm.exception, facekit.Error)
        self.assertIsInstance(cm.exception, ValueError)
        self.assertTrue(str(cm.exception))
        with self.assertRaises(facekit.NotFoundError) as cm:
            e.detect("/nonexistent/photo.jpg")
        self.assertIn("/nonexistent/photo.jpg", str(cm.exception))
        with self.assertRaises(facekit.InvalidArgumentError):
            e.detect(np.zeros((10, 10, 3), dtype=np.float32))
        with self.assertRaises(facekit.InvalidArgumentError):
            e.detect(np.zeros((10, 10, 2), dtype=np.uint8))
        with self.assertRaises(facekit.InvalidArgumentError):
            e.detect(42)
        blank = np.full((200, 200, 3), 128, dtype=np.uint8)
        with self.assertRaises(facekit.NoFaceError) as cm:
            e.enroll("nobody", [blank])
        self.assertEqual(cm.exception.code, "no_face")
        with self.assertRaises(facekit.InvalidArgumentError) as cm:
            e.enroll("  ", self.actors[0][:1])  # a blank name
        with self.assertRaises(facekit.NotFoundError):
            e.person("no such person")
        with self.assertRaises(facekit.InvalidArgumentError) as cm:
            e.identify_embedding(np.ones(3, dtype=np.float32) / np.sqrt(3))  # wrong length for the gallery
        with self.assertRaises(facekit.InvalidArgumentError) as cm:
            facekit.Engine(embedder="no_such_model")
        self.assertIn("dlib_resnet", str(cm.exception))
        self.assertNotIn("nobody", [p.name for p in e.people()])  # nothing was stored

    def test_threads_share_one_engine(self):
        results, errors = [], []

        def work():
            try:
                results.append(len(self.engine.detect(self.actors[0][0])))
            except Exception as ex:  # pragma: no cover - reported below
                errors.append(ex)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(results, [1, 1, 1, 1])


if __name__ == "__main__":
    unittest.main()
