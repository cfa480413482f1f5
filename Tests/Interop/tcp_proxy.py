"""A TCP proxy for tests: listens on 127.0.0.1:LISTEN and forwards each connection to
127.0.0.1:TARGET. Killing the process cuts every connection at once (a database that goes away);
starting it again on the same port brings it back. Usage: tcp_proxy.py LISTEN TARGET PORT_FILE
(LISTEN 0 picks a free port; the port listened on is written to PORT_FILE once listening)."""
import asyncio
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer, target):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))


async def main():
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    server = await asyncio.start_server(lambda r, w: handle(r, w, target), "127.0.0.1", listen, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    with open(sys.argv[3] + ".tmp", "w") as file:
        file.write(str(port))
    import os
    os.replace(sys.argv[3] + ".tmp", sys.argv[3])
    async with server:
        await server.serve_forever()


asyncio.run(main())
