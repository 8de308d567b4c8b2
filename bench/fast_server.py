"""A fast OpenAI-compatible server for benchmarks: asyncio, one process, no faults.

    python bench/fast_server.py [--delay SECONDS]    # prints its base URL, serves until killed

The stand-in (`mmlab.testing`) runs a thread per connection, which is what tests want (faults,
stalls, cut connections) but caps throughput on 2 cores; benchmarks of client overhead need
a server that is not the bottleneck. Replies are the stand-in's synthetic ones.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json

from mmlab.testing import completion_object, plain_choice, synth_reply, usage_object

_ids = itertools.count(1)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length)) if length else {}
            if delay:
                await asyncio.sleep(delay)  # simulated generation time
            reply = synth_reply(body)
            data = json.dumps(
                completion_object(
                    body, plain_choice(reply), usage_object(reply), f"gen-fast-{next(_ids)}"
                )
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
            )
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(delay: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, delay), "127.0.0.1", 0, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=0.0)
    try:
        asyncio.run(main(parser.parse_args().delay))
    except KeyboardInterrupt:
        pass
