"""The process log keeps no personal data, even from libraries that log request bytes."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from proxy.log_safety import DropExceptionDetails


def test_exception_details_are_replaced_by_type_and_place():
    logger = logging.getLogger("test.log_safety")
    try:
        raise ValueError("Invalid char in url path: b'GET /jane.roe@example.com'")
    except ValueError:
        record = logger.makeRecord(
            "x", logging.ERROR, __file__, 1, "Error handling request from %s", ("127.0.0.1",), None
        )
        record.exc_info = sys.exc_info()
    assert DropExceptionDetails().filter(record) is True
    text = logging.Formatter().format(record)
    assert "jane.roe" not in text
    assert "Error handling request from 127.0.0.1" in text and "ValueError" in text


async def test_malformed_http_is_logged_without_its_bytes(proxy, caplog: pytest.LogCaptureFixture):
    caplog.handler.addFilter(DropExceptionDetails())  # as proxy.log_safety.install() does in the CLI
    port = int(proxy.url.rsplit(":", 1)[1])
    with caplog.at_level(logging.DEBUG):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: jane.roe@example.com\r\n\r\n")
        await writer.drain()
        status = await reader.readline()
        await reader.read()  # the server closes the connection after its 400
        writer.close()
    assert b"400" in status
    assert "jane.roe" not in caplog.text
    assert any("BadHttpMessage" in r.getMessage() for r in caplog.records)


async def test_passwords_in_configured_urls_are_never_printed():
    from config import load_settings
    from proxy.checks import check_upstreams
    from proxy.log_safety import without_password

    url = "http://user:s3cret-pw@127.0.0.1:9/v1"
    assert without_password(url) == "http://user:***@127.0.0.1:9/v1"
    assert without_password("https://api.example.com/v1") == "https://api.example.com/v1"
    [check] = await check_upstreams(load_settings(None, upstream=url))
    assert "s3cret-pw" not in check.detail and "user:***@127.0.0.1" in check.detail
