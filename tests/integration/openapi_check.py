"""Checks HTTP responses against docs/openapi.yaml.

conftest.py wraps requests.Session.send so that every response a daemon of
the suite sends (the API listener; never the DynamoDB listener, another
protocol) goes through `SPEC.check`: the status must be documented for the
route and method (or be one of `x-any-request-responses`, or for a path or
method the daemon does not route, `x-unrouted-responses`), the headers the
spec marks required must be there, the Content-Type must be documented and
the JSON body must validate against the schema. Problem documents must also
have `status` = the HTTP status (RFC 9457), `type` = the urn of their `code`,
and the headers their code's schema lists in `x-required-headers`.

Validators are built once per (route, method, status, media type).
"""

import json
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _pointer(doc, ref):
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported: {ref}")
    cur = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur


def _to_defs(node):
    """A copy of a schema with #/components/schemas/X references as #/$defs/X."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/components/schemas/"):
                out[k] = "#/$defs/" + v[len("#/components/schemas/"):]
            elif k.startswith("x-"):
                continue
            else:
                out[k] = _to_defs(v)
        return out
    if isinstance(node, list):
        return [_to_defs(v) for v in node]
    return node


class Spec:
    def __init__(self, doc):
        self.doc = doc
        self.defs = _to_defs(doc["components"]["schemas"])
        self.routes = []
        for template, item in doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            self.routes.append((re.compile(rx), template, item))
        # a problem code -> the headers its schema requires (x-required-headers)
        self.code_headers = {}
        for schema in doc["components"]["schemas"].values():
            code = schema.get("properties", {}).get("code", {}).get("const")
            if code is not None:
                self.code_headers[code] = tuple(schema.get("x-required-headers", ()))
        self._validators = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path=SPEC_PATH):
        with open(path) as f:
            return cls(yaml.safe_load(f))

    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            obj = _pointer(self.doc, obj["$ref"])
        return obj

    def operations(self):
        """(METHOD, template, operation) of every operation."""
        for template, item in self.doc["paths"].items():
            for m in METHODS:
                if m in item:
                    yield m.upper(), template, item[m]

    def _validator(self, key, schema):
        with self._lock:
            v = self._validators.get(key)
            if v is None:
                root = _to_defs(schema)
                root = dict(root) if isinstance(root, dict) else {"allOf": [root]}
                root["$defs"] = self.defs
                v = Draft202012Validator(root)
                self._validators[key] = v
            return v

    def _route(self, path):
        for rx, template, item in self.routes:
            if rx.match(path):
                return template, item
        return None, None

    def check(self, method, url, status, headers, content):
        """A list of what is wrong with this response (empty when it conforms)."""
        path = urlsplit(url).path
        template, item = self._route(path)
        status_key = str(status)
        where = f"{method} {path} -> {status}"
        responses = {}
        key_route = template
        if item is None:
            responses = self.doc.get("x-unrouted-responses", {})
            responses = {k: v for k, v in responses.items() if k == "404"}
            key_route = "(unrouted)"
        elif method.lower() not in item:
            responses = {k: v for k, v in self.doc.get("x-unrouted-responses", {}).items() if k == "405"}
            key_route = "(method)"
        else:
            responses = item[method.lower()].get("responses", {})
        resp = responses.get(status_key)
        if resp is None:
            resp = self.doc.get("x-any-request-responses", {}).get(status_key)
            key_route = "(any)"
        if resp is None:
            documented = ", ".join(sorted(responses))
            return [f"{where}: status {status} is not documented for {template or 'this path'} "
                    f"(documented: {documented or 'none'})"]
        resp = self.deref(resp)
        errors = []
        for name, h in (resp.get("headers") or {}).items():
            h = self.deref(h)
            value = headers.get(name)
            if value is None:
                if h.get("required"):
                    errors.append(f"{where}: required header {name} missing")
                continue
            if "schema" in h:
                v = self._validator(("header", key_route, method, status_key, name), h["schema"])
                for e in v.iter_errors(value):
                    errors.append(f"{where}: header {name}: {value!r}: {e.message}")
        if headers.get("X-Request-Id") is None and not any(e.endswith("X-Request-Id missing") for e in errors):
            errors.append(f"{where}: X-Request-Id missing")
        media = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        content_spec = resp.get("content")
        if not content_spec:
            if content:
                errors.append(f"{where}: a body where the spec documents none ({content[:200]!r})")
            return errors
        if media not in content_spec:
            errors.append(f"{where}: Content-Type {media!r} not documented ({', '.join(content_spec)})")
            return errors
        schema = content_spec[media].get("schema")
        if not media.endswith("json"):
            return errors
        try:
            body = json.loads(content)
        except ValueError as e:
            return errors + [f"{where}: body is not JSON ({e}): {content[:200]!r}"]
        if schema is not None:
            v = self._validator((key_route, method, status_key, media), schema)
            best = sorted(v.iter_errors(body), key=lambda e: len(list(e.absolute_path)))
            for e in best[:3]:
                loc = "/".join(str(p) for p in e.absolute_path) or "(body)"
                errors.append(f"{where}: {loc}: {_short(e)}; body {content[:300]!r}")
        if media == "application/problem+json" and isinstance(body, dict):
            if type(body.get("status")) is not int or body.get("status") != status:
                errors.append(f"{where}: problem status {body.get('status')!r} is not the HTTP status (RFC 9457)")
            code = body.get("code")
            if body.get("type") != f"urn:onceledger:problem:{code}":
                errors.append(f"{where}: problem type {body.get('type')!r} does not name its code {code!r}")
            for name in self.code_headers.get(code, ()):
                if headers.get(name) is None:
                    errors.append(f"{where}: {code} without its {name} header")
        return errors


def _short(err):
    """The deepest useful message of a jsonschema error (anyOf lists every branch)."""
    if err.context:
        # the branch that got furthest is the one the body meant
        deepest = max(err.context, key=lambda e: len(list(e.absolute_path)))
        return f"{err.message[:200]} (closest: {deepest.message[:300]})"
    return err.message[:500]


_spec = None
_spec_lock = threading.Lock()

# What did not conform, as found: failed by conftest.py at the end of the
# test (or of the session) that received it.
violations = []
_violations_lock = threading.Lock()


def record(method, url, status, headers, content):
    """Checks one response against the spec and keeps what is wrong with it."""
    problems = spec().check(method, url, status, headers, content)
    if problems:
        with _violations_lock:
            violations.extend(problems)


def mark():
    with _violations_lock:
        return len(violations)


def take(since):
    """The violations recorded since mark() returned `since`, removed."""
    with _violations_lock:
        new = violations[since:]
        del violations[since:]
        return new


def spec():
    global _spec
    with _spec_lock:
        if _spec is None:
            _spec = Spec.load()
        return _spec


def spec_without(pointer, key):
    """A Spec whose document lacks one member (the hook's self-test)."""
    with open(SPEC_PATH) as f:
        doc = yaml.safe_load(f)
    del _pointer(doc, pointer)[key]
    return Spec(doc)
