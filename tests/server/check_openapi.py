#!/usr/bin/python3
"""Checks share/server/openapi.json against the routes the server registers.

    /usr/bin/python3 tests/server/check_openapi.py share/server/openapi.json ROUTES.txt

ROUTES.txt lists the server's routes one per line as `METHOD /path/{param}` (blank lines and lines starting
with `#` are ignored). A line may carry a third word, the route's scope (`admin`, `enroll`, `recognize`,
`read`, or `none` for a public route); when it does, the document must agree with it.

Fails (exit 1, listing every difference) unless
  - the document's set of (method, path) operations equals the file's,
  - every operation that is not public (public: `security: []`) has `x-facekit-scope` naming a known scope,
  - every `$ref` in the document resolves inside the document.
Exit 2: the arguments or files could not be read. Standard library only.
"""
import json
import sys

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCOPES = {"admin", "enroll", "recognize", "read"}


def read_routes(path):
    """{(METHOD, path): scope or None}; problems go to the list it returns second."""
    routes, problems = {}, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split()
            if len(words) not in (2, 3) or words[0].lower() not in METHODS or not words[1].startswith("/"):
                problems.append(f"{path}:{n}: not `METHOD /path [scope]`: {line!r}")
                continue
            key = (words[0].upper(), words[1])
            scope = words[2] if len(words) == 3 else None
            if scope is not None and scope != "none" and scope not in SCOPES:
                problems.append(f"{path}:{n}: unknown scope {scope!r}")
            if key in routes:
                problems.append(f"{path}:{n}: {key[0]} {key[1]} listed twice")
            routes[key] = scope
    return routes, problems


def resolve_pointer(doc, pointer):
    """The value a local JSON pointer (`#/a/b`) names, or raises KeyError."""
    if pointer == "#":
        return doc
    if not pointer.startswith("#/"):
        raise KeyError(pointer)
    node = doc
    for part in pointer[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(pointer)
    return node


def check_refs(doc):
    problems = []

    def walk(node, where):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                if not isinstance(ref, str) or not ref.startswith("#"):
                    problems.append(f"{where}: $ref {ref!r} is not a reference inside the document")
                else:
                    try:
                        resolve_pointer(doc, ref)
                    except KeyError:
                        problems.append(f"{where}: $ref {ref!r} does not resolve")
            for k, v in node.items():
                walk(v, f"{where}/{str(k).replace('~', '~0').replace('/', '~1')}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(doc, "#")
    return problems


def operations(doc):
    """{(METHOD, path): operation object}."""
    ops = {}
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        if "$ref" in item:  # a path item by reference
            try:
                item = resolve_pointer(doc, item["$ref"])
            except KeyError:
                continue  # reported by check_refs
        for method in METHODS:
            if isinstance(item.get(method), dict):
                ops[(method.upper(), path)] = item[method]
    return ops


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            doc = json.load(f)
        routes, problems = read_routes(argv[2])
    except (OSError, ValueError) as e:
        print(f"check_openapi: {e}", file=sys.stderr)
        return 2
    if not isinstance(doc, dict):
        print(f"check_openapi: {argv[1]} is not a JSON object", file=sys.stderr)
        return 2

    ops = operations(doc)
    global_security = doc.get("security")
    for key in sorted(set(routes) - set(ops)):
        problems.append(f"missing from the document: {key[0]} {key[1]}")
    for key in sorted(set(ops) - set(routes)):
        problems.append(f"not a route of the server: {key[0]} {key[1]}")

    for (method, path), o in sorted(ops.items()):
        security = o.get("security", global_security)
        public = security == []
        scope = o.get("x-facekit-scope")
        if not public:
            if scope is None:
                problems.append(f"{method} {path}: needs a key but has no x-facekit-scope")
            elif scope not in SCOPES:
                problems.append(f"{method} {path}: x-facekit-scope {scope!r} is not one of {sorted(SCOPES)}")
        elif scope is not None:
            problems.append(f"{method} {path}: public (security: []) but has x-facekit-scope {scope!r}")
        want = routes.get((method, path))
        if want is not None and (public or scope is not None):
            have = "none" if public else scope
            if have != want:
                problems.append(f"{method} {path}: scope {have!r} in the document, {want!r} in the routes")

    problems += check_refs(doc)

    if problems:
        print(f"{argv[1]}: {len(problems)} difference(s) with {argv[2]}:")
        for p in problems:
            print(f"  {p}")
        return 1
    print(f"{argv[1]}: {len(ops)} operations match {argv[2]}; every $ref resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
