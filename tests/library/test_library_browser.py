"""The library in a real headless Chromium, as its users meet it: teacher A plays her recording,
comments at 0:05 and shares it with teacher B; B finds it, sees the marker and cannot share it
on; administrator C sees its details but not the video; A deletes it and it leaves storage.
Screenshots go to the test's temporary folder (pytest --basetemp keeps them)."""

import pytest

from library_served import PASSWORD, browser, served, served_with, wait_for  # noqa: F401  (the fixtures)


def sign_in(browser, url, user_id):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(url + "/login")
    browser.find_element(By.NAME, "user_id").send_keys(user_id)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait_for(lambda: "My recordings" in browser.page_source, what=f"{user_id}'s recordings")


def fetch_status(browser, path, method="GET", headers=None, body=None) -> int:
    """The status of a request the page's own script makes (the user's session, nothing else)."""
    return browser.execute_async_script(
        "const [path, method, headers, body, done] = arguments;"
        "fetch(path, {method, headers, body, credentials: 'same-origin', redirect: 'manual'})"
        ".then(r => done(r.status), e => done(String(e)));", path, method, headers or {}, body)


@pytest.mark.slow
def test_a_teacher_plays_comments_and_shares_a_colleague_watches_an_admin_cannot_and_the_owner_deletes(
        served, browser, s3, bucket, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, made, _ = served
    rid = made["recording_id"]
    # teacher A signs in, sees her recording and plays it
    sign_in(browser, url, "teacher-a")
    browser.find_element(By.CSS_SELECTOR, f"a[href='/r/{rid}']").click()
    video = wait_for(lambda: browser.find_elements(By.ID, "video"), what="the player")[0]
    wait_for(lambda: browser.execute_script("return arguments[0].readyState >= 2", video), what="the video to load")
    browser.execute_script("arguments[0].muted = true; arguments[0].play();", video)
    wait_for(lambda: browser.execute_script("return arguments[0].currentTime", video) > 1.0, what="playback to advance")
    browser.execute_script("arguments[0].pause();", video)
    duration = browser.execute_script("return arguments[0].duration", video)
    assert 7.5 < duration < 8.5
    # a click on the timeline at 0:05 picks the moment; she writes her comment there
    timeline = browser.find_element(By.ID, "timeline")
    width = timeline.size["width"]
    ActionChains(browser).move_to_element_with_offset(timeline, int(width * 5 / duration - width / 2), 0).click().perform()
    at = float(browser.find_element(By.ID, "comment-at").get_attribute("value"))
    assert abs(at - 5.0) < 0.1 and abs(browser.execute_script("return arguments[0].currentTime", video) - at) < 0.1
    browser.find_element(By.ID, "comment-text").send_keys("Good wait time after the question")
    browser.find_element(By.CSS_SELECTOR, "#comment-form button").click()
    marker = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#timeline .marker"), what="the marker")[0]
    assert abs(float(marker.get_attribute("data-at")) - 5.0) < 0.1
    # and shares it with teacher B
    Select(browser.find_element(By.ID, "share-with")).select_by_value("teacher-b")
    browser.find_element(By.CSS_SELECTOR, "#share-form button").click()
    wait_for(lambda: "Ben Baker" in browser.find_element(By.ID, "sharing").text, what="the share")
    offered = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#share-with option")]
    assert "admin-c" in offered and "teacher-b" not in offered, "a colleague it is shared with is not offered again"
    browser.save_screenshot(str(tmp_path / "1-teacher-a-player.png"))

    # teacher B finds it under Shared with me, sees the marker, has no share control
    sign_in(browser, url, "teacher-b")
    browser.find_element(By.LINK_TEXT, "Shared with me").click()
    browser.find_element(By.CSS_SELECTOR, f"a[href='/r/{rid}']").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#timeline .marker"), what="the marker B sees")
    assert "Good wait time after the question" in browser.page_source
    assert not browser.find_elements(By.ID, "share-form") and not browser.find_elements(By.ID, "delete-form")
    token = browser.find_element(By.NAME, "csrf").get_attribute("value")
    forged = fetch_status(browser, f"/r/{rid}/share", "POST", {"Content-Type": "application/x-www-form-urlencoded"},
                          f"csrf={token}&with_user=admin-c")
    assert forged == 403
    assert fetch_status(browser, f"/r/{rid}/video", headers={"Range": "bytes=0-9"}) == 206
    browser.save_screenshot(str(tmp_path / "2-teacher-b-shared.png"))

    # administrator C sees its details, but the video is refused
    sign_in(browser, url, "admin-c")
    browser.find_element(By.LINK_TEXT, "All recordings").click()
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-recording='{rid}']")
    assert "lab-2" in row.text and "teacher-a" in row.text and not row.find_elements(By.TAG_NAME, "a")
    browser.save_screenshot(str(tmp_path / "3-admin-c-details.png"))
    assert fetch_status(browser, f"/r/{rid}/video", headers={"Range": "bytes=0-9"}) == 403
    browser.get(f"{url}/r/{rid}")
    assert "has not been shared with you" in browser.page_source and not browser.find_elements(By.ID, "video")

    # teacher A deletes it: gone from the library and from storage
    sign_in(browser, url, "teacher-a")
    browser.get(f"{url}/r/{rid}")
    folder = made["manifest_key"].rsplit("/", 1)[0]
    browser.find_element(By.CSS_SELECTOR, "#delete-form button").click()
    browser.switch_to.alert.dismiss()  # she is asked first; saying no keeps it
    assert browser.find_elements(By.ID, "video") and s3.list_objects_v2(Bucket=bucket, Prefix=folder + "/")["KeyCount"] >= 2
    browser.find_element(By.CSS_SELECTOR, "#delete-form button").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: "You have no recordings yet." in browser.page_source, what="the empty list")
    browser.save_screenshot(str(tmp_path / "4-teacher-a-deleted.png"))
    assert s3.list_objects_v2(Bucket=bucket, Prefix=folder + "/").get("KeyCount", 0) == 0
