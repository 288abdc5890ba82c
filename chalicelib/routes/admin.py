"""Admin routes: activities with their child windows, scenes, degradation switches."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import validate
from chalicelib.http import api, json_object, json_response
from chalicelib.rewards import config_store
from chalicelib.rewards.config import parse_activity, parse_scene, parse_switch

bp = Blueprint(__name__)


@bp.route("/v1/admin/activities/{activity_id}", methods=["PUT"])
@api
def put_activity(activity_id: str) -> Any:
    """Create or replace an activity and its child windows (overlaps refused)."""
    activity = parse_activity(validate.path_ident(activity_id, "activity_id"),
                              json_object(bp.current_request.raw_body))
    return json_response(config_store.put_activity(activity).to_body())


@bp.route("/v1/admin/activities/{activity_id}", methods=["GET"])
@api
def get_activity(activity_id: str) -> Any:
    """An activity with its scenes."""
    activity = config_store.get_activity_uncached(validate.path_ident(activity_id, "activity_id"))
    scenes = [{**s.to_body(), "version": s.version} for s in config_store.list_scenes(activity_id)]
    return json_response({**activity.to_body(), "scenes": scenes})


@bp.route("/v1/admin/activities/{activity_id}/scenes/{scene_id}", methods=["PUT"])
@api
def put_scene(activity_id: str, scene_id: str) -> Any:
    """Create or replace a scene; its stock/budget shards are re-spread in every child activity."""
    scene = parse_scene(validate.path_ident(activity_id, "activity_id"), validate.path_ident(scene_id, "scene_id"),
                        json_object(bp.current_request.raw_body))
    saved = config_store.put_scene(scene)
    return json_response({**saved.to_body(), "version": saved.version})


@bp.route("/v1/admin/switches/{name}", methods=["PUT"])
@api
def put_switch(name: str) -> Any:
    """Set a degradation switch."""
    value = parse_switch(name, json_object(bp.current_request.raw_body))
    return json_response({"name": name, **config_store.put_switch(name, value)})


@bp.route("/v1/admin/switches", methods=["GET"])
@api
def get_switches() -> Any:
    """Every switch that has been set (an absent switch is on)."""
    return json_response({"switches": dict(config_store.get_switches().values)})
