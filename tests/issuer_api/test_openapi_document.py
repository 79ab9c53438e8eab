"""docs/openapi.json is the API's own document: regenerate it with `make docs` after a change."""

from __future__ import annotations

from issuer_api.document import OUTPUT, rendered


def test_the_committed_document_is_the_generated_one() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == rendered(), "docs/openapi.json is out of date: run `make docs`"


def test_every_operation_has_a_summary_and_its_errors() -> None:
    import json

    document = json.loads(rendered())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path}"
            if path.startswith("/v1/issuers/"):
                assert {"401", "403"} <= set(operation["responses"]), f"{method.upper()} {path}"
                for status, answer in operation["responses"].items():
                    if status.startswith(("4", "5")):
                        assert "application/problem+json" in answer["content"], f"{method.upper()} {path} {status}"
