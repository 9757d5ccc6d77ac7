"""The Azure Functions app (Python v2 model). It sets up telemetry and registers blueprints."""

import azure.durable_functions as df
import azure.functions as func

from activities import bp as activities
from orchestrations import bp as orchestrations
from shared.telemetry import configure_telemetry
from starters import bp as starters

configure_telemetry()  # once per worker process, before any function runs (README: Telemetry)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(starters)
app.register_functions(orchestrations)
app.register_functions(activities)
