"""The document lists the answers the API gives: a 500 is no answer of the API but a bug."""

from tests.support import make_app


def test_no_operation_lists_a_500_and_the_document_says_why():
    app = make_app(**{"launchprov.provider": "tests.support:StubProvider"})
    document = app.get("/v1/openapi.json").json
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert "500" not in statuses, f"{method.upper()} {path}"
            assert "200" in statuses
    description = document["info"]["description"]
    assert "answered 500" in description and "a bug" in description
