"""The ASGI handler behind :func:`persistence_sync.feed.asgi.get_asgi_application` (read that module first).

Imported once Django is set up: it imports the feed's views, hence models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve, set_script_prefix

from persistence_sync.conf import sync_settings
from persistence_sync.feed import watch
from persistence_sync.feed.views import EventsEndpoint, FeedResponse

logger = logging.getLogger("persistence_sync.feed")


class FeedASGIHandler(ASGIHandler):
    """Django's ASGI handler; feed requests served as the module says, lifespan understood."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http" and self.is_feed(scope):
            await self.handle_feed(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    @staticmethod
    def is_feed(scope: dict) -> bool:
        """Whether the request is for a feed endpoint (the same resolver Django uses)."""
        root = scope.get("root_path", "") or ""
        path = scope["path"]
        path_info = path[len(root):] if root and path.startswith(root) else path
        try:
            match = resolve(path_info or "/")
        except Resolver404:
            return False
        view_class = getattr(match.func, "cls", None)
        return isinstance(view_class, type) and issubclass(view_class, EventsEndpoint)

    async def lifespan(self, receive: Any, send: Any) -> None:
        """Start nothing (a feed starts with its first client); stop the watchers at shutdown."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await sync_to_async(watch.stop_all, thread_sensitive=False)()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle_feed(self, scope: dict, receive: Any, send: Any) -> None:
        """Django's ``handle()`` for a feed request, without its per-request thread context."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(settings.FORCE_SCRIPT_NAME or scope.get("root_path", "") or "")
        await sync_to_async(signals.request_started.send)(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # create_request() returns one or the other
            response: HttpResponseBase = error_response
        else:
            response = await self.get_response_async(request)
            del request  # headers, session, user: not kept for the connection's life
        body_file.close()
        try:
            if isinstance(response, FeedResponse):
                await self.serve_feed(response, receive, send)
            else:
                await self.send_whole(response, send)
        finally:
            # request_finished: Django closes the connections the request used, if due.
            await sync_to_async(response.close)()

    async def send_whole(self, response: HttpResponseBase, send: Any) -> None:
        """An answer that is not the feed's (a 4xx of the endpoint, a redirect of a middleware)."""
        if response.streaming:
            await super().send_response(response, send)
            return
        await send(start_message(response))
        body = response.content  # type: ignore[attr-defined]  # not streaming: an HttpResponse
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def serve_feed(self, response: FeedResponse, receive: Any, send: Any) -> None:
        """Stream the feed until the client leaves, stops reading, or a long-poll is answered."""
        disconnected = asyncio.ensure_future(wait_for_disconnect(receive))
        streaming = asyncio.ensure_future(self.stream(response, send))
        try:
            await asyncio.wait({disconnected, streaming}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, disconnected):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                    await task

    async def stream(self, response: FeedResponse, send: Any) -> None:
        timeout = sync_settings.FEED_SEND_TIMEOUT
        try:
            await send_within(send, start_message(response), timeout)
            async with contextlib.aclosing(response.chunks) as chunks:
                async for chunk in chunks:
                    await send_within(
                        send, {"type": "http.response.body", "body": chunk, "more_body": True}, timeout)
            await send_within(send, {"type": "http.response.body", "more_body": False}, timeout)
        except asyncio.TimeoutError:
            # The client stopped reading: its connection goes, and with it all it held.
            logger.info("A feed client read nothing for %s s; its connection was dropped.", timeout)


def start_message(response: HttpResponseBase) -> dict:
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    headers += [(b"Set-Cookie", cookie.output(header="").encode("ascii").strip())
                for cookie in response.cookies.values()]
    return {"type": "http.response.start", "status": response.status_code, "headers": headers}


async def send_within(send: Any, message: dict, timeout: float) -> None:
    """``await send(message)``, giving up after ``timeout`` seconds (``asyncio.TimeoutError``).

    Not ``asyncio.wait_for``: before Python 3.12 it swallows a cancellation that
    lands as the send completes, so a stream whose client had left went on
    streaming, and the handler awaiting it hung for ever.
    """
    sending = asyncio.ensure_future(send(message))
    try:
        done, _ = await asyncio.wait({sending}, timeout=timeout)
    except asyncio.CancelledError:
        sending.cancel()
        raise
    if not done:
        sending.cancel()
        raise asyncio.TimeoutError
    sending.result()


async def wait_for_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
