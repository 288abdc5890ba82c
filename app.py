"""rewardgate's Chalice application: every route, worker and schedule lives in a blueprint.

Each blueprint module under `chalicelib/routes` is a thin edge: it declares its operations
(`chalicelib.edge.registry.operation`: models, errors, callers), calls the domain in `chalicelib`,
and turns the result (or a domain error) into a response. `edge_middleware` wraps every request:
problem+json for every refusal, request ids, metrics and one access line.
"""

from chalice import Chalice

from chalicelib.http import edge_middleware
from chalicelib.routes import live
from chalicelib.routes.admin import bp as admin
from chalicelib.routes.callbacks import bp as callbacks
from chalicelib.routes.docs import bp as docs
from chalicelib.routes.play import bp as play
from chalicelib.routes.play_openlive import bp as play_openlive
from chalicelib.routes.reconcile import bp as reconcile
from chalicelib.routes.rewards import bp as rewards
from chalicelib.routes.tp_app_credentials import bp as tp_app_credentials
from chalicelib.routes.tp_apps import bp as tp_apps
from chalicelib.routes.wallets import bp as wallets

app = Chalice(app_name="rewardgate")
app.register_middleware(edge_middleware, "http")
# In AWS the callback routes run in their own function (chalicelib/routes/callback_function.py); they are
# registered here too so the API definition and the local server have them.
app.register_blueprint(callbacks)
app.register_blueprint(tp_apps)
app.register_blueprint(tp_app_credentials)
app.register_blueprint(admin)
app.register_blueprint(rewards)
app.register_blueprint(wallets)
app.register_blueprint(reconcile)
app.register_blueprint(docs)
app.register_blueprint(play)
app.register_blueprint(play_openlive)
app.register_blueprint(live.bp)
# The WebSocket API (live push). Chalice wraps WebSocket handlers only when they are registered on the app
# itself, and their Lambda handler strings are `app.<name>`: these three names must stay bound here.
on_ws_connect, on_ws_message, on_ws_disconnect = live.register(app)
