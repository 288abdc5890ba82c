"""The callback function's own application: only the platform's two callback routes.

In AWS, API Gateway sends `POST /callbacks/{tp_app_id}/auth|events` to the function
`callback_handler` (handler `chalicelib.routes.callback_function.app`, same deployment package),
whose IAM role reaches the events table, the events queue and the tp apps' secrets, and nothing of
the rewards (infra/functions.py). A flood of callbacks then never competes with grants for the API
function's concurrency, and a bug in the gateway cannot touch money.
"""

from chalice import Chalice

from chalicelib.http import edge_middleware
from chalicelib.routes.callbacks import bp as callbacks

app = Chalice(app_name="rewardgate-callbacks")
app.register_middleware(edge_middleware, "http")
app.register_blueprint(callbacks)
