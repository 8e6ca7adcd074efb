"""What a newcomer trips on in the first hour: every answer a clear one, every body one style."""

from __future__ import annotations

import json

import pytest

from tests.support import GOOD_AMI, StubProvider, assert_error_body, detail_names, make_app

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "t2.micro\u202e" looks like "t2.micro"


class Launching(StubProvider):
    """Launches whatever it is asked, and remembers the last request."""

    name = "launching"
    last = None

    def launch(self, request):
        Launching.last = request
        return ["i-1", "i-2"][: request.max_count]


@pytest.fixture
def app():
    Launching.last = None
    return make_app(**{"launchprov.provider": f"{__name__}:Launching"})


def put(app, body, status="*", **kw):
    return app.put(
        "/v1/launch", json.dumps(body), content_type="application/json", status=status, **kw
    )


LAUNCH = {"ami": GOOD_AMI, "instance_type": "t2.micro"}


# -- item 3: a listing filter's error reads as text, its template filled ----------------------


def test_a_bad_state_filter_names_the_value_and_the_choices(moto_ec2):
    response = make_app().get("/v1/instances?state=bogus", status=400)
    body = assert_error_body(response, 400)
    (description,) = [item["description"] for item in body["details"] if item["name"] == "state"]
    assert "${" not in description
    assert '"bogus" is not one of pending, running' in description


# -- item 8: JSON sent as a form ------------------------------------------------------------------


@pytest.mark.parametrize("text", ['{"ami": "ami-760aaa0f", "instance_type": "t2.micro"}', " [1]"])
def test_json_sent_as_a_form_says_which_content_type_to_send(app, text):
    response = app.put(
        "/v1/launch", text, content_type="application/x-www-form-urlencoded", status=400
    )
    body = assert_error_body(response, 400)
    assert "send Content-Type: application/json" in body["message"]
    assert body["details"][0]["location"] == "header"
    assert body["details"][0]["name"] == "Content-Type"
    assert Launching.last is None


def test_a_real_form_still_launches(app):
    app.put(
        "/v1/launch",
        "ami=ami-760aaa0f&instance_type=t2.micro",
        content_type="application/x-www-form-urlencoded",
        status=200,
    )
    assert Launching.last.instance_type == "t2.micro"


# -- item 9: identifiers refuse invisible characters; free text keeps them ----------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ami", GOOD_AMI + RLO),
        ("instance_type", "t2.micro" + RLO),
        ("key_name", "ops\u200b"),  # zero-width space
        ("security_groups", ["web", "ssh\u2028"]),  # line separator
        ("placement_group", "cluster\u2029"),  # paragraph separator
        ("tags", {"role" + RLO: "web"}),
        ("instance_type", "t2.micro\x07"),  # a control character
    ],
)
def test_an_identifier_with_an_invisible_character_is_a_400_naming_it(app, name, value):
    body = assert_error_body(put(app, {**LAUNCH, name: value}), 400)
    assert detail_names(body) == [name]
    assert "control or format" in body["details"][0]["description"]
    assert Launching.last is None


def test_an_invisible_character_in_a_form_is_refused_too(app):
    response = app.put(
        "/v1/launch",
        "ami=ami-760aaa0f&instance_type=t2.micro%E2%80%AE",
        content_type="application/x-www-form-urlencoded",
        status=400,
    )
    assert detail_names(assert_error_body(response, 400)) == ["instance_type"]


def test_user_data_takes_any_text_and_tag_values_visible_text(app):
    # Tag values are shown next to their keys (consoles, listings): what cannot be seen is
    # refused there as in every identifier (issue 24). user_data is a script: free text.
    text = f"\u05e9\u05dc\u05d5\u05dd {RLO}\u200b\tline\nnext"
    response = put(app, {**LAUNCH, "tags": {"note": text}}, status=400)
    assert detail_names(assert_error_body(response, 400)) == ["tags"]
    visible = "\u05e9\u05dc\u05d5\u05dd, clé"
    put(app, {**LAUNCH, "tags": {"note": visible}, "user_data": text}, status=200)
    assert Launching.last.tags == {"note": visible}
    assert Launching.last.user_data == text


def test_visible_non_ascii_identifiers_stay_accepted(app):
    put(app, {**LAUNCH, "key_name": "clé-équipe"}, status=200)
    assert Launching.last.key_name == "clé-équipe"


# -- item 11: one JSON style, a newline, a front door, and where the body is missing ------------


def test_every_body_is_one_line_of_spaced_json_and_a_newline(app):
    ok = put(app, LAUNCH, status=200)
    error = put(app, {"ami": GOOD_AMI}, status=400)
    for response in (ok, error, app.get("/healthz"), app.get("/nowhere", status=404)):
        assert response.text.endswith("}\n") or response.text.endswith("]\n"), response.text
        assert response.text.count("\n") == 1
        assert response.text == json.dumps(json.loads(response.text)) + "\n"


def test_the_root_points_to_the_document_and_the_docs(app):
    body = app.get("/", status=200).json
    assert body["openapi"] == "/v1/openapi.json"
    assert "docs" in body["docs"]
    app.get(body["openapi"], status=200)


def test_an_unknown_path_points_to_the_document(app):
    body = assert_error_body(app.get("/v2/launch", status=404), 404)
    assert "/v1/openapi.json" in body["message"]


def test_an_empty_json_body_is_missing_parameters_in_the_body(app):
    response = app.put("/v1/launch", "", content_type="application/json", status=400)
    body = assert_error_body(response, 400)
    assert {item["location"] for item in body["details"]} == {"body"}
    assert set(detail_names(body)) == {"ami", "instance_type"}


# -- a 404 for an id that lives in another region ------------------------------------------------


def test_a_404_names_the_region_it_looked_in_and_how_to_look_in_another(moto_ec2):
    app = make_app()
    (instance_id,) = app.put_json("/v1/launch", LAUNCH, status=200).json  # in us-east-1
    assert app.get(f"/v1/instances/{instance_id}", status=200).json["id"] == instance_id
    response = app.get(f"/v1/instances/{instance_id}?region=us-west-2", status=404)
    body = assert_error_body(response, 404)
    assert f"no instance {instance_id} in region us-west-2;" in body["message"]
    assert "?region=" in body["message"]
    assert detail_names(body) == ["id"]


def test_a_404_of_a_cloud_without_regions_says_nothing_of_them():
    app = make_app(
        **{"launchprov.provider": f"{__name__}:Missing", "launchprov.defaults.placement": "lon1"}
    )
    body = assert_error_body(app.get("/v1/instances/x-1", status=404), 404)
    assert "region" not in body["message"], body


class Missing(StubProvider):
    """Knows no instance; its placements are locations, not zones (no regions)."""

    name = "missing"
    placement_is_zone = False

    def describe(self, instance_id, region):
        from launchprov.providers.interface import InstanceNotFound

        raise InstanceNotFound(self.name, instance_id)
