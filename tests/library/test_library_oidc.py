"""Signing in through the school's identity provider, in a real headless Chromium: a real OpenID
Connect provider (oidc-provider-mock, built on Authlib's server) on `localhost`, the library on
`127.0.0.1` — two sites, so the browser withholds the SameSite=Strict session cookie on the
provider's redirect back, as Entra ID's or Google's would. The person signs in to the account
whose email the provider vouches for; nobody else gets in."""

import subprocess

import httpx
import pytest

from conftest import CLASSCAP, clean_env
from library_served import browser, served, wait_for  # noqa: F401  (the fixtures)


@pytest.fixture(scope="module")
def provider():
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread() as server:
        url = f"http://localhost:{server.server_port}"
        for sub, claims in (
            ("ann", {"email": "Teacher-A@School.example", "email_verified": True, "name": "Ann Archer"}),
            ("stranger", {"email": "stranger@elsewhere.example", "email_verified": True}),
            ("unverified", {"email": "teacher-b@school.example", "email_verified": False}),
        ):
            assert httpx.put(f"{url}/users/{sub}", json=claims).status_code == 204
        yield url


@pytest.fixture
def served_with(provider):
    return (["--oidc-issuer", provider, "--oidc-client-id", "classcap-library"],
            {"CLASSCAP_OIDC_CLIENT_SECRET": "a secret the provider was given"})


def through_the_school(browser, url, sub):
    """Signs in as `sub` at the provider from the library's sign-in page; the page it lands on."""
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(url + "/login")
    browser.find_element(By.ID, "oidc").click()
    field = wait_for(lambda: browser.find_elements(By.NAME, "sub"), what="the provider's form")[0]
    assert browser.current_url.startswith("http://localhost:"), "the provider is another site"
    field.send_keys(sub)
    field.submit()
    wait_for(lambda: browser.current_url.startswith(url) and "/login/oidc/callback" not in browser.current_url,
             what="the way back to the library")
    return browser.page_source


@pytest.mark.slow
def test_a_teacher_signs_in_through_the_school_and_only_a_known_verified_email_gets_in(served, browser, provider, tmp_path):
    from selenium.webdriver.common.by import By

    url, made, _ = served
    page = through_the_school(browser, url, "ann")
    assert "My recordings" in page, page[:500]
    assert browser.find_elements(By.CSS_SELECTOR, f"a[href='/r/{made['recording_id']}']"), "teacher-a's recording"
    browser.save_screenshot(str(tmp_path / "oidc-signed-in.png"))
    cookie = next(c for c in browser.get_cookies() if c["name"] == "classcap_library")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    refused = through_the_school(browser, url, "stranger")
    assert "There is no library account for stranger@elsewhere.example" in refused
    browser.get(url + "/")
    assert "/login" in browser.current_url, "the stranger has no session"

    unverified = through_the_school(browser, url, "unverified")
    assert "did not give a verified email address" in unverified


def test_half_a_school_sign_in_setup_is_one_sentence(tmp_path):
    env = clean_env(CLASSCAP_LIBRARY_DB=f"sqlite:///{tmp_path / 'lib.db'}", CLASSCAP_BUCKET="recordings")
    env.pop("CLASSCAP_OIDC_CLIENT_SECRET", None)
    done = subprocess.run([*CLASSCAP, "library", "serve", "--oidc-issuer", "https://login.example/tenant/v2.0",
                           "--oidc-client-id", "classcap"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "$CLASSCAP_OIDC_CLIENT_SECRET" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
