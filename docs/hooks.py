"""MkDocs hooks: reference pages made from the code at build time.

`<!-- cardd:http-api -->` in a page becomes the service's endpoints, read from its
OpenAPI schema (`cardd.serve.app.openapi_schema`, built without a model), so the
HTTP reference cannot drift from the routes. The CLI reference is mkdocs-click's
(`::: mkdocs-click`), the Python reference mkdocstrings' (`::: cardd...`).
"""

from __future__ import annotations

import json

MARK = "<!-- cardd:http-api -->"


def _parameters(operation: dict) -> list[str]:
    rows = []
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        kinds = [s.get("type") for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
        rows.append(
            f"| `{parameter['name']}` | {parameter['in']} | {', '.join(filter(None, kinds))} | "
            f"{parameter.get('description', '')} |"
        )
    return rows


def http_reference() -> str:
    from cardd.serve.app import openapi_schema

    schema = openapi_schema()
    version = schema["info"]["version"]
    lines = [f"Schema version {version}; the service serves it at `/openapi.json`.", ""]
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            lines += [f"### `{method.upper()} {path}`", ""]
            summary = (operation.get("description") or operation.get("summary") or "").strip()
            if summary:
                lines += [summary, ""]
            body = operation.get("requestBody", {}).get("content", {})
            for kind, content in body.items():
                properties = content.get("schema", {}).get("properties", {})
                fields = ", ".join(f"`{f}`" for f in properties)
                lines += [f"Body: `{kind}`" + (f", fields {fields}" if fields else "") + ".", ""]
            rows = _parameters(operation)
            if rows:
                lines += ["| parameter | in | type | meaning |", "|---|---|---|---|", *rows, ""]
            answers = ", ".join(
                f"{code} ({', '.join(r.get('content', {})) or 'no body'})"
                for code, r in operation.get("responses", {}).items()
            )
            lines += [f"Answers: {answers}.", ""]
    lines += ["??? note \"The schema as JSON\"", "", "    ```json"]
    lines += ["    " + line for line in json.dumps(schema, indent=1).splitlines()]
    lines += ["    ```", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARK in markdown:
        markdown = markdown.replace(MARK, http_reference())
    return markdown
