"""rewardgate's Chalice application: every route, worker and schedule lives in a blueprint.

Each blueprint module under `chalicelib/routes` is a thin edge: it parses the request, calls the
domain in `chalicelib`, and turns the result (or a domain error) into a response.
"""

from chalice import Chalice

from chalicelib.routes.admin import bp as admin
from chalicelib.routes.callbacks import bp as callbacks
from chalicelib.routes.play import bp as play
from chalicelib.routes.play_openlive import bp as play_openlive
from chalicelib.routes.reconcile import bp as reconcile
from chalicelib.routes.rewards import bp as rewards
from chalicelib.routes.wallets import bp as wallets

app = Chalice(app_name="rewardgate")
app.register_blueprint(callbacks)
app.register_blueprint(admin)
app.register_blueprint(rewards)
app.register_blueprint(wallets)
app.register_blueprint(reconcile)
app.register_blueprint(play)
app.register_blueprint(play_openlive)
