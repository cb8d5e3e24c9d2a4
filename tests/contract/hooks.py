"""Schemathesis hooks for the contract run (loaded through schemathesis.toml)."""

import itertools
import json
import os
import re

import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation
from schemathesis.openapi.checks import RejectedPositiveData

# The spec documents an `application/x-ndjson` batch body as a string (OpenAPI 3.1 has no schema
# for a sequence of JSON texts); send that string as it is, like `text/plain`.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

# Refusals of schema-valid requests that the spec documents but JSON Schema cannot express.
# positive_data_acceptance reports them; each entry excuses exactly one documented refusal,
# matched on operation, status, problem type and detail, so any other rejection still fails.
ACCEPTED_REFUSALS = [
    # Generated requests reuse a few Idempotency-Key values ("0", ...) with different content:
    # the documented 422 is idempotency working, not a rejected request.
    ("POST", "/v1/publish/{broker}/{topic}", 422, "idempotency-mismatch", r""),
    ("POST", "/v1/publish/{broker}/{topic}/batch", 422, "idempotency-mismatch", r""),
    # The single-event route takes any media type (`*/*`) except the two batch ones, which it
    # refuses with 415 and points at `/batch`; OpenAPI cannot say "any but these".
    ("POST", "/v1/publish/{broker}/{topic}", 415, "unsupported-media-type", r"batches go to"),
    # Cursors (Last-Event-ID / lastEventId) are opaque tokens sidebus issues; a generated one is
    # malformed, and a cursor together with `group` is refused, both documented as 400.
    (
        "GET",
        "/v1/subscribe/{broker}/{topic}",
        400,
        "bad-request",
        r"cannot resume from|takes no cursor|is not a sidebus cursor",
    ),
    # Rules of a subscription JSON Schema cannot state: `broker` must be a broker the
    # configuration defines, initial_backoff at most max_backoff, dead_letter not the consumed
    # topic nor one the consumed pattern matches.
    (
        "PUT",
        "/v1/subscriptions/{name}",
        400,
        "bad-request",
        r"`broker`: no broker named .* is configured"
        r"|`retry\.initial_backoff`: must not exceed"
        r"|`dead_letter`: must differ from topic"
        r"|`dead_letter`: must not be a topic"
        # a size string above 4GiB (JSON Schema cannot compare a size written as text)
        r"|`rate_limit`: bytes_per_second must be at most 4GiB",
    ),
    # A filter's `sql` is a CESQL expression and its attribute names CloudEvents names: JSON
    # Schema cannot say which strings parse, so a generated one is refused as documented.
    ("PUT", "/v1/subscriptions/{name}", 400, "invalid-filter", r"filters"),
    ("GET", "/v1/subscribe/{broker}/{topic}", 400, "invalid-filter", r"filter"),
    # The event of an evaluation must be a CloudEvent by the rules `CloudEvent` describes in
    # words (RFC 3339 `time`, extension names, `specversion` 1.0, ...).
    ("POST", "/v1/filters/evaluate", 400, "bad-request", r"^event: "),
]

STRUCTURED = "application/cloudevents+json"

# Every LIMITED_EVERY-th request goes with the token of the `limited` principal (run.sh), whose
# scope and quota the spec cannot express: its 403s and 429s are documented answers.
LIMITED_TOKEN = os.environ.get("SIDEBUS_CONTRACT_LIMITED")
CONTRACT_TOKEN = os.environ.get("SIDEBUS_CONTRACT_TOKEN")
LIMITED_EVERY = 7
_calls = itertools.count()
_limited_cases = set()


@schemathesis.hook
def before_call(context, case, kwargs):
    """Sends some requests as the limited principal (never one whose credentials a check
    altered on purpose)."""
    headers = case.headers or {}
    if headers.get("Authorization") != f"Bearer {CONTRACT_TOKEN}":
        return
    if LIMITED_TOKEN is None or next(_calls) % LIMITED_EVERY:
        return
    headers["Authorization"] = f"Bearer {LIMITED_TOKEN}"
    _limited_cases.add(id(case))


def _problem(response):
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _ignored_binary_headers(failure, case):
    """A single publish in structured mode whose only schema violations are in its headers
    (and perhaps extra query parameters).

    The `ce-*` headers are binary-mode attributes; in structured mode the attributes are in the
    body and sidebus ignores those headers, as the spec says. The other headers of the operation
    either take any string (`Prefer`) or are refused when malformed (`Idempotency-Key`, which
    then never reaches this check), so an accepted request with only its headers negative had
    its violation in an ignored `ce-*` header. Its one query parameter, `key`, takes any
    string, so a negative query holds only parameters the spec does not name, which a publish
    ignores (schemathesis itself excuses those when they are the only violation).
    """
    meta = case.meta
    if not isinstance(failure, AcceptedNegativeData) or meta is None:
        return False
    if (case.operation.method.upper(), case.operation.path) != (
        "POST",
        "/v1/publish/{broker}/{topic}",
    ):
        return False
    if (case.media_type or "").split(";")[0].strip().lower() != STRUCTURED:
        return False
    negative = {
        location for location, info in meta.components.items() if info.mode.is_negative
    }
    return ParameterLocation.HEADER in negative and negative <= {
        ParameterLocation.HEADER,
        ParameterLocation.QUERY,
    }


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drops a failure that is one of ACCEPTED_REFUSALS or an ignored binary-mode header."""
    if _ignored_binary_headers(failure, case):
        return False
    if not isinstance(failure, RejectedPositiveData):
        return True
    problem = _problem(response)
    if problem is None:
        return True
    if id(case) in _limited_cases and (response.status_code, problem.get("type")) in {
        (403, "urn:sidebus:problem:forbidden"),
        (429, "urn:sidebus:problem:quota-exceeded"),
    }:
        return False
    method, path = case.operation.method.upper(), case.operation.path
    for want_method, want_path, status, slug, detail in ACCEPTED_REFUSALS:
        if (
            (method, path, response.status_code) == (want_method, want_path, status)
            and problem.get("type") == f"urn:sidebus:problem:{slug}"
            # A detail quotes generated values, which may hold line breaks.
            and re.search(detail, str(problem.get("detail", "")), re.DOTALL)
        ):
            return False
    return True
