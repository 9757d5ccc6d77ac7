"""The Azure Functions app (Python v2 model). It only registers blueprints."""

import azure.durable_functions as df
import azure.functions as func

from activities import bp as activities
from orchestrations import bp as orchestrations
from starters import bp as starters

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(starters)
app.register_functions(orchestrations)
app.register_functions(activities)
