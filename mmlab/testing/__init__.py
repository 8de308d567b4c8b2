"""mmlab's test API: `StandIn`, an OpenRouter server on loopback, for tests, benchmarks and
offline demos — yours as well as mmlab's.

    from mmlab.testing import StandIn, Fault, FaultRates
    with StandIn(rates=FaultRates(rate_limit=0.2, seed=7)) as server:
        lab = Lab(endpoint=OpenRouter(server.url, api_key="sk-test-..."), db=tmp / "t.db")
        server.enqueue(Fault.http(429, retry_after=0.01), Fault.midstream())
        ...
        server.seen, server.counts       # what arrived, and what each request got

It speaks OpenRouter's documented wire format, faults included: SSE keep-alive
comments, reasoning deltas, the usage-only final chunk after ``finish_reason``, 429 with
Retry-After, 502/503, dropped connections (headers sent, body cut), 200 bodies carrying only
an ``error``, mid-stream errors, stalls, plus ``/models`` and ``/generation`` (which 404s for a
moment after a completion, as the real one does).

Replies are a deterministic function of the request, shaped like a reasoning model's:
reasoning length grows with the prompt's "difficulty" and the temperature, and a small
``max_tokens`` truncates the answer away, so sweeps over it show real structure.
``echo_auth=True`` makes every error path echo the request's Authorization header back (the
careless upstream the redaction tests need); ``ignore={"top_k"}`` plays a provider that drops
parameters silently; ``accuracy=lambda body: 0.8 if body["temperature"] < 1 else 0.5``
answers correctly (`gold_answer`) with a per-request probability, so arms of known, different
accuracies can be compared; ``lengths=300`` (or a function of the request) makes every reply
run to 300 completion tokens before ``max_tokens`` cuts it, so what a forecast should expect
is known exactly; ``state.models_body`` replaces ``/models``.

OpenRouter's routing is played too: ``providers={"minimax/minimax-m1": [Provider("Minimax"),
Provider("Novita", completion_price=2.0e-6, tokens_per_s=80, down=0.1)]}`` serves a model
from several providers (``provider.only`` / ``order`` / ``allow_fallbacks`` honoured,
unpinned requests spread across them, a provider that is down falls back to the next one),
each at its own price and speed; ``served_as={"a/x": "a/x-lite"}`` answers as another model
(a model fallback). ``GET /key`` reports the key's usage — every billed call, plus half the
cost of calls cut mid-stream (tokens generated before the cut are paid for); ``GET
/generation`` the record of each call (``state.native_skew`` makes its token counts
disagree, for the ledger's tests); ``X-OpenRouter-Cache: true`` turns on a response cache
that answers repeats with usage zeroed. ``logprobs=True`` answers requests that ask for
``logprobs`` and ``top_logprobs`` with synthetic log-probabilities (`synth_logprobs`: a wrong
answer less confident than a right one), plain and streamed.

Run one in its own process with ``python -m mmlab.testing [--port N] [--delay S]``.

The package, one tenant per module:

- ``standin.py``: `StandIn`, the API above, and `main` (``python -m mmlab.testing``).
- ``faults.py``: `Fault`, `FaultRates`, and `FAULTS`, each fault kind's player (a new fault is
  one player and one entry).
- ``replies.py``: replies as data (`Plain`, `Raw`, `Stream`), built by the server, spoiled by
  a fault's player, then written.
- ``server.py``: the HTTP server and handler: routes, provider routing, the response cache,
  plain and streamed replies, billing.
- ``synthetic.py``: the synthetic model (`synth_reply`, `gold_answer`) and the completion
  bodies and prices built from it.
- ``state.py``: `StandInState`, what the handler threads share, with `Provider` and `Seen`.
"""

from mmlab.testing.faults import FAULTS, Exchange, Fault, FaultRates, Played, Player
from mmlab.testing.replies import Plain, Raw, Response, Stream
from mmlab.testing.server import StandInServer
from mmlab.testing.standin import StandIn, main
from mmlab.testing.state import Provider, Seen, StandInState
from mmlab.testing.synthetic import (
    COMPLETION_PRICE,
    PROMPT_PRICE,
    completion_object,
    gold_answer,
    plain_choice,
    reply_cost,
    synth_logprobs,
    synth_reply,
    usage_object,
)

__all__ = [
    "COMPLETION_PRICE",
    "FAULTS",
    "PROMPT_PRICE",
    "Exchange",
    "Fault",
    "FaultRates",
    "Plain",
    "Played",
    "Player",
    "Provider",
    "Raw",
    "Response",
    "Seen",
    "StandIn",
    "StandInServer",
    "StandInState",
    "Stream",
    "completion_object",
    "gold_answer",
    "main",
    "plain_choice",
    "reply_cost",
    "synth_logprobs",
    "synth_reply",
    "usage_object",
]
