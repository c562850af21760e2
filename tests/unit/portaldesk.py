"""The portal in process: the API's test server (``webdesk``) with the portal's pages on it too.

A ``Browser`` keeps cookies as a browser does and reads each form's CSRF token from the page it
came on, so tests post forms the way a person does.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from multidict import CIMultiDict

from streams.portal.routes import register_portal
from streams.portal.site import Portal, PortalSettings
from tests.unit.querydesk import Desk
from tests.unit.webdesk import Web

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Page:
    """One answer: status, headers, text, and the CSRF token of its forms."""

    def __init__(self, status: int, headers: CIMultiDict[str], text: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text

    @property
    def token(self) -> str:
        found = TOKEN.search(self.text)
        assert found, f"no form with a CSRF token on this page:\n{self.text[:2000]}"
        return found.group(1)


class Browser:
    """Cookies kept between requests, redirects not followed (tests look at them)."""

    def __init__(self, web: Web, portal: Portal) -> None:
        self.web = web
        self.portal = portal
        self.last: Page | None = None

    async def get(self, path: str, **headers: str) -> Page:
        return await self._go("GET", path, None, headers)

    async def post(
        self, path: str, form: dict[str, str], *, token: str | None = None, **headers: str
    ) -> Page:
        if token is None:
            token = self.last.token if self.last else ""
        return await self._go("POST", path, {"csrf_token": token, **form}, headers)

    async def _go(self, method: str, path: str, form: dict[str, str] | None, headers: dict[str, str]) -> Page:
        client = self.web.client
        assert client is not None
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        async with client.request(method, path, data=form, headers=sent, allow_redirects=False) as response:
            page = Page(response.status, CIMultiDict(response.headers), await response.text())
        if response.content_type == "text/html":
            self.last = page
        return page

    async def sign_in(self, key: str) -> Page:
        await self.get("/login")
        return await self.post("/login", {"credential": key})

    async def json(self, path: str) -> tuple[int, Any]:
        page = await self._go("GET", path, None, {})
        return page.status, orjson.loads(page.text)


def serve_portal(
    desk: Desk,
    tmp_path: Path,
    scenario: Callable[[Browser], Awaitable[None]],
    settings: PortalSettings | None = None,
) -> Web:
    """Run ``scenario`` against the API and the portal served in process; the Web is returned
    so a test can look at what was sent to credit.submissions."""
    web = Web(desk, tmp_path)
    portal = register_portal(web.app, web.parts, settings)

    async def run() -> None:
        async with web:
            await scenario(Browser(web, portal))

    asyncio.run(run())
    return web
