"""`Lab`, the notebook's face: the sync API inside a running loop, the announcement, what it
sends by default and the headers it is given."""

from __future__ import annotations

import asyncio

from helpers import FAKE_KEY

from mmlab import Lab


def test_sync_inside_running_loop_and_async(lab):
    async def main():
        a = await lab.achat("async one", max_tokens=300)
        b = await asyncio.gather(*(lab.achat(f"q{i}", max_tokens=300) for i in range(5)))
        return a, b

    a, b = asyncio.run(main())
    assert not a.cache_hit and len({r.content for r in b}) >= 1

    async def notebook_cell():
        # what a Jupyter cell does: the sync API while the kernel's loop is running
        return lab.chat("from a running loop", max_tokens=300)

    assert asyncio.run(notebook_cell()).content


def test_announces_endpoint_once(standin, db, capsys):
    Lab(base_url=standin.url, db=db, model="announce-test")
    Lab(base_url=standin.url, db=db, model="announce-test")
    err = capsys.readouterr().err
    assert err.count("mmlab: OpenAI-compatible endpoint at") == 1
    assert "model announce-test" in err


def test_m1_preset_is_documented_not_injected(lab, standin):
    from mmlab import M1_RECOMMENDED

    lab.chat("plain", max_tokens=300)
    assert "temperature" not in standin.seen[0].body and "top_p" not in standin.seen[0].body
    lab.chat("preset", max_tokens=300, **M1_RECOMMENDED)
    assert standin.seen[1].body["temperature"] == 1.0 and standin.seen[1].body["top_p"] == 0.95


def test_attribution_headers_are_configurable(standin, db):
    lab = Lab(
        base_url=standin.url,
        api_key=FAKE_KEY,
        db=db,
        quiet=True,
        app_url="https://example.org/study",
        app_title="my study",
    )
    lab.chat("headers", max_tokens=300)
    headers = standin.seen[0].headers
    assert headers["http-referer"] == "https://example.org/study"
    assert headers["x-openrouter-title"] == "my study"
