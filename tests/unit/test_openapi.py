"""The OpenAPI document and the router agree, route for route; the assembly helpers hold.

The app is built from its real factory (nothing is started: routes exist once it is built), and
its router is walked: a route the document does not describe, or an operation no route serves,
fails here.
"""

from __future__ import annotations

import jsonschema_rs
import pytest
from aiohttp import web

from heron_common import openapi as oa
from heron_common.settings import Settings
from heron_ingest import openapi
from heron_ingest.app import API_MODULES, create_app
from tests.support.testenv import TEST_SECRETS_KEY


def _settings() -> Settings:
    # The app seals channel secrets (on-call): it will not be built without a key.
    return Settings(admin_token="t", session_secret="s" * 32, secrets_keys=(TEST_SECRETS_KEY,))


@pytest.fixture(scope="module")
def app() -> web.Application:
    return create_app(_settings())


def test_every_route_is_described_and_every_operation_is_routed(app: web.Application) -> None:
    undocumented, unrouted = oa.differences(app[openapi.DOCUMENT], openapi.api_routes(app))
    assert not undocumented, f"routes the OpenAPI document does not describe: {sorted(undocumented)}"
    assert not unrouted, f"operations no route serves: {sorted(unrouted)}"
    assert len(oa.operations(app[openapi.DOCUMENT])) >= 80


def test_the_walk_sees_a_route_added_without_a_description(app: web.Application) -> None:
    extra = create_app(_settings())

    async def handler(_: web.Request) -> web.Response:
        return web.Response()

    extra.router.add_get("/v1/undescribed", handler)
    undocumented, _ = oa.differences(extra[openapi.DOCUMENT], openapi.api_routes(extra))
    assert undocumented == {("GET", "/v1/undescribed")}


def test_the_dashboard_and_badges_are_left_out_by_prefix(app: web.Application) -> None:
    every = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert any(p.startswith("/dashboard") for p in every) and any(p.startswith("/badge") for p in every)
    paths = app[openapi.DOCUMENT]["paths"]
    assert not [p for p in paths if not openapi.is_api(p)]
    assert "/v1/track" in paths and "/openapi.json" in paths and "/docs" in paths


def test_every_api_module_describes_its_routes() -> None:
    for module in API_MODULES:
        assert module.PATHS, module.__name__


def test_the_document_is_valid_openapi_3_1(app: web.Application) -> None:
    document = app[openapi.DOCUMENT]
    assert document["openapi"].startswith("3.1")
    ids = [op.get("operationId") for methods in document["paths"].values() for op in methods.values()]
    assert None not in ids and len(ids) == len(set(ids)), "every operation has a unique operationId"
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            assert op[oa.AUTH_FIELD] in oa._SECURITY, (method, path)
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(_template_names(path)), (method, path)
            for status, response in op["responses"].items():
                content = response.get("content", {})
                for media in content.values():
                    schema = media.get("schema")
                    if schema is not None and "$ref" not in schema:
                        jsonschema_rs.Draft202012Validator(schema)  # raises on an invalid schema
                if status.startswith(("4", "5")) and path not in ("/readyz", "/healthz"):  # a probe's answer
                    # An error is the error shape; a page answered to a browser (/ack/…) is HTML.
                    assert content and set(content) <= {"application/json", "text/html"}, (method, path, status)
                    if "application/json" in content:
                        schema = content["application/json"]["schema"]
                        assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def _template_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def test_every_error_has_the_error_shape() -> None:
    validator = jsonschema_rs.Draft202012Validator(oa.ERROR)
    assert validator.is_valid({"error": {"code": "not_found", "message": "no such thing"}})
    assert not validator.is_valid({"error": "not_found"})
    assert not validator.is_valid({"message": "x"})


def test_a_write_refuses_a_test_key_and_a_read_does_not() -> None:
    op = oa.operation("x", tag="t", responses={200: oa.NO_CONTENT})
    document = oa.assemble([{"/a": {"get": op, "post": op}}], title="t", version="1")
    assert "403" in document["paths"]["/a"]["post"]["responses"]
    assert "403" not in document["paths"]["/a"]["get"]["responses"]
    integration = oa.operation("x", tag="t", auth="key_or_test", responses={200: oa.NO_CONTENT})
    document = oa.assemble([{"/b": {"post": integration}}], title="t", version="1")
    assert "403" not in document["paths"]["/b"]["post"]["responses"]


def test_errors_follow_from_what_an_operation_takes() -> None:
    op = oa.operation(
        "x",
        tag="t",
        parameters=[oa.path_param("thing_id"), oa.LIMIT],
        body=oa.json_body(oa.OBJECT),
        errors={409: "busy"},
        responses={200: oa.NO_CONTENT},
    )
    assert set(op["responses"]) == {"200", "400", "401", "404", "408", "409", "413", "422", "429"}
    assert op["responses"]["409"]["description"] == "busy"
    assert "Retry-After" in op["responses"]["429"]["headers"]
    public = oa.operation("x", tag="t", auth="none", limited=False, responses={200: oa.NO_CONTENT})
    assert set(public["responses"]) == {"200"} and public["security"] == []


def test_one_operation_described_twice_is_a_mistake() -> None:
    op = oa.operation("x", tag="t", responses={200: oa.NO_CONTENT})
    with pytest.raises(ValueError, match="described twice"):
        oa.assemble([{"/a": {"get": op}}, {"/a": {"get": op}}], title="t", version="1")
    with pytest.raises(ValueError, match="not an HTTP method"):
        oa.assemble([{"/a": {"fetch": op}}], title="t", version="1")


def test_nullable() -> None:
    assert oa.nullable(oa.STRING) == {"type": ["string", "null"]}
    assert oa.nullable({"enum": ["a"]}) == {"anyOf": [{"enum": ["a"]}, {"type": "null"}]}


def test_the_docs_page_lists_every_operation_and_fetches_nothing(app: web.Application) -> None:
    page = openapi.docs_page(app[openapi.DOCUMENT])
    for path, methods in app[openapi.DOCUMENT]["paths"].items():
        for op in methods.values():
            assert f'id="{op["operationId"]}"' in page, path
    assert "<script" not in page and "http://" not in page and "https://" not in page
