"""
End to end, the dashboard at C{/ui/} (issue 15 item 3) in headless Chromium (Debian's
C{chromium} and C{chromium-driver}, driven by Selenium) against a real C{twistd scheduler0}
node: log in with an API key and secret, see a job created through the API listed with its
next run, run it now and see its execution's attempt and error, retry that dead letter from
the health section, pause the job from the page and see the API report it paused. The page must run under its Content-Security-Policy without a
single console error, and a screenshot is saved under C{_trial_temp} (C{dashboard.png} in
the test's directory) as an artifact.

Selenium blocks, so every browser step runs in a thread (L{deferToThread}) while this
reactor keeps serving the test's own API calls. Without Chromium the test is skipped with
the reason, unless C{CI} is set: C{.ci/run} installs it, so there a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from .daemon import Daemon, free_port

WAIT = 20.0  # seconds a page element may take to show up


def browser_programs(testcase: TestCase) -> tuple[str, str]:
    """Chromium and chromedriver, or skip (fail under CI) saying what is missing."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        missing.append("Debian's chromium and chromium-driver "
                       "(apt-get install -y chromium chromium-driver)")
    if missing:
        reason = "the dashboard test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            testcase.fail(reason + "; CI is set, and .ci/run installs them")
        raise SkipTest(reason)
    assert chromium is not None and driver is not None
    return chromium, driver


class Browser:
    """One headless Chromium session. Its methods block: call them through L{call}."""

    def __init__(self, chromium: str, driver: str, workdir: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1400,1800",
                         f"--user-data-dir={os.path.join(workdir, 'chromium-profile')}"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=driver,
                          log_output=os.path.join(workdir, "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(WAIT)

    def wait(self, condition: Callable[[Any], Any], what: str) -> Any:
        from selenium.common.exceptions import (NoSuchElementException,
                                                StaleElementReferenceException)
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT, poll_frequency=0.1, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException)).until(
            condition, f"the dashboard did not show {what} within {WAIT:g} s")

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def log_in(self, url: str, key: str, secret: str) -> None:
        self.driver.get(url)
        self.wait(lambda d: self.css("#login-form").is_displayed(), "the login form")
        self.css("#api-key").send_keys(key)
        self.css("#api-secret").send_keys(secret)
        self.css("#login-button").click()
        self.wait(lambda d: self.css("#dashboard").is_displayed(), "the dashboard")

    def job_row(self, job_id: int, state: str) -> dict[str, str]:
        """The texts of job C{job_id}'s row, once its state cell says C{state}."""
        row = f'#jobs tr[data-job-id="{job_id}"]'
        self.wait(lambda d: self.css(f"{row} .job-state").text == state,
                  f"job {job_id} {state}")
        return {name: self.css(f"{row} .job-{name}").text
                for name in ("id", "spec", "timezone", "next-run", "state")}

    def click(self, job_id: int, button: str) -> None:
        self.click_css(f'#jobs tr[data-job-id="{job_id}"] button.{button}')

    def click_css(self, selector: str) -> None:
        self.css(selector).click()

    def execution_rows(self, shows: Callable[[list[str]], bool],
                       what: str) -> list[list[str]]:
        """The executions table's rows (their cells' texts) once one of them C{shows}."""
        def rows(_: Any) -> list[list[str]] | None:
            from selenium.webdriver.common.by import By

            found = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
                     for row in self.driver.find_elements(By.CSS_SELECTOR,
                                                          "#executions tbody tr")]
            return found if any(shows(row) for row in found) else None

        return self.wait(rows, what)

    def text(self, selector: str, condition: Callable[[str], bool], what: str) -> str:
        return self.wait(lambda d: (lambda t: t if condition(t) else None)(
            self.css(selector).text), what)

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"]

    def screenshot(self, path: str) -> bool:
        return self.driver.save_screenshot(path)

    def quit(self) -> None:
        self.driver.quit()


class DashboardTests(TestCase):
    timeout = 90

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await deferToThread(function, *args)

    async def test_log_in_run_retry_and_pause_a_job(self) -> None:
        chromium, driver = browser_programs(self)
        # no retry: a failed run is dead at once, so the page shows it with its Retry button
        node = await Daemon(self, config={"JobExecutionRetryMax": 0}).start()
        credential = await node.create_credential("--scopes", "read,write,execute,admin")
        client = node.client(credential)
        project = await client.ok("POST", "/projects", {"name": "billing"}, expect=201)
        # nothing listens on the callback's port: a run fails at once with a clear error
        closed = free_port()
        job = await client.ok("POST", "/jobs", {
            "projectId": project["id"], "spec": "0 9 * * mon-fri", "timezone": "Europe/London",
            "callbackUrl": f"http://127.0.0.1:{closed}/callback", "data": "{}"}, expect=201)
        self.assertIsNotNone(job["nextRunAt"])

        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        browser: Browser = await self.call(Browser, chromium, driver, workdir)
        self.addCleanup(self.call, browser.quit)

        await self.call(browser.log_in, node.base_url + "/ui/", credential["apiKey"],
                        credential["apiSecret"])
        shown = await self.call(browser.job_row, job["id"], "active")
        self.assertEqual((shown["id"], shown["spec"], shown["timezone"]),
                         (str(job["id"]), "0 9 * * mon-fri", "Europe/London"))
        self.assertIn(job["nextRunAt"], shown["next-run"])
        await self.call(browser.text, "#queue-depth", str.isdigit, "the queue depth")
        await self.call(browser.text, "#cluster-summary", lambda t: "alone" in t,
                        "that the node runs alone")

        # run now: the execution shows with its attempt and the callback's error
        await self.call(browser.click, job["id"], "run")
        rows = await self.call(browser.execution_rows, lambda r: "connection refused" in r[5],
                               "an execution whose error says the connection was refused")
        (refused,) = rows
        (record,) = (await client.ok("GET", f"/jobs/{job['id']}/executions"))["executions"]
        run_id = record["executionId"]
        self.assertEqual(refused[0].replace("\n", ""), run_id, refused)
        self.assertEqual((refused[2], refused[3], refused[-1]), ("dead", "1", "Retry"), refused)
        # and the health section, reloaded once it settled, lists it as a dead letter
        await self.call(browser.text, "#dead-count", lambda t: t == "1", "one dead letter")
        await self.call(browser.text, "#dead-letters tbody", lambda t: run_id in t,
                        "the dead letter's execution id")

        # retry the dead letter from the health section: sent again, it fails again
        await self.call(browser.click_css,
                        f'#dead-letters tr[data-execution-id="{run_id}"] button.retry')
        await self.call(browser.text, "#notice", lambda t: "sent again" in t, "the retry")
        await self.call(browser.execution_rows, lambda r: (r[2], r[3]) == ("dead", "2"),
                        "the execution dead again after a second attempt")
        record = await client.ok("GET", f"/executions/{run_id}")
        self.assertEqual((record["state"], record["attempts"]), ("dead", 2))

        # pause from the page: the API reports it paused, with no next run
        await self.call(browser.click, job["id"], "pause")
        paused_row = await self.call(browser.job_row, job["id"], "paused")
        self.assertNotIn(job["nextRunAt"], paused_row["next-run"])
        stored = await client.ok("GET", f"/jobs/{job['id']}")
        self.assertEqual((stored["paused"], stored["nextRunAt"]), (True, None))
        # and its row offers Resume instead of Pause
        await self.call(browser.css, f'#jobs tr[data-job-id="{job["id"]}"] button.resume')

        screenshot = os.path.join(workdir, "dashboard.png")
        self.assertTrue(await self.call(browser.screenshot, screenshot))
        with open(screenshot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        # no CSP violation, no failed request, no script error in the whole session
        self.assertEqual(await self.call(browser.console_errors), [])
