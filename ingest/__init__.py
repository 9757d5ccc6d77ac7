"""The local host of the app, as `func start` is in Azure: the command line and the local Durable runtime.

`python -m ingest run|validate|demo|...` loads `function_app` and drives its orchestrator
through the real `azure-functions-durable` replay handler on `ingest.durable`. It may import
anything in the repository; nothing but tests and the bench imports it, and `.funcignore`
keeps it out of the deployed package.
"""

from ingest import sdk_http

sdk_http.defer()  # before anything imports the Durable SDK: aiohttp is loaded only if its HTTP is used
