"""The OpenAPI 3.1 document served at /api/v1/openapi.json (written by hand, route by route)."""

from __future__ import annotations

from typing import Any

from tuiexport.config import API_VERSION


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


_EXPORT_ID = {
    "name": "export_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
    "description": "The export ID.",
}
_LOG_ID = {
    "name": "log_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9A-Za-z]{4,32}$"},
    "description": "A run's log ID.",
}
_LINK_ID = {
    "name": "link_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": 999999999999999999},
    "description": "A share link's ID (see GET /api/v1/exports/{export_id}/links).",
}
_AUTH: list[dict[str, list[str]]] = [{"apiKey": []}]
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_FILE = {
    "description": "The export file (gzip-encoded when accepted and the file is not a ZIP).",
    "headers": {
        "ETag": {
            "schema": {"type": "string"},
            "description": 'SHA-256 of the file ("-gz" when gzipped).',
        },
        "Content-Disposition": {"schema": {"type": "string"}},
        "Last-Modified": {"schema": {"type": "string"}},
        "X-Log-Id": {
            "schema": {"type": "string"},
            "description": "The history entry of this request.",
        },
    },
    "content": {
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"description": "The export as one JSON document."}},
        "application/jsonl": {
            "schema": {"type": "string", "description": "One JSON object per line."}
        },
        "application/xml": {"schema": {"type": "string", "description": "XML or BMEcat 1.2."}},
        _XLSX: {"schema": {"type": "string", "format": "binary"}},
    },
}
_FILE["headers"].update(  # type: ignore[attr-defined]  # a dict literal above
    {
        "Repr-Digest": {
            "schema": {"type": "string"},
            "description": "RFC 9530: sha-256=:<base64>: of the whole file (of the gzip bytes "
            "when gzipped, then in the trailer).",
        },
        "Accept-Ranges": {
            "schema": {"type": "string"},
            "description": "bytes for finished files; none while a run streams.",
        },
        "X-Tuiexport-Unpublished": {
            "schema": {"type": "string"},
            "description": "Only when the run this request waited for was not published: "
            "'<logId>; status=failed' or '<logId>; status=held'; the file is then the last "
            "published one.",
        },
        "X-Tuiexport-Served-Run": {
            "schema": {"type": "string"},
            "description": "With X-Tuiexport-Unpublished: the log ID of the run whose file is "
            "served.",
        },
    }
)
_PARTIAL = {
    "description": "One byte range of a finished file (Range, If-Range with its ETag).",
    "headers": {
        "Content-Range": {"schema": {"type": "string"}},
        "Repr-Digest": {"schema": {"type": "string"}},
    },
    # No schema: a byte range of a JSON or XML file is not a JSON or XML document itself.
    "content": {
        media: {}
        for media in (
            "application/zip",
            "application/json",
            "application/jsonl",
            "application/xml",
            _XLSX,
        )
    },
}
_RANGE_HEADERS = [
    {
        "name": "Range",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "One range, bytes=N-M, bytes=N- or bytes=-N (finished files only).",
    },
    {
        "name": "If-Range",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "The ETag (or Last-Modified) the client's part came from.",
    },
]
_LINK = {"$ref": "#/components/schemas/Link"}
_LINK_ANSWER = {
    "description": "The link as it is now.",
    "content": {"application/json": {"schema": _LINK}},
}
_NAME_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 80}},
            },
            "example": {"name": "Shop A"},
        }
    },
}
_416 = _problem("The range lies outside the file; Content-Range says its length.")
_401 = _problem("No API key, or one that is unknown or revoked.")
_404 = _problem("Unknown export or run, or a wrong share token (indistinguishable on purpose).")
_503 = _problem(
    "Try again after Retry-After: more exports are running than the server allows (busy), the "
    "run is queued and no export process took it in time (queued), or the database does not "
    "answer (database-unreachable)."
)


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tuiexport share server",
            "version": API_VERSION,
            "description": "Share URLs of product-data exports, API-triggered runs and their status. "
            "Errors are RFC 9457 problem details (application/problem+json).",
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Create a key with 'tuiexport apikey create NAME'.",
                }
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "Run": {
                    "type": "object",
                    "required": ["logId", "exportId", "status", "trigger", "started", "statusUrl"],
                    "properties": {
                        "logId": {"type": "string"},
                        "exportId": {"type": "string"},
                        "exportName": {"type": "string"},
                        "trigger": {"enum": ["tui", "cli", "api"]},
                        "status": {
                            "enum": [
                                "queued",
                                "running",
                                "success",
                                "warning",
                                "failed",
                                "cancelled",
                                "interrupted",
                                "held",
                                "discarded",
                            ]
                        },
                        "started": {"type": "string", "format": "date-time"},
                        "finished": {"type": ["string", "null"], "format": "date-time"},
                        "apiVersion": {"type": "string"},
                        "profile": {"type": "string"},
                        "output": {"type": "string"},
                        "fileFormat": {"type": "string"},
                        "productCount": {"type": "integer"},
                        "omittedCount": {"type": "integer"},
                        "size": {"type": ["integer", "null"]},
                        "sha256": {"type": ["string", "null"]},
                        "messages": {"type": "array", "items": {"type": "string"}},
                        "statusUrl": {"type": "string"},
                        "fileUrl": {"type": ["string", "null"]},
                        "delta": {
                            "description": "A delta (issue 12): the cursor it answered, the "
                            "full run it brings the consumer to, and its counts; null for "
                            "a full run.",
                            "type": ["object", "null"],
                            "properties": {
                                "since": {"type": "string"},
                                "base": {"type": "string"},
                                "added": {"type": "integer"},
                                "changed": {"type": "integer"},
                                "removed": {"type": "integer"},
                            },
                        },
                        "notifications": {
                            "description": "Webhook and email notifications of the run (GET "
                            "/runs/{logId} only), with every delivery attempt.",
                            "type": "array",
                            "items": {"type": "object"},
                        },
                    },
                },
                "Export": {
                    "type": "object",
                    "required": ["exportId", "name", "valid", "reasons"],
                    "properties": {
                        "exportId": {"type": "string"},
                        "name": {"type": "string"},
                        "profile": {"type": "string"},
                        "output": {"type": "string"},
                        "fileFormat": {"type": "string"},
                        "language": {"type": "string"},
                        "selection": {"type": ["string", "null"]},
                        "productLimit": {"type": "integer"},
                        "valid": {"type": "boolean"},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        "shareUrl": {
                            "type": ["string", "null"],
                            "description": "The URL of the first active share link (null: "
                            "every link was revoked).",
                        },
                        "links": {
                            "description": "The active share links, oldest first.",
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "linkId": {"type": "integer"},
                                    "name": {"type": "string"},
                                    "url": {"type": "string"},
                                },
                            },
                        },
                        "created": {"type": "string", "format": "date-time"},
                        "updated": {"type": "string", "format": "date-time"},
                        "lastRun": {
                            "oneOf": [{"$ref": "#/components/schemas/Run"}, {"type": "null"}]
                        },
                    },
                },
                "Link": {
                    "type": "object",
                    "required": ["linkId", "exportId", "name", "url", "created", "revoked"],
                    "properties": {
                        "linkId": {"type": "integer"},
                        "exportId": {"type": "string"},
                        "name": {"type": "string"},
                        "url": {
                            "type": ["string", "null"],
                            "description": "The share URL (its token names the link); null "
                            "once revoked.",
                        },
                        "created": {"type": "string", "format": "date-time"},
                        "rotated": {"type": ["string", "null"], "format": "date-time"},
                        "revoked": {"type": ["string", "null"], "format": "date-time"},
                        "lastFetch": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "(list only) When its newest whole download began.",
                        },
                        "lastLogId": {"type": ["string", "null"]},
                        "got": {
                            "type": ["string", "null"],
                            "description": "(list only) What that download got: full (the file) or delta.",
                        },
                        "gotRun": {
                            "type": ["string", "null"],
                            "description": "(list only) The run whose file it got (of a delta: the run it brought the "
                            "consumer to).",
                        },
                        "fetches7d": {"type": "integer"},
                        "lastSeen": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "(list only) Its last request of any kind (a 304 "
                            "or a HEAD too) when newer than lastFetch; written once a minute.",
                        },
                        "usualInterval": {
                            "type": ["number", "null"],
                            "description": "(list only) Seconds: the median gap between its "
                            "last 11 downloads (null below 3).",
                        },
                        "overdue": {"type": "boolean"},
                        "warning": {"type": ["string", "null"]},
                    },
                },
            },
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness check",
                    "responses": {
                        "200": {
                            "description": "The server answers.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"const": "ok"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
                    },
                }
            },
            "/api/v1/exports": {
                "get": {
                    "summary": "Export definitions with validity, reasons and last run",
                    "security": _AUTH,
                    "responses": {
                        "200": {
                            "description": "All definitions.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "apiVersion": {"type": "string"},
                                            "exports": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Export"},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "401": _401,
                    },
                }
            },
            "/api/v1/exports/{export_id}/download": {
                "get": {
                    "summary": "Share URL: the export's current file (the last artifact when nothing "
                    "changed since it was made, else a new run; streamed while it is produced "
                    "only when neither validation nor the publish gate applies, else answered "
                    "once it ended: its file, or the last published one when it was not published)",
                    "parameters": [
                        _EXPORT_ID,
                        {
                            "name": "token",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "The share token.",
                        },
                        {
                            "name": "since",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "pattern": "^[0-9A-Za-z]{4,32}$"},
                            "description": "A delta: only what changed since this log ID (the "
                            "X-Log-Id of the last file fetched), in the export's format, with "
                            "the removed puids. Its own X-Log-Id is the next cursor.",
                        },
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        *_RANGE_HEADERS,
                    ],
                    "responses": {
                        "200": _FILE,
                        "206": _PARTIAL,
                        "304": {"description": "Unchanged since the ETag given in If-None-Match."},
                        "400": _problem(
                            "A malformed query, e.g. the parameter name 'token' percent-encoded."
                        ),
                        "404": _404,
                        "416": _416,
                        "409": _problem(
                            "The definition is invalid ('reasons' says why), its format "
                            "answers no deltas (BMEcat, XLSX), or the publish gate held the new "
                            "run and no earlier file is left to serve ('logId')."
                        ),
                        "410": _problem(
                            "A delta's cursor (since) the server has no manifest for: fetch "
                            "the full feed and keep its X-Log-Id."
                        ),
                        "500": _problem(
                            "The run failed and no earlier file is left to serve; its history "
                            "entry ('logId') says why."
                        ),
                        "503": _503,
                    },
                }
            },
            "/api/v1/exports/{export_id}/runs": {
                "post": {
                    "summary": "Start a run; it continues in the background",
                    "security": _AUTH,
                    "parameters": [_EXPORT_ID],
                    "responses": {
                        "202": {
                            "description": "Started.",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["logId", "status", "statusUrl"],
                                        "properties": {
                                            "logId": {"type": "string"},
                                            "status": {"enum": ["queued", "running"]},
                                            "statusUrl": {"type": "string"},
                                            "fileUrl": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "401": _401,
                        "404": _404,
                        "409": _problem("The definition is invalid; 'reasons' says why."),
                        "413": _problem("The request body is too large."),
                        "503": _503,
                    },
                }
            },
            "/api/v1/exports/{export_id}/links": {
                "get": {
                    "summary": "The export's active share links, with how each one fetches",
                    "security": _AUTH,
                    "parameters": [_EXPORT_ID],
                    "responses": {
                        "200": {
                            "description": "The links, oldest first.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "apiVersion": {"type": "string"},
                                            "links": {"type": "array", "items": _LINK},
                                        },
                                    }
                                }
                            },
                        },
                        "401": _401,
                        "404": _404,
                    },
                },
                "post": {
                    "summary": "A new share link with its own token (one per consumer)",
                    "security": _AUTH,
                    "parameters": [_EXPORT_ID],
                    "requestBody": _NAME_BODY,
                    "responses": {
                        "201": {
                            "description": "Created.",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": _LINK}},
                        },
                        "400": _problem("No name, a name the export's links have, or bad JSON."),
                        "401": _401,
                        "404": _404,
                        "413": _problem("The request body is too large."),
                    },
                },
            },
            "/api/v1/exports/{export_id}/links/{link_id}": {
                "patch": {
                    "summary": "Rename a share link (its URL stays)",
                    "security": _AUTH,
                    "parameters": [_EXPORT_ID, _LINK_ID],
                    "requestBody": _NAME_BODY,
                    "responses": {
                        "200": _LINK_ANSWER,
                        "400": _problem(
                            "No name, a name another link has, bad JSON, or a revoked link."
                        ),
                        "401": _401,
                        "404": _problem("Unknown export, or no such link of this export."),
                        "413": _problem("The request body is too large."),
                    },
                },
                "delete": {
                    "summary": "Revoke a share link: its URL stops working, the others go on",
                    "security": _AUTH,
                    "parameters": [_EXPORT_ID, _LINK_ID],
                    "responses": {
                        "200": _LINK_ANSWER,
                        "401": _401,
                        "404": _problem("Unknown export, or no such link of this export."),
                    },
                },
            },
            "/api/v1/exports/{export_id}/links/{link_id}/rotate": {
                "post": {
                    "summary": "Give a share link a new token: its old URL stops working",
                    "security": _AUTH,
                    "parameters": [_EXPORT_ID, _LINK_ID],
                    "responses": {
                        "200": _LINK_ANSWER,
                        "400": _problem("The link was revoked."),
                        "401": _401,
                        "404": _problem("Unknown export, or no such link of this export."),
                    },
                }
            },
            "/api/v1/runs/{log_id}": {
                "get": {
                    "summary": "A run's status",
                    "security": _AUTH,
                    "parameters": [_LOG_ID],
                    "responses": {
                        "200": {
                            "description": "The run.",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Run"}}
                            },
                        },
                        "401": _401,
                        "404": _404,
                    },
                }
            },
            "/api/v1/runs/{log_id}/file": {
                "get": {
                    "summary": "A finished run's file",
                    "security": _AUTH,
                    "parameters": [_LOG_ID, *_RANGE_HEADERS],
                    "responses": {
                        "200": _FILE,
                        "206": _PARTIAL,
                        "304": {"description": "Unchanged since the ETag given in If-None-Match."},
                        "401": _401,
                        "416": _416,
                        "404": _404,
                        "409": _problem("The run is still running, or ended without a file."),
                        "410": _problem("Retention removed the file."),
                    },
                }
            },
            **{
                f"/api/v1/runs/{{log_id}}/{decision}": {
                    "post": {
                        "summary": summary,
                        "description": "A run the publish gate held (status held) waits for "
                        "the operator: approve publishes its file, discard deletes it.",
                        "security": _AUTH,
                        "parameters": [_LOG_ID],
                        "responses": {
                            "200": {
                                "description": "Decided; the run as it is now.",
                                "content": {
                                    "application/json": {
                                        "schema": {"$ref": "#/components/schemas/Run"}
                                    }
                                },
                            },
                            "401": _401,
                            "404": _404,
                            "409": _problem("The run is not held (any more)."),
                        },
                    }
                }
                for decision, summary in (
                    ("approve", "Publish a held run's file: it becomes the current artifact"),
                    ("discard", "Discard a held run: its file is deleted"),
                )
            },
        },
    }
