"""One ESL command from the command line: connect, authenticate, run ``api``, print, close.

Plain asyncio streams and our codec: no gevent thread for a one-off command.
"""

from __future__ import annotations

import asyncio

from telephony.esl import commands
from telephony.esl.messages import ApiResponse, AuthRequest, CommandReply, DisconnectNotice
from telephony.esl.parser import Decoder
from telephony.esl.port import EslAuthError, EslConnectError, NodeAddress


async def run_api(node: NodeAddress, words: list[str], timeout: float = 10.0) -> str:
    """Run ``api WORDS`` on ``node`` and return the response body."""
    text = commands.api(words[0], *words[1:])
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(node.host, node.port)
            try:
                return await _converse(reader, writer, node, text)
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        raise EslConnectError(f"cannot reach {node.name}: {exc}", node=node.name) from exc


async def _converse(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, node: NodeAddress, text: str
) -> str:
    decoder = Decoder()
    while True:
        data = await reader.read(65536)
        if not data:
            raise EslConnectError("connection closed", node=node.name)
        decoder.feed(data)
        for message in decoder.messages():
            if isinstance(message, AuthRequest):
                writer.write(commands.encode(commands.auth(node.password)))
            elif isinstance(message, CommandReply):
                if not message.ok:
                    raise EslAuthError(message.reply_text, node=node.name)
                writer.write(commands.encode(text))
            elif isinstance(message, ApiResponse):
                return message.body
            elif isinstance(message, DisconnectNotice):
                raise EslConnectError("disconnected by the node", node=node.name)
