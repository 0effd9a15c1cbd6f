"""The canary judge as a service and its adapters (Argo Rollouts, Flagger, Kayenta, Prometheus).

The services layer: it may import the strategy and formula layers and a web stack
(FastAPI, uvicorn, httpx, psycopg, prometheus-client); nothing outside this package
imports the web stack, and nothing here imports TensorFlow. Modules: `store`
(durable state), `rollouts` (the operations, no web stack), `app` (the HTTP API),
`prometheus`, `flagger`, `kayenta` (adapters), `commands` (``release-spec judge``).
"""
