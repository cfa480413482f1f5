"""Drives the gateway's web console in headless Chromium (Playwright with Debian's chromium).

Usage: console_browser.py BASE_URL LOGIN_URL SCREENSHOT_DIR STATE_FILE MEMBER_PHONE CLOSE_DAY
       console_browser.py --expired BASE_URL STATE_FILE

The first form signs in through the login link, visits every page (no console error may occur),
checks what the Swift test set up, closes a settlement day, downloads its CSV, saves screenshots
and the session (STATE_FILE), and prints one JSON object of what it saw. The second form replays a
saved session that the test has since expired, and a forged one, and prints what they got.
"""
import hashlib
import json
import os
import sys
import urllib.parse

from playwright.sync_api import sync_playwright

PAGES = ["network", "today", "liability", "allowances", "conflicts", "settlement", "member"]


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    )


def signed_in_run(base, login, shots, state_file, member, close_day):
    seen = {"errors": [], "screenshots": {}}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.on("console", lambda message: seen["errors"].append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: seen["errors"].append(str(error)))

        # Before signing in: refused, and no figures.
        response = page.goto(base + "/network")
        seen["anonymous_status"] = response.status
        seen["anonymous_has_sites"] = "mall-01" in page.content()
        seen["errors"].clear()  # the 401 itself is logged by the browser as a failed resource

        page.goto(login)
        page.wait_for_url(base + "/network", timeout=15000)
        seen["operator"] = page.inner_text("#operator")
        cookies = [c for c in context.cookies() if c["name"] == "coalition_console"]
        seen["cookie_http_only"] = bool(cookies and cookies[0]["httpOnly"])
        seen["cookie_same_site"] = cookies[0]["sameSite"] if cookies else ""

        for name in PAGES:
            url = base + "/" + name
            if name == "member":
                url += "?q=" + urllib.parse.quote(member, safe="")
            if name == "conflicts":
                url += "?detail=1"
            response = page.goto(url)
            page.wait_for_load_state("networkidle")
            seen[name + "_status"] = response.status
            path = os.path.join(shots, name + ".png")
            page.screenshot(path=path, full_page=True)
            seen["screenshots"][name] = path
            if name == "network":
                seen["network_rows"] = page.locator("#sites tbody tr").count()
                seen["network_alert_rows"] = page.locator("#sites tbody tr.alert").count()
            if name == "today":
                points = page.get_attribute("polyline[data-series=issued]", "points").split()
                seen["chart_points"] = len(points)
                seen["issued_total"] = page.inner_text("#issued-total")
            if name == "liability":
                seen["outstanding_points"] = page.inner_text("#outstanding-points")
            if name == "conflicts":
                seen["conflict_rows"] = page.locator("#conflicts tbody tr").count()
                seen["conflict_kinds"] = page.locator("#conflicts tbody tr td:nth-child(2)").all_inner_texts()
                seen["conflict_detail_site"] = page.inner_text("#detail-site")
                seen["conflict_detail_money"] = page.inner_text("#detail-money")
            if name == "member":
                seen["member_balance"] = page.inner_text("#member-balance")
                seen["member_phone"] = page.inner_text("#member-phone")

        # Live refresh: the network page swaps its figures in without a reload.
        page.goto(base + "/network")
        page.wait_for_selector("#main[data-refreshed]", timeout=15000)
        seen["live_refresh"] = True

        # An operator action: close yesterday, then download the statement.
        page.goto(base + "/settlement")
        day = close_day
        page.click("#close-" + day)
        page.wait_for_selector("#content-hash", timeout=15000)
        seen["content_hash"] = page.inner_text("#content-hash")
        with page.expect_download() as download_info:
            page.click("#download-csv")
        download = download_info.value
        content = open(download.path(), "rb").read()
        seen["csv_sha256"] = hashlib.sha256(content).hexdigest()
        seen["csv_name"] = download.suggested_filename
        page.screenshot(path=os.path.join(shots, "settlement-closed.png"), full_page=True)
        seen["screenshots"]["settlement-closed"] = os.path.join(shots, "settlement-closed.png")

        context.storage_state(path=state_file)
        browser.close()
    print(json.dumps(seen))


def expired_run(base, state_file):
    seen = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(storage_state=state_file)
        seen["expired_status"] = context.new_page().goto(base + "/network").status
        forged = browser.new_context()
        forged.add_cookies([{"name": "coalition_console", "value": "forged-session", "url": base}])
        seen["forged_status"] = forged.new_page().goto(base + "/network").status
        browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    if sys.argv[1] == "--expired":
        expired_run(sys.argv[2], sys.argv[3])
    else:
        signed_in_run(*sys.argv[1:7])
