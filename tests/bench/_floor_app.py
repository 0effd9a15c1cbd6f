"""The per-request floor of the stack: a trivial Starlette endpoint on the same uvicorn.

``python tests/bench/_floor_app.py PORT`` serves ``POST /v1/rollouts/{rollout_id}/looks``
that reads the body and answers a fixed JSON verdict of the judge's size, with the
options ``release-spec judge serve`` uses (httptools, uvloop when installed, no access
log). What it costs per request is what any judge on this stack pays before judging:
`bench_service` measures it in the same conditions and prints the judge's cost as a
multiple of it.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# A verdict body of the judge's usual size (about 450 bytes).
BODY = (
    b'{"look_id":"l0","rollout":"bench-0","decision":"continue","p_value":1.0,'
    b'"bounds":[-0.0123456789012345,0.0234567890123456],"looks":10,'
    b'"canary_requests":1234,"baseline_requests":12345,"reason":"continue: the '
    b"canary's error rate may still be up to 0.0235 above the baseline's (margin "
    b'0.01); keep sending traffic","closed":false,"metrics":[{"name":"errors",'
    b'"p_value":1.0,"bounds":[-0.0123456789012345,0.0234567890123456],'
    b'"decision":"continue"}]}'
)


async def look(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/v1/rollouts/{rollout_id}/looks", look, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
