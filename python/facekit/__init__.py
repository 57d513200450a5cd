"""facekit: face detection, verification, enrolment and identification.

    import facekit
    e = facekit.Engine(gallery="people.db")
    e.verify("a.jpg", "b.jpg").same
    e.enroll("Ada", ["ada1.jpg", "ada2.jpg"])
    for face in e.identify("door.jpg").faces:
        print(face.identity or "unknown", face.face.box)

Images are numpy uint8 arrays (H x W x 3 RGB, H x W x 4 RGBA or H x W grey), file paths or encoded bytes.
Errors raise facekit.Error subclasses (NoFaceError, NotFoundError, InvalidArgumentError, BadImageError,
PoorQualityError, StorageError, ModelError) carrying the library's message and .code.
"""
from ._facekit import *  # noqa: F401,F403
from ._facekit import __doc__ as _native_doc  # noqa: F401

__all__ = [
    "Engine", "Face", "EmbeddedFace", "Verification", "Person", "Enrolment", "Candidate", "IdentifiedFace",
    "Identification", "Error", "NoFaceError", "NotFoundError", "InvalidArgumentError", "BadImageError",
    "PoorQualityError", "StorageError", "ModelError", "SCHEMA_VERSION",
]
