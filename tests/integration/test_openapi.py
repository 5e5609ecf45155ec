"""docs/openapi.yaml against the real server, so the document cannot drift from what it serves.

- The document itself is checked with a maintained OpenAPI 3.1 validator,
  @seriousme/openapi-schema-validator (npm; its `validate-api` command checks the document
  against the official OpenAPI 3.1 JSON Schema), and every Schema Object in it is checked against
  the JSON Schema 2020-12 meta-schema with python3-jsonschema (which the OpenAPI schema leaves
  out).
- A running server (auth on, tokens issued by the binary's own `token issue`) is driven through
  every endpoint, with success and error cases: 101, 200, 204, 400, 401, 403, 404, 405, 410, 413,
  426, 429, 431, 503. Each real response is looked up in the document (operation by path
  template and method, else the document's `x-unrouted-responses`) and must match: the status is
  documented there, the required headers are present and every documented header has the
  documented form, the Content-Type is one of the documented media types (or absent where none
  is), and the body validates against the response's schema (JSON Schema 2020-12, via
  python3-jsonschema). Requests meant to be valid are checked against the document too (query
  and header parameters, security, request body); requests meant to be refused must break it.
- Every operation and every documented response must have been seen, except the few listed in
  NOT_EXERCISED with the reason.

Only the standard library, Debian's python3-yaml and python3-jsonschema, the harness, and the npm
validator are used; the glue that finds the operation and response for a request is written here.
"""

import copy
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import jsonschema
import yaml

from harness import SERVER_BIN, WAIT, ServerTestCase, data_change, q

HERE = os.path.dirname(os.path.abspath(__file__))
DOC_PATH = os.path.normpath(os.path.join(HERE, "..", "..", "docs", "openapi.yaml"))
NPM_VALIDATOR = "@seriousme/openapi-schema-validator"

# Documented answers that this test cannot provoke, with the reason. Everything else in the
# document must be seen from the real server.
NOT_EXERCISED = {
    ("getReady", "503"): "needs a PostgreSQL store that is down (test_multinode covers it)",
    ("getRestaurantStatus", "503"): "needs a store read to fail, which SQLite does not here",
    ("getRestaurantData", "503"): "needs a store read to fail, which SQLite does not here",
    ("getRestaurantChanges", "503"): "needs a store read to fail, which SQLite does not here",
    ("listLegacyDevices", "503"): "needs a store read to fail, which SQLite does not here",
    ("getLegacyDevice", "503"): "needs a store read to fail, which SQLite does not here",
    ("enrolLegacyDevice", "503"): "needs a store write to fail, which SQLite does not here",
    ("removeLegacyDevice", "503"): "needs a store write to fail, which SQLite does not here",
    ("listRestaurantConnections", "503"): "needs a store read to fail, which SQLite does not here",
}

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


# --------------------------------------------------------------------------------------------
# The document and the glue that finds what it says about one request
# --------------------------------------------------------------------------------------------


def find_validate_api():
    """The command line of @seriousme/openapi-schema-validator's `validate-api`, or None."""
    explicit = os.environ.get("POSSYNC_OPENAPI_VALIDATOR")
    if explicit:
        return explicit.split()
    found = shutil.which("validate-api")
    if found:
        return [found]
    npm = shutil.which("npm")
    node = shutil.which("node")
    if npm and node:
        root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True,
                              timeout=60).stdout.strip()
        cli = os.path.join(root, NPM_VALIDATOR, "bin", "validate-api-cli.js")
        if os.path.exists(cli):
            return [node, cli]
    return None


def walk(node, path=()):
    """Yields (path, value) for every dict and list in a parsed document, depth first."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


class Route:
    """What the document says about one request: where it was found and its responses."""

    def __init__(self, kind, key, responses, operation=None, path_item=None, template=None,
                 path_params=None):
        self.kind = kind  # "operation", or an x-unrouted-responses category
        self.key = key  # operationId, or "x-unrouted-responses/<category>"
        self.responses = responses
        self.operation = operation
        self.path_item = path_item
        self.template = template
        self.path_params = path_params or {}


class OpenApi:
    """docs/openapi.yaml, with the lookups a response check needs."""

    def __init__(self, doc):
        self.doc = doc
        self.resolver = jsonschema.RefResolver(base_uri="", referrer=doc)
        self.routes = []
        for template, item in doc["paths"].items():
            item = self.resolve(item)
            pattern = "".join("([^/]*)" if part.startswith("{") else re.escape(part)
                              for part in re.split(r"(\{[^}]+\})", template))
            names = re.findall(r"\{([^}]+)\}", template)
            self.routes.append((template, re.compile(pattern), names, item))
        self.unrouted = doc.get("x-unrouted-responses", {})
        self.seen = set()  # (route key, status) of every response checked

    @classmethod
    def load(cls, path=DOC_PATH):
        with open(path, encoding="utf-8") as f:
            return cls(yaml.safe_load(f))

    # ---- references ----

    def pointer(self, ref):
        if not ref.startswith("#"):
            raise KeyError(f"only local references are used: {ref}")
        node = self.doc
        for part in ref[1:].split("/")[1:]:
            part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def resolve(self, node):
        """Follows $ref until a node that is not a reference."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            node = self.pointer(node["$ref"])
            seen += 1
            if seen > 32:
                raise KeyError("reference loop")
        return node

    # ---- routing ----

    def route(self, method, target):
        """The Route of a request (method upper-case, target as sent on the request line)."""
        path = urllib.parse.urlsplit(target).path
        method = method.lower()
        for template, regex, names, item in self.routes:
            m = regex.fullmatch(path)
            if not m:
                continue
            params = {n: urllib.parse.unquote(v) for n, v in zip(names, m.groups())}
            if method in item:
                op = item[method]
                return Route("operation", op["operationId"], op.get("responses", {}), op, item,
                             template, params)
            category = "other-method"
            return Route(category, "x-unrouted-responses/" + category,
                         self.unrouted[category]["responses"], None, item, template, params)
        category = "unknown-path"
        return Route(category, "x-unrouted-responses/" + category,
                     self.unrouted[category]["responses"])

    def response_for(self, route, status):
        """(where, response object) documenting `status` for this route, or (None, None)."""
        status = str(status)
        for key in (status, status[0] + "XX", "default"):
            if key in route.responses:
                return route.key, self.resolve(route.responses[key])
        any_request = self.unrouted.get("any-request", {}).get("responses", {})
        if status in any_request:
            return "x-unrouted-responses/any-request", self.resolve(any_request[status])
        return None, None

    def operations(self):
        """(template, method, operation) for every operation."""
        for template, _, _, item in self.routes:
            for method in METHODS:
                if method in item:
                    yield template, method, item[method]

    # ---- validation ----

    def schema_errors(self, schema, instance):
        validator = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in sorted(validator.iter_errors(instance), key=lambda e: list(e.path))]

    def typed_value(self, schema, text):
        """A header or query value (text) as the type its schema names, if it converts."""
        schema = self.resolve(schema)
        types = schema.get("type")
        types = types if isinstance(types, list) else [types]
        if "integer" in types and re.fullmatch(r"-?[0-9]+", text):
            return int(text)
        return text

    def check_response(self, method, target, response):
        """Problems (strings) of one real response against the document; [] when it matches."""
        route = self.route(method, target)
        where, doc_response = self.response_for(route, response.status)
        label = f"{method} {target[:80]} -> {response.status} ({route.key})"
        if doc_response is None:
            return [f"{label}: status {response.status} is not documented for this operation"]
        self.seen.add((where, str(response.status)))
        problems = []
        headers = response.headers
        for name, header in doc_response.get("headers", {}).items():
            if name.lower() == "content-type":
                continue  # described by `content`
            header = self.resolve(header)
            value = headers.get(name.lower())
            if value is None:
                if header.get("required"):
                    problems.append(f"{label}: required header {name} is missing")
                continue
            for e in self.schema_errors(header.get("schema", {}),
                                        self.typed_value(header.get("schema", {}), value)):
                problems.append(f"{label}: header {name}: {value!r}: {e}")
        content = doc_response.get("content") or {}
        content_type = headers.get("content-type")
        if not content:
            if content_type is not None:
                problems.append(f"{label}: Content-Type {content_type} where no content is "
                                f"documented")
            if response.body:
                problems.append(f"{label}: a body where no content is documented")
            return problems
        if content_type is None:
            return problems + [f"{label}: no Content-Type; documented: {list(content)}"]
        media = self.media_type(content, content_type)
        if media is None:
            return problems + [f"{label}: Content-Type {content_type} is not documented "
                               f"({list(content)})"]
        schema = content[media].get("schema")
        if schema is None:
            return problems
        if media.split(";")[0].strip().endswith("json"):
            try:
                instance = json.loads(response.body)
            except ValueError as e:
                return problems + [f"{label}: body is not JSON: {e}"]
        else:
            instance = response.body.decode("utf-8")
        problems += [f"{label}: body: {e}" for e in self.schema_errors(schema, instance)]
        return problems

    @staticmethod
    def media_type(content, content_type):
        """The key of `content` that the response's Content-Type matches, or None."""
        norm = ";".join(p.strip() for p in content_type.lower().split(";"))
        for key in content:
            if ";".join(p.strip() for p in key.lower().split(";")) == norm:
                return key
        base = norm.split(";")[0]
        for key in content:
            if ";" not in key and key.lower() == base:
                return key
        return None

    def check_request(self, method, target, headers, body):
        """Problems of a request against its operation: parameters, security, request body."""
        route = self.route(method, target)
        label = f"request {method} {target[:80]}"
        if route.operation is None:
            return [f"{label}: no operation for this request ({route.key})"]
        op = route.operation
        problems = []
        params = {}
        for p in route.path_item.get("parameters", []) + op.get("parameters", []):
            p = self.resolve(p)
            params[(p["in"], p["name"].lower() if p["in"] == "header" else p["name"])] = p
        security = op.get("security", self.doc.get("security", []))
        schemes = self.doc.get("components", {}).get("securitySchemes", {})
        query_keys = {schemes[name]["name"] for req in security for name in req
                      if schemes[name]["type"] == "apiKey" and schemes[name]["in"] == "query"}
        query = urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query,
                                       keep_blank_values=True)
        got = {("path", k): v for k, v in route.path_params.items()}
        for k, v in query:
            if ("query", k) in params:
                got[("query", k)] = v
            elif k not in query_keys:
                problems.append(f"{label}: query parameter {k!r} is not documented")
        lower = {k.lower(): v for k, v in headers.items()}
        for (where, name), p in params.items():
            if where == "header" and name in lower:
                got[(where, name)] = lower[name]
            if (where, name) not in got:
                if p.get("required"):
                    problems.append(f"{label}: required {where} parameter {name} is missing")
                continue
            value = got[(where, name)]
            for e in self.schema_errors(p.get("schema", {}),
                                        self.typed_value(p.get("schema", {}), value)):
                problems.append(f"{label}: {where} parameter {name}={value!r}: {e}")
        if security and not any(self.credentials_present(req, schemes, lower, query)
                                for req in security):
            problems.append(f"{label}: carries none of the credentials its security requires")
        request_body = self.resolve(op.get("requestBody", {}))
        if body is not None:
            content = request_body.get("content", {})
            if not content:
                problems.append(f"{label}: sends a body, but the operation documents none")
            elif "application/json" in content:
                try:
                    instance = json.loads(body)
                except ValueError as e:
                    problems.append(f"{label}: body is not JSON: {e}")
                else:
                    problems += [f"{label}: body: {e}" for e in
                                 self.schema_errors(content["application/json"]["schema"],
                                                    instance)]
        elif request_body.get("required"):
            problems.append(f"{label}: the request body is required")
        return problems

    @staticmethod
    def credentials_present(requirement, schemes, headers, query):
        for name in requirement:
            scheme = schemes[name]
            if scheme["type"] == "http" and scheme["scheme"].lower() == "bearer":
                if not headers.get("authorization", "").lower().startswith("bearer "):
                    return False
            elif scheme["type"] == "apiKey" and scheme["in"] == "query":
                if not any(k == scheme["name"] for k, _ in query):
                    return False
            elif scheme["type"] == "apiKey" and scheme["in"] == "header":
                if "bearer." not in headers.get(scheme["name"].lower(), ""):
                    return False
            else:
                return False
        return True


# --------------------------------------------------------------------------------------------
# A small HTTP/1.1 client over a socket: every byte of the request is the test's choice
# --------------------------------------------------------------------------------------------


class Response:

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> value
        self.body = body

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return (f"<{self.status} {self.reason} {self.headers} "
                f"{self.body[:300].decode('utf-8', 'replace')}>")


def build_request(method, target, headers=(), body=None, port=0):
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    names = {k.lower() for k, _ in headers}
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    if "connection" not in names:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def read_response(sock, timeout=WAIT):
    """Reads one response from `sock` (after a 101 only its head)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response head: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    _, status, reason = (lines[0].split(" ", 2) + [""])[:3]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = (headers[name] + ", " if name in headers else "") + value.strip()
    status = int(status)
    if status == 101:
        return Response(status, reason, headers, b"")
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Response(status, reason, headers, rest[:length])


def exchange(port, request, sock=None):
    """Sends `request` (bytes) on a new connection (or `sock`) and reads one response."""
    own = sock is None
    if own:
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole request was sent
        return read_response(sock)
    finally:
        if own:
            sock.close()


def upgrade_headers(key=None, version="13"):
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key or "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", version)]


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------


def schema_objects(doc):
    """(path, schema) of every Schema Object of an OpenAPI document."""
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        yield ("components", "schemas", name), schema
    for path, node in walk(doc):
        if isinstance(node, dict) and isinstance(node.get("schema"), dict) and \
                "schemas" not in path:
            yield path + ("schema",), node["schema"]


def document_problems(doc):
    """What python3-jsonschema and the rules of this project find wrong in a document."""
    problems = []
    api = OpenApi(doc)
    if not str(doc.get("openapi", "")).startswith("3.1."):
        problems.append(f"openapi is {doc.get('openapi')!r}, not 3.1.x")
    for path, schema in schema_objects(doc):
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            problems.append(f"{'/'.join(map(str, path))}: not a JSON Schema 2020-12: {e.message}")
    for path, node in walk(doc):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            try:
                api.resolve(node)
            except (KeyError, IndexError, ValueError) as e:
                problems.append(f"{'/'.join(map(str, path))}: unresolved $ref {node['$ref']}: {e}")
    schemes = doc.get("components", {}).get("securitySchemes", {})
    ids = []
    for template, method, op in api.operations():
        label = f"{method.upper()} {template}"
        ids.append(op.get("operationId"))
        responses = op.get("responses") or {}
        if not responses:
            problems.append(f"{label}: no responses")
        security = op.get("security", doc.get("security", []))
        for req in security:
            for name in req:
                if name not in schemes:
                    problems.append(f"{label}: unknown security scheme {name}")
        if security and not {"401", "403"} <= set(responses):
            problems.append(f"{label}: needs a token but does not document 401 and 403")
        if not security and "401" in responses:
            problems.append(f"{label}: public, yet documents 401")
    for dup in {i for i in ids if ids.count(i) > 1}:
        problems.append(f"operationId {dup} is not unique")
    if None in ids:
        problems.append("an operation has no operationId")
    for category in ("any-request", "other-method", "unknown-path"):
        if not doc.get("x-unrouted-responses", {}).get(category, {}).get("responses"):
            problems.append(f"x-unrouted-responses/{category} is missing")
    return problems


def validate_api(path):
    """Runs @seriousme/openapi-schema-validator on a document file: (valid, output)."""
    command = find_validate_api()
    if command is None:
        raise AssertionError(
            f"the OpenAPI validator is not installed: npm install -g {NPM_VALIDATOR} "
            f"(or set POSSYNC_OPENAPI_VALIDATOR to its validate-api command)")
    out = subprocess.run(command + [path], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    try:
        result = json.loads(out.stdout)
    except ValueError:
        raise AssertionError(f"validate-api answered no JSON (exit {out.returncode}):\n"
                             f"{out.stdout}\n{out.stderr}") from None
    return out.returncode == 0 and result.get("valid") is True, out.stdout


class OpenApiDocumentTest(unittest.TestCase):

    def test_document_is_valid_openapi_3_1(self):
        valid, output = validate_api(DOC_PATH)
        self.assertTrue(valid, output)
        with open(DOC_PATH, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        self.assertEqual(document_problems(doc), [])

    def test_the_document_checks_reject_broken_documents(self):
        with open(DOC_PATH, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        with tempfile.TemporaryDirectory() as tmp:
            # Structural mistakes: the OpenAPI 3.1 schema (validate-api) must refuse them.
            structural = {
                "status code not a code": lambda d: d["paths"]["/api/health"]["get"][
                    "responses"].update({"2000": {"description": "x"}}),
                "no info": lambda d: d.pop("info"),
                "operation by $ref": lambda d: d["paths"]["/api/sync"].update(
                    {"put": {"$ref": "#/paths/~1api~1sync/post"}}),
                "parameter without in": lambda d: d["components"]["parameters"][
                    "QuerySince"].pop("in"),
            }
            for name, mutate in structural.items():
                with self.subTest(name):
                    broken = copy.deepcopy(doc)
                    mutate(broken)
                    path = os.path.join(tmp, "broken.json")
                    with open(path, "w") as f:
                        json.dump(broken, f)
                    valid, output = validate_api(path)
                    self.assertFalse(valid, f"validate-api accepted: {name}")
            # Mistakes the OpenAPI schema does not look into: the checks here must find them.
            semantic = {
                "schema type misspelt": lambda d: d["components"]["schemas"]["Error"].update(
                    {"type": "objekt"}),
                "dangling $ref": lambda d: d["components"]["responses"]["Forbidden"][
                    "content"]["application/json"]["schema"]["allOf"][0].update(
                    {"$ref": "#/components/schemas/Nope"}),
                "protected operation without 401": lambda d: d["paths"]["/api/sync"]["post"][
                    "responses"].pop("401"),
                "duplicate operationId": lambda d: d["paths"]["/api/ready"]["get"].update(
                    {"operationId": "getHealth"}),
            }
            for name, mutate in semantic.items():
                with self.subTest(name):
                    broken = copy.deepcopy(doc)
                    mutate(broken)
                    self.assertNotEqual(document_problems(broken), [], name)


class OpenApiGlueTest(unittest.TestCase):
    """The response check itself: made-up responses that break the document must be reported."""

    HEADERS = {"server": "possync", "access-control-allow-origin": "*",
               "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
               "access-control-allow-headers": "Content-Type, Authorization",
               "content-type": "application/json"}

    def response(self, status, body, **headers):
        h = dict(self.HEADERS)
        for k, v in headers.items():
            k = k.replace("_", "-")
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Response(status, "", h, raw)

    def test_wrong_responses_are_reported(self):
        api = OpenApi.load()
        health = {"status": "ok", "timestamp": "2025-06-10T14:07:00.000Z",
                  "connectedRestaurants": 0, "totalConnections": 0}
        error = {"status": "error", "code": "unauthorized", "message": "no token",
                 "timestamp": "2025-06-10T14:07:00.000Z"}
        good = [
            ("GET", "/api/health", self.response(200, health)),
            ("GET", "/api/restaurants/R/status",
             self.response(401, error, www_authenticate='Bearer realm="possync"')),
            ("GET", "/nope", self.response(404, dict(error, code="not_found"))),
            ("PUT", "/api/health",
             self.response(405, dict(error, code="method_not_allowed"), allow="GET, HEAD")),
        ]
        for method, target, res in good:
            with self.subTest(good=(method, target, res.status)):
                self.assertEqual(api.check_response(method, target, res), [])
        bad = {
            "undocumented status": ("GET", "/api/health", self.response(201, health)),
            "wrong content type": ("GET", "/api/health",
                                   self.response(200, health, content_type="text/html")),
            "no content type": ("GET", "/api/health",
                                self.response(200, health, content_type=None)),
            "missing field": ("GET", "/api/health",
                              self.response(200, {k: v for k, v in health.items()
                                                  if k != "totalConnections"})),
            "extra field": ("GET", "/api/health", self.response(200, dict(health, extra=1))),
            "wrong type": ("GET", "/api/health",
                           self.response(200, dict(health, totalConnections="3"))),
            "bad timestamp": ("GET", "/api/health",
                              self.response(200, dict(health, timestamp="yesterday"))),
            "not JSON": ("GET", "/api/health", self.response(200, b"{oops")),
            "missing Server": ("GET", "/api/health", self.response(200, health, server=None)),
            "wrong CORS methods": ("GET", "/api/health", self.response(
                200, health, access_control_allow_methods="GET")),
            "401 without challenge": ("GET", "/api/restaurants/R/status",
                                      self.response(401, error)),
            "403 with another code": ("GET", "/api/restaurants/R/status",
                                      self.response(403, error)),
            "405 without Allow": ("PUT", "/api/health",
                                  self.response(405, dict(error, code="method_not_allowed"))),
            "unknown error code": ("GET", "/nope", self.response(404, dict(error, code="gone"))),
            "body on 204": ("OPTIONS", "/api/health",
                            self.response(204, b"{}", content_type=None)),
            "metrics not Prometheus": ("GET", "/metrics", self.response(
                200, b"<html>", content_type="text/plain; version=0.0.4")),
        }
        for name, (method, target, res) in bad.items():
            with self.subTest(bad=name):
                self.assertNotEqual(api.check_response(method, target, res), [], name)
        # Requests: an undocumented parameter, a missing token, a body that breaks the schema.
        self.assertNotEqual(api.check_request("GET", "/api/restaurants/R/changes?sinse=1",
                                              {"Authorization": "Bearer x"}, None), [])
        self.assertNotEqual(api.check_request("GET", "/api/restaurants/R/changes", {}, None), [])
        self.assertNotEqual(api.check_request(
            "POST", "/api/sync", {"Authorization": "Bearer x"},
            json.dumps({"restaurant_id": "R", "changes": []})), [])
        self.assertEqual(api.check_request(
            "GET", "/api/restaurants/R/changes?since=3&limit=10&token=x", {}, None), [])


# --------------------------------------------------------------------------------------------
# The real server
# --------------------------------------------------------------------------------------------


class OpenApiResponsesTest(ServerTestCase):
    """Every endpoint of a running server, success and error cases, against the document."""

    maxDiff = None

    def setUp(self):
        self.api = OpenApi.load()
        self._tokens = {}

    # ---- tokens, from the binary's own `token issue` ----

    def issue(self, server, restaurant, device, role):
        key = (server.key_file, restaurant, device, role)
        if key not in self._tokens:
            out = subprocess.run([SERVER_BIN, "--jwt-secret-file", server.key_file, "token",
                                  "issue", "--restaurant", restaurant, "--device", device,
                                  "--role", role, "--ttl", "1h"],
                                 capture_output=True, text=True, timeout=WAIT,
                                 stdin=subprocess.DEVNULL)
            self.assertEqual(out.returncode, 0, out.stderr)
            self._tokens[key] = out.stdout.strip()
        return self._tokens[key]

    # ---- one checked exchange ----

    def refuses_non_admins(self, server, method, target, *, expired, manager):
        """An admin operation: no token 401 unauthorized, an expired one 401 token_expired, a
        manager's 403 forbidden."""
        self.call(server, method, target, status=401, code="unauthorized", request=None)
        self.call(server, method, target, token=expired, status=401, code="token_expired",
                  request=None)
        self.call(server, method, target, token=manager, status=403, code="forbidden",
                  request=None)

    def call(self, server, method, target, *, token=None, body=None, headers=(), status,
             code=None, request="valid", sock=None, raw=None):
        """Sends one request, checks the response against the document, and returns it.

        token: sent as Authorization: Bearer. body: dict/list (JSON) or bytes/str.
        status, code: what this case expects (the document check comes on top).
        request: "valid" (the request must satisfy the document), "invalid" (it must break it:
        the server refuses what the document forbids), or None (not checked, e.g. a wrong token).
        raw: exact request bytes to send instead of building them.
        """
        hdrs = list(headers)
        if token is not None:
            hdrs.append(("Authorization", "Bearer " + token))
        payload = None
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            hdrs.append(("Content-Type", "application/json"))
        elif isinstance(body, str):
            payload = body.encode()
            hdrs.append(("Content-Type", "application/json"))
        elif body is not None:
            payload = body
        data = raw if raw is not None else build_request(method, target, hdrs, payload,
                                                         server.port)
        res = exchange(server.port, data, sock)
        label = f"{method} {target[:100]} expecting {status} {code or ''}"
        with self.subTest(label):
            self.assertEqual(res.status, status, f"{label}: {res!r}")
            if code is not None:
                self.assertEqual((res.json or {}).get("code"), code, f"{label}: {res!r}")
            self.assertEqual(self.api.check_response(method, target, res), [])
            if request is not None:
                problems = self.api.check_request(method, target, dict(hdrs),
                                                  payload.decode() if payload else None)
                if request == "valid":
                    self.assertEqual(problems, [], f"{label}: the request breaks the document")
                else:
                    self.assertNotEqual(problems, [],
                                        f"{label}: refused, but the document allows it")
        return res

    def upgrade(self, server, target, *, token=None, status, code=None, request="valid",
                headers=None, sock=None, keep=False):
        """A WebSocket handshake; on 101 the socket is returned open (closed unless `keep`)."""
        hdrs = list(headers if headers is not None else upgrade_headers())
        if token is not None:
            hdrs.append(("Authorization", "Bearer " + token))
        own = sock is None
        if own:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        try:
            self.call(server, "GET", target, status=status, code=code, request=request,
                      raw=build_request("GET", target, hdrs, None, server.port), sock=sock,
                      headers=hdrs)
        except BaseException:
            sock.close()
            raise
        if keep and status == 101:
            return sock
        if own:
            sock.close()
        return None

    # ---- scenarios ----

    def seed(self, server, restaurant, device, token):
        """A few committed changes (orders, a user with a PIN, a table) through POST /api/sync."""
        body = {"restaurant_id": restaurant, "device_id": device, "user_id": "u-anna",
                "changes": [
                    data_change("orders", "o-1", "created", change_id="c-1", status="open",
                                total_amount=25.5, items=[{"name": "pizza", "qty": 2}]),
                    data_change("users", "u-7", "created", change_id="c-2", name="Ben",
                                pin="1234", role="waiter"),
                    {"type": "table_update", "table_id": "t-4", "action": "occupied",
                     "data": {"seats": 4}, "change_id": "c-3"},
                ]}
        res = self.call(server, "POST", "/api/sync", token=token, body=body, status=200)
        self.assertEqual([r["status"] for r in res.json["results"]], ["applied"] * 3)

    def wait_status_devices(self, server, restaurant, token, n):
        deadline = time.monotonic() + WAIT
        while True:
            res = exchange(server.port, build_request(
                "GET", f"/api/restaurants/{restaurant}/status",
                [("Authorization", "Bearer " + token)], None, server.port))
            if res.status == 200 and res.json["device_count"] == n:
                return
            self.assertLess(time.monotonic(), deadline, f"device count never {n}: {res!r}")
            time.sleep(0.02)

    def probes_and_metrics(self, server, admin, manager):
        self.call(server, "GET", "/api/health", status=200)
        self.call(server, "GET", "/api/health", token="not-even-a-jwt", status=200,
                  request=None)  # public: a bad token is not read
        self.call(server, "GET", "/api/ready", status=200)
        self.call(server, "GET", "/metrics", token=admin, status=200)
        self.call(server, "GET", "/metrics?token=" + q(admin), status=200)
        self.call(server, "GET", "/metrics", status=401, code="unauthorized", request=None)
        self.call(server, "GET", "/metrics", token=manager, status=403, code="forbidden",
                  request=None)

    def restaurant_endpoints(self, server, admin, manager, other, expired):
        rid = "rest-1"
        for what in ("status", "data", "changes"):
            path = f"/api/restaurants/{rid}/{what}"
            # Not yet existing.
            self.call(server, "GET", path, token=manager, status=404, code="not_found")
        self.seed(server, rid, "mgr-1", manager)
        for what in ("status", "data", "changes"):
            path = f"/api/restaurants/{rid}/{what}"
            self.call(server, "GET", path, token=manager, status=200)
            self.call(server, "GET", path, token=admin, status=200)
            self.call(server, "GET", path + "?token=" + q(manager), status=200)
            self.call(server, "GET", path, status=401, code="unauthorized", request=None)
            self.call(server, "GET", path, token="garbage", status=401, code="token_invalid",
                      request=None)
            self.call(server, "GET", path, token=expired, status=401, code="token_expired",
                      request=None)
            self.call(server, "GET", path, token=other, status=403, code="forbidden",
                      request=None)
            self.call(server, "GET", f"/api/restaurants/r%01x/{what}", token=admin,
                      status=400, code="invalid_field", request="invalid")
            self.call(server, "GET", f"/api/restaurants/{'x' * 129}/{what}", token=admin,
                      status=400, code="invalid_field", request="invalid")
            self.call(server, "GET", path + "?x=%zz", token=admin, status=400,
                      code="bad_request", request=None)
        base = f"/api/restaurants/{rid}/changes"
        res = self.call(server, "GET", base + "?since=1&limit=1", token=manager, status=200)
        self.assertEqual((len(res.json["changes"]), res.json["has_more"]), (1, True))
        self.call(server, "GET", base + "?since=3", token=manager, status=200)
        for bad in ("since=-1", "since=abc", "limit=0", "limit=1001", "limit=x"):
            self.call(server, "GET", f"{base}?{bad}", token=manager, status=400,
                      code="invalid_field", request="invalid")
        res = self.call(server, "GET", base + "?since=99", token=manager, status=410,
                        code="reset_required")
        self.assertEqual(res.json["seq"], 3)
        # A connected device shows in status; a restaurant with only a connection exists.
        ws = self.upgrade(server, "/ws?restaurant_id=rest-2&device_id=kds-1&user_id=u-1",
                          token=self.issue(server, "rest-2", "kds-1", "kds"), status=101,
                          keep=True)
        try:
            self.wait_status_devices(server, "rest-2", admin, 1)
            res = self.call(server, "GET", "/api/restaurants/rest-2/status", token=admin,
                            status=200)
            self.assertEqual(res.json["connected_devices"][0]["user_id"], "u-1")
            res = self.call(server, "GET", "/api/admin/restaurants", token=admin, status=200)
            self.assertEqual([(r["restaurant_id"], r["connections"], r["devices"], r["seq"])
                              for r in res.json["restaurants"]], [("rest-2", 1, 1, 0)])
            res = self.call(server, "GET", "/api/admin/restaurants/rest-2/devices", token=admin,
                            status=200)
            self.assertEqual([(c["device_id"], c["role"], c["user_id"], c["observer"])
                              for c in res.json["connections"]], [("kds-1", "kds", "u-1", False)])
            self.call(server, "GET", "/api/restaurants/rest-2/data", token=admin, status=200)
            self.call(server, "GET", "/api/restaurants/rest-2/changes", token=admin,
                      status=200)
            res = self.call(server, "POST",
                            "/api/admin/restaurants/rest-2/disconnect?device_id=kds-1",
                            token=admin, status=200)
            self.assertEqual(res.json["disconnected"], 1)
        finally:
            ws.close()

    def sync_endpoint(self, server, admin, manager, other, expired):
        rid = "rest-3"
        pos = self.issue(server, rid, "pos-3", "pos")
        kds = self.issue(server, rid, "kds-3", "kds")
        body = {"restaurant_id": rid, "device_id": "pos-3", "changes": [
            data_change("orders", "o-1", "created", change_id="s-1", status="open"),
            {"type": "order_update", "order_id": 7, "action": "status_changed",
             "data": {"status": "preparing"}, "change_id": "s-2"},
            {"type": "menu_update", "item_id": "m-1", "action": "created",
             "data": {"name": "Margherita"}},
        ]}
        res = self.call(server, "POST", "/api/sync", token=pos, body=body, status=200)
        self.assertEqual([r["status"] for r in res.json["results"]], ["applied"] * 3)
        # The same again: duplicates (the third had no change_id, so it is new again).
        res = self.call(server, "POST", "/api/sync", token=pos, body=body, status=200)
        self.assertEqual([r["status"] for r in res.json["results"]],
                         ["duplicate", "duplicate", "applied"])
        # A conflict (carries `current`), a refused role, and entries rejected by validation.
        mixed = {"restaurant_id": rid, "device_id": "kds-3", "changes": [
            dict(data_change("orders", "o-1", "updated", change_id="s-3", status="paid"),
                 base_version=99),
            data_change("menu_items", "m-2", "created", change_id="s-4", name="Calzone"),
        ]}
        res = self.call(server, "POST", "/api/sync", token=kds, body=mixed, status=200)
        self.assertEqual([(r["status"], r["error"]["code"]) for r in res.json["results"]],
                         [("rejected", "conflict"), ("rejected", "forbidden")])
        self.assertEqual(res.json["results"][0]["current"]["id"], "o-1")
        # Restaurant rules: a rejection carrying `current`, a print job answered `duplicate`, and
        # a stock alert the server commits (its log entry has an empty device_id).
        rules = {"restaurant_id": rid, "device_id": "pos-3", "changes": [
            data_change("orders", "o-1", "completed", change_id="s-6", status="completed"),
            data_change("orders", "o-1", "updated", change_id="s-7", note="late"),
            data_change("printers", "p-1", "print_job", change_id="s-8", ticket_id="T-1"),
            data_change("printers", "p-1", "print_job", change_id="s-9", ticket_id="T-1"),
            data_change("inventory", "i-1", "adjust", change_id="s-10", delta=-1),
        ]}
        res = self.call(server, "POST", "/api/sync", token=pos, body=rules, status=200)
        self.assertEqual([(r["status"], r.get("error", {}).get("code"))
                          for r in res.json["results"]],
                         [("applied", None), ("rejected", "order_closed"), ("applied", None),
                          ("duplicate", None), ("applied", None)])
        self.assertEqual(res.json["results"][1]["current"]["status"], "completed")
        self.assertEqual(res.json["results"][3]["seq"], res.json["results"][2]["seq"])
        res = self.call(server, "GET", f"/api/restaurants/{rid}/changes", token=pos, status=200)
        alert = res.json["changes"][-1]
        self.assertEqual((alert["action"], alert["device_id"], alert["change_id"]),
                         ("negative_stock", "", "s-10:negative_stock"))
        invalid_entries = {"restaurant_id": rid, "device_id": "pos-3", "changes": [
            {"data_type": "recipes", "action": "created", "data": {"id": "r-1"}},
            data_change("orders", "o-2", "exploded", change_id="s-5"),
            "not an object",
            {"type": "ping", "data": {}},
        ]}
        res = self.call(server, "POST", "/api/sync", token=pos, body=invalid_entries,
                        status=200, request="invalid")
        self.assertEqual([r["error"]["code"] for r in res.json["results"]],
                         ["unknown_data_type", "unknown_action", "invalid_message",
                          "unknown_type"])
        self.assertEqual(res.json["results"][0]["change_id"], "")
        self.call(server, "POST", "/api/sync", token=pos,
                  body={"restaurant_id": rid, "device_id": "pos-3", "changes": []}, status=200)
        self.call(server, "POST", "/api/sync", token=admin, body=body, status=200)
        self.call(server, "POST", "/api/sync?token=" + q(pos), body=body, status=200)
        # Request errors.
        cases = [
            ("{not json", "invalid_json"),
            ("[1, 2]", "invalid_message"),
            ({"device_id": "pos-3", "changes": []}, "missing_field"),
            ({"restaurant_id": rid, "changes": []}, "missing_field"),
            ({"restaurant_id": rid, "device_id": "pos-3"}, "missing_field"),
            ({"restaurant_id": rid, "device_id": "pos-3", "changes": None}, "missing_field"),
            ({"restaurant_id": 5, "device_id": "pos-3", "changes": []}, "invalid_field"),
            ({"restaurant_id": "r\u0001", "device_id": "pos-3", "changes": []},
             "invalid_field"),
            ({"restaurant_id": rid, "device_id": "pos-3", "changes": "x"}, "invalid_field"),
        ]
        for payload, code in cases:
            self.call(server, "POST", "/api/sync", token=admin, body=payload, status=400,
                      code=code, request="invalid")
        self.call(server, "POST", "/api/sync?x=%zz", token=admin, body=body, status=400,
                  code="bad_request", request=None)
        self.call(server, "POST", "/api/sync", body=body, status=401, code="unauthorized",
                  request=None)
        self.call(server, "POST", "/api/sync", token=expired, body=body, status=401,
                  code="token_expired", request=None)
        self.call(server, "POST", "/api/sync", token=other, body=body, status=403,
                  code="forbidden", request=None)
        self.call(server, "POST", "/api/sync", token=self.issue(server, rid, "pos-9", "pos"),
                  body=body, status=403, code="forbidden", request=None)  # another device
        too_many = {"restaurant_id": rid, "device_id": "pos-3",
                    "changes": [data_change("orders", f"o{i}", "created") for i in range(1001)]}
        self.call(server, "POST", "/api/sync", token=pos, body=too_many, status=413,
                  code="payload_too_large", request="invalid")
        # A body over --max-body-bytes: refused on its Content-Length, before it is sent.
        self.call(server, "POST", "/api/sync", token=pos, status=413,
                  code="payload_too_large", request=None,
                  headers=[("Content-Type", "application/json"),
                           ("Content-Length", str(2 * 1024 * 1024))])

    def admin_endpoints(self, server, admin, manager, expired):
        self.call(server, "GET", "/api/admin/restaurants", token=admin, status=200)
        self.call(server, "GET", "/api/admin/restaurants?token=" + q(admin), status=200)
        self.call(server, "GET", "/api/admin/restaurants", status=401, code="unauthorized",
                  request=None)
        self.call(server, "GET", "/api/admin/restaurants", token=manager, status=403,
                  code="forbidden", request=None)
        path = "/api/admin/restaurants/rest-1/disconnect"
        res = self.call(server, "POST", path, token=admin, status=200)
        self.assertEqual(res.json, {"restaurant_id": "rest-1", "disconnected": 0})
        self.call(server, "POST", path + "?device_id=pos-1", token=admin, status=200)
        self.refuses_non_admins(server, "POST", path, expired=expired, manager=manager)
        self.call(server, "POST", "/api/admin/restaurants/r%7Fx/disconnect", token=admin,
                  status=400, code="invalid_field", request="invalid")
        self.call(server, "POST", path, token=admin, status=413, code="payload_too_large",
                  request=None, headers=[("Content-Length", str(2 * 1024 * 1024))])
        # The connections of one restaurant (with a device: restaurant_endpoints).
        devices = "/api/admin/restaurants/rest-1/devices"
        res = self.call(server, "GET", devices, token=admin, status=200)
        self.assertEqual(res.json["connections"], [])
        self.call(server, "GET", devices + "?token=" + q(admin), status=200)
        self.refuses_non_admins(server, "GET", devices, expired=expired, manager=manager)
        self.call(server, "GET", "/api/admin/restaurants/r%7Fx/devices", token=admin,
                  status=400, code="invalid_field", request="invalid")
        self.call(server, "GET", "/api/admin/restaurants/nowhere/devices", token=admin,
                  status=404, code="not_found")

    def console_files(self, server):
        self.call(server, "GET", "/admin", status=301)
        page = self.call(server, "GET", "/admin/", status=200)
        for name in ("app.js", "admin.css", "index.html"):
            res = self.call(server, "GET", "/admin/" + name, status=200)
        self.call(server, "GET", "/admin/index.html", status=304,
                  headers=[("If-None-Match", res.headers["etag"])])
        self.call(server, "GET", "/admin/", status=304,
                  headers=[("If-None-Match", page.headers["etag"])])
        self.call(server, "GET", "/admin/nope.js", status=404, code="not_found")

    def legacy_devices(self, server, admin, manager, expired):
        base = "/api/admin/restaurants/rest-1/legacy-devices"
        one = base + "/till-1"
        self.call(server, "GET", base, token=admin, status=200)
        res = self.call(server, "PUT", one, token=admin, status=201,
                        body={"networks": ["192.168.1.0/24", "2001:db8::/48"], "role": "pos"})
        self.assertEqual(res.json["disconnected"], 0)
        self.call(server, "PUT", one, token=admin, status=200, body={"role": "kds"})
        self.call(server, "PUT", base + "/till-2", token=admin, status=201)  # no body
        self.call(server, "PUT", base + "/till-3?token=" + q(admin), status=201,
                  body={"networks": None, "role": None})
        res = self.call(server, "GET", base, token=admin, status=200)
        self.assertEqual([d["device_id"] for d in res.json["legacy_devices"]],
                         ["till-1", "till-2", "till-3"])
        res = self.call(server, "GET", one, token=admin, status=200)
        self.assertEqual((res.json["role"], res.json["networks"]), ("kds", []))
        for body, code in (({"networks": ["10.1.0.0/8"]}, "invalid_network"),
                           ({"role": "admin"}, "invalid_role"),
                           ({"roles": "pos"}, "invalid_field"),
                           ("{oops", "invalid_json"),
                           ("[]", "invalid_message")):
            self.call(server, "PUT", one, token=admin, body=body, status=400, code=code,
                      request="invalid" if code != "invalid_network" else "valid")
        self.call(server, "PUT", base + "/x%01", token=admin, status=400, code="invalid_field",
                  request="invalid")
        self.call(server, "GET", base.replace("rest-1", "r%7Fx"), token=admin, status=400,
                  code="invalid_field", request="invalid")
        self.call(server, "GET", base + "/x%01", token=admin, status=400, code="invalid_field",
                  request="invalid")
        self.call(server, "DELETE", base + "/x%01", token=admin, status=400,
                  code="invalid_field", request="invalid")
        for method, path in (("GET", base), ("GET", one), ("PUT", one), ("DELETE", one)):
            self.refuses_non_admins(server, method, path, expired=expired, manager=manager)
        res = self.call(server, "DELETE", one, token=admin, status=200)
        self.assertEqual(res.json, {"restaurant_id": "rest-1", "device_id": "till-1",
                                    "removed": True, "disconnected": 0})
        self.call(server, "DELETE", one, token=admin, status=404, code="not_found")
        self.call(server, "GET", one, token=admin, status=404, code="not_found")
        res = self.call(server, "POST", one, token=admin, status=405, request=None)
        self.assertEqual(res.headers.get("allow"), "GET, HEAD, PUT, DELETE")
        res = self.call(server, "DELETE", base, token=admin, status=405, request=None)
        self.assertEqual(res.headers.get("allow"), "GET, HEAD")

    def websocket_upgrades(self, server, admin, manager, other, expired):
        rid = "rest-1"
        pos = self.issue(server, rid, "pos-1", "pos")
        for base in ("/ws", "/"):
            ok = f"{base}?restaurant_id={rid}&device_id=pos-1"
            self.upgrade(server, ok, token=pos, status=101)
            self.upgrade(server, f"{ok}&since=2&user_id=u-anna", token=pos, status=101)
            self.upgrade(server, f"{ok}&token={q(pos)}", status=101)
            self.upgrade(server, base, token=pos, status=101)  # ids from the token
            # A read-only observer; an admin one is named after its token's device.
            self.upgrade(server, f"{ok}&observe=1", token=pos, status=101)
            self.upgrade(server, f"{base}?restaurant_id={rid}&observe=true", token=admin,
                         status=101)
            self.upgrade(server, f"{ok}&observe=yes", token=pos, status=400,
                         code="invalid_field", request="invalid")
            # The token in Sec-WebSocket-Protocol, as browsers send it.
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
            try:
                res = exchange(server.port, build_request(
                    "GET", ok, upgrade_headers() + [
                        ("Sec-WebSocket-Protocol", f"possync, bearer.{pos}")],
                    None, server.port), sock)
            finally:
                sock.close()
            with self.subTest(f"{base} subprotocol token"):
                self.assertEqual((res.status, res.headers.get("sec-websocket-protocol")),
                                 (101, "possync"))
                self.assertEqual(self.api.check_response("GET", ok, res), [])
                self.assertEqual(self.api.check_request(
                    "GET", ok, dict(upgrade_headers() + [
                        ("Sec-WebSocket-Protocol", f"possync, bearer.{pos}")]), None), [])
            self.upgrade(server, f"{ok}&since=abc", token=pos, status=400, code="invalid_field",
                         request="invalid")
            self.upgrade(server, base, token=admin, status=400, code="missing_field",
                         request=None)  # an admin token for '*' names no restaurant
            self.upgrade(server, f"{base}?restaurant_id=r%01&device_id=d", token=admin,
                         status=400, code="invalid_field", request="invalid")
            self.upgrade(server, ok, token=pos, status=400, code="bad_request",
                         headers=upgrade_headers(key="short"), request="invalid")
            self.upgrade(server, ok, status=401, code="unauthorized", request=None)
            self.upgrade(server, ok, token=expired, status=401, code="token_expired",
                         request=None)
            self.upgrade(server, ok, token="x.y.z", status=401, code="token_invalid",
                         request=None)
            self.upgrade(server, ok, token=other, status=403, code="forbidden", request=None)
            self.upgrade(server, f"{base}?restaurant_id={rid}&device_id=pos-2", token=pos,
                         status=403, code="forbidden", request=None)
            self.upgrade(server, ok, token=pos, status=426, code="bad_request",
                         headers=upgrade_headers(version="8"), request="invalid")
            # Without the upgrade headers it is a REST request to a path without endpoint.
            self.call(server, "GET", ok, token=pos, status=404, code="not_found",
                      request="invalid")
            self.call(server, "GET", base, status=404, code="not_found", request=None)
            # A malformed target: 400 bad_request, upgrade or not.
            self.upgrade(server, f"{base}?x=%zz", token=pos, status=400, code="bad_request",
                         request=None)
            self.call(server, "GET", f"{base}?x=%zz", token=pos, status=400,
                      code="bad_request", request=None)

    def unrouted(self, server, admin, manager):
        # Preflight on every documented path and on unknown ones; no token needed.
        for template in self.api.doc["paths"]:
            path = (template.replace("{restaurant_id}", "rest-1").replace("{device_id}", "pos-1")
                    .replace("{file}", "app.js"))
            self.call(server, "OPTIONS", path, status=204,
                      headers=[("Origin", "https://pos.example"),
                               ("Access-Control-Request-Method", "POST")])
        self.call(server, "OPTIONS", "/no/such/path", status=204, request=None)
        # Methods a path does not serve.
        other_methods = [
            ("POST", "/api/health", None, 405), ("DELETE", "/api/ready", None, 405),
            ("POST", "/metrics", manager, 405), ("POST", "/metrics", None, 401),
            ("GET", "/api/sync", admin, 405), ("PUT", "/api/sync", None, 401),
            ("POST", "/api/admin/restaurants", admin, 405),
            ("POST", "/api/admin/restaurants", manager, 405),
            ("GET", "/api/admin/restaurants/rest-1/disconnect", admin, 405),
            ("PATCH", "/api/restaurants/rest-1/status", manager, 405),
            ("POST", "/api/restaurants/rest-1/data", admin, 405),
            ("DELETE", "/api/restaurants/rest-1/changes", admin, 405),
            ("POST", "/ws", admin, 404), ("PUT", "/", admin, 404),
            ("POST", "/admin/", None, 405), ("DELETE", "/admin/app.js", admin, 405),
            ("POST", "/api/admin/restaurants/rest-1/devices", admin, 405),
        ]
        for method, path, token, status in other_methods:
            res = self.call(server, method, path, token=token, status=status, request=None)
            if status == 405:
                self.assertIn(res.headers.get("allow"), ("GET, HEAD", "POST"))
        # Unknown paths.
        for path in ("/nope", "/api", "/api/restaurants/rest-1", "/api/restaurants/rest-1/x",
                     "/api/health/x", "/api/admin/nope"):
            for token in (admin, manager, None):
                self.call(server, "GET", path, token=token, status=404, code="not_found",
                          request=None)
        self.upgrade(server, "/socket?restaurant_id=rest-1&device_id=pos-1", status=404,
                     code="not_found", request=None)
        # Refused before routing: malformed request line, bad target, headers over 16 KiB,
        # a body over the limit on an endpoint that reads none.
        self.call(server, "GARBAGE", "/", status=400, code="bad_request", request=None,
                  raw=b"GARBAGE\r\n\r\n")
        self.call(server, "GET", "/api/health?q=%zz", status=400, code="bad_request",
                  request=None)
        self.call(server, "GET", "/api/health", status=431, code="payload_too_large",
                  request=None, headers=[("X-Padding", "a" * 17000)])
        self.call(server, "GET", "/api/health", status=413, code="payload_too_large",
                  request=None, headers=[("Content-Length", str(2 * 1024 * 1024))])

    def cors_list(self):
        """--cors-origins with a list: the origin is echoed with Vary, others get Vary only."""
        server = self.start_server(store="memory",
                                   extra_args=["--cors-origins", "https://pos.example"])
        for origin, allowed in (("https://pos.example", True), ("https://evil.example", False)):
            for method, path, status in (("GET", "/api/health", 200),
                                         ("OPTIONS", "/api/sync", 204),
                                         ("GET", "/api/restaurants/x/status", 401)):
                res = self.call(server, method, path, status=status, request=None,
                                headers=[("Origin", origin)])
                self.assertEqual(res.headers.get("vary"), "Origin")
                self.assertEqual(res.headers.get("access-control-allow-origin"),
                                 origin if allowed else None)
        server.stop()

    def rate_limits(self):
        """429 on every operation (request rate), and on upgrades (connection caps)."""
        server = self.start_server(store="memory", extra_args=[
            "--ip-request-rate", "1", "--ip-request-burst", "1",
            "--max-connections-per-ip", "1"])
        admin = self.issue(server, "*", "admin-1", "admin")
        for template, method, op in self.api.operations():
            if "429" not in op["responses"]:
                continue
            path = template.replace("{restaurant_id}", "rest-1").replace("{device_id}", "pos-1")
            if op["operationId"].startswith("openWebSocket"):
                # Upgrades count against the connection caps, not the request rate.
                token = self.issue(server, "rest-1", "pos-1", "pos")
                first = self.upgrade(server, path, token=token, status=101, keep=True)
                try:
                    self.upgrade(server, path, token=token, status=429,
                                 code="too_many_connections")
                finally:
                    first.close()
                deadline = time.monotonic() + WAIT
                while True:  # the cap is released once the server saw the close
                    res = exchange(server.port, build_request("GET", "/api/health", [], None,
                                                              server.port))
                    if res.status == 200 and res.json["totalConnections"] == 0:
                        break
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.1)
                continue
            body = None
            if method == "post" and path == "/api/sync":
                body = {"restaurant_id": "rest-1", "device_id": "pos-1", "changes": []}
            deadline = time.monotonic() + WAIT
            while True:
                res = exchange(server.port, build_request(
                    method.upper(), path, [("Authorization", "Bearer " + admin)],
                    json.dumps(body).encode() if body else None, server.port))
                if res.status == 429:
                    break
                self.assertLess(time.monotonic(), deadline, f"{path} never answered 429")
            with self.subTest(f"{method.upper()} {path} 429"):
                self.assertEqual(res.json["code"], "rate_limited")
                self.assertEqual(self.api.check_response(method.upper(), path, res), [])
        # A preflight is limited as well (before routing: x-unrouted-responses/any-request).
        deadline = time.monotonic() + WAIT
        while True:
            res = exchange(server.port, build_request("OPTIONS", "/api/sync", [], None,
                                                      server.port))
            if res.status == 429:
                break
            self.assertLess(time.monotonic(), deadline, "OPTIONS never answered 429")
        with self.subTest("OPTIONS 429"):
            self.assertEqual(self.api.check_response("OPTIONS", "/api/sync", res), [])
        server.stop()
        # A connection opened faster than --ip-connect-rate: 429 to its first request.
        server = self.start_server(store="memory", extra_args=[
            "--ip-connect-rate", "1", "--ip-connect-burst", "1"])
        token = self.issue(server, "rest-1", "pos-1", "pos")
        deadline = time.monotonic() + WAIT
        while True:
            res = exchange(server.port, build_request("GET", "/ws", upgrade_headers() + [
                ("Authorization", "Bearer " + token)], None, server.port))
            if res.status == 429:
                break
            self.assertLess(time.monotonic(), deadline, "the connect rate never answered 429")
        with self.subTest("upgrade over the connect rate"):
            self.assertEqual(res.json["code"], "rate_limited")
            self.assertEqual(self.api.check_response("GET", "/ws", res), [])
        server.stop()

    def store_trouble(self):
        """POST /api/sync answers 503: `overloaded` while the commit queue is full, and
        `store_unavailable` with per-change results when the store cannot commit.

        The store is stalled by holding SQLite's write lock from here (the server's writer waits
        up to its 5 s busy timeout, then gives up on that transaction)."""
        server = self.start_server(store="sqlite", extra_args=[
            "--max-queued-changes", "4", "--device-message-rate", "0"])
        token = self.issue(server, "rest-5", "pos-5", "pos")
        admin = self.issue(server, "*", "admin-1", "admin")
        self.call(server, "POST", "/api/sync", token=token, status=200, body={
            "restaurant_id": "rest-5", "device_id": "pos-5",
            "changes": [data_change("orders", "o-0", "created", change_id="w-0")]})
        ws = server.raw_ws("rest-5", "pos-6")
        lock = sqlite3.connect(server.store.removeprefix("sqlite:"), timeout=30,
                               isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        stalled = {}
        body = {"restaurant_id": "rest-5", "device_id": "pos-5",
                "changes": [data_change("orders", "o-1", "updated", change_id="w-1")]}

        def post_while_stalled():
            stalled["res"] = exchange(server.port, build_request(
                "POST", "/api/sync", [("Authorization", "Bearer " + token),
                                      ("Content-Type", "application/json")],
                json.dumps(body).encode(), server.port))

        def queued():
            text = exchange(server.port, build_request(
                "GET", "/metrics", [("Authorization", "Bearer " + admin)], None,
                server.port)).body.decode()
            return {name: float(value) for name, value in re.findall(
                r"^(possync_backpressure_closings_total|possync_queued_changes) (\S+)$", text,
                re.M)}

        thread = threading.Thread(target=post_while_stalled)
        try:
            thread.start()
            # The POST's change waits for the stalled writer before the queue is filled up.
            deadline = time.monotonic() + WAIT
            while queued()["possync_queued_changes"] < 1:
                self.assertLess(time.monotonic(), deadline, "the POST never queued its change")
                time.sleep(0.01)
            for i in range(12):
                ws.send_text(data_change("orders", "o-2", "updated", change_id=f"ws-{i}"))
            deadline = time.monotonic() + WAIT
            while queued()["possync_backpressure_closings_total"] < 1:
                self.assertLess(time.monotonic(), deadline, "the gate never closed")
                time.sleep(0.01)
            self.call(server, "POST", "/api/sync", token=token, status=503, code="overloaded",
                      body={"restaurant_id": "rest-5", "device_id": "pos-5",
                            "changes": [data_change("orders", "o-3", "created",
                                                    change_id="w-3")]})
            thread.join(WAIT)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
            thread.join(WAIT)
            ws.close()
        res = stalled["res"]
        with self.subTest("POST /api/sync while the store cannot commit"):
            self.assertEqual((res.status, res.json["code"]), (503, "store_unavailable"), res)
            self.assertEqual(res.json["results"][0]["error"]["code"], "store_unavailable")
            self.assertEqual(self.api.check_response("POST", "/api/sync", res), [])
        server.stop()

    def shutting_down(self, server, token):
        """After SIGTERM, an upgrade on a connection opened before is 503 `shutting_down`."""
        ws = self.upgrade(server, "/ws", token=token, status=101, keep=True)  # holds shutdown
        socks = []
        try:
            for _ in range(3):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
                socks.append(s)
                res = exchange(server.port, build_request("GET", "/api/health",
                                                          [("Connection", "keep-alive")], None,
                                                          server.port), s)
                self.assertEqual(res.status, 200)
            server.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + WAIT
            while True:  # the listener closes at once: then the server is stopping
                try:
                    socket.create_connection(("127.0.0.1", server.port), timeout=WAIT).close()
                except ConnectionRefusedError:
                    break
                self.assertLess(time.monotonic(), deadline, "still accepting after SIGTERM")
                time.sleep(0.01)
            for s, path in zip(socks, ("/ws", "/", "/no/such/path")):
                self.upgrade(server, path, token=token, status=503, code="shutting_down",
                             sock=s, request="valid" if path != "/no/such/path" else None)
        finally:
            for s in socks:
                s.close()
            ws.close()
        self.assertEqual(server.terminate(send_signal=False), 0)

    # ---- the test ----

    def test_every_endpoint_answers_as_the_document_says(self):
        server = self.start_server()
        admin = self.issue(server, "*", "admin-1", "admin")
        manager = self.issue(server, "rest-1", "mgr-1", "manager")
        other = self.issue(server, "rest-9", "pos-9", "pos")
        expired = server.token("rest-1", "pos-1", role="pos", ttl=-5)  # the CLI issues no past

        self.probes_and_metrics(server, admin, manager)
        self.restaurant_endpoints(server, admin, manager, other, expired)
        self.sync_endpoint(server, admin, manager, other, expired)
        self.admin_endpoints(server, admin, manager, expired)
        self.legacy_devices(server, admin, manager, expired)
        self.console_files(server)
        self.websocket_upgrades(server, admin, manager, other, expired)
        self.unrouted(server, admin, manager)
        self.shutting_down(server, self.issue(server, "rest-1", "pos-1", "pos"))
        self.cors_list()
        self.rate_limits()
        self.store_trouble()

        # Everything the document promises was seen, but for the listed exceptions.
        expected = set()
        for _, _, op in self.api.operations():
            for status in op["responses"]:
                expected.add((op["operationId"], status))
        for category, section in self.api.unrouted.items():
            if isinstance(section, dict) and "responses" in section:
                for status in section["responses"]:
                    expected.add(("x-unrouted-responses/" + category, status))
        missing = sorted(expected - self.api.seen - set(NOT_EXERCISED))
        self.assertEqual(missing, [], "documented, but never seen from the server")
        stale = sorted(set(NOT_EXERCISED) - expected)
        self.assertEqual(stale, [], "NOT_EXERCISED lists answers the document no longer has")


if __name__ == "__main__":
    unittest.main()
