from tests.helpers import World, login


def test_login_and_patient_list(client, world: World) -> None:
    response = login(client, "clinician@a.example.org")
    assert response.status_code == 302
    page = client.get("/patients")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "TestA0" in text
    assert "TestB0" not in text
