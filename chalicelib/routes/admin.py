"""Admin routes: activities with their child windows, scenes, degradation switches."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import errors as e
from chalicelib.edge.registry import ADMIN, READ, PathParam, operation
from chalicelib.http import json_response
from chalicelib.rewards import config_store
from chalicelib.rewards.config import parse_activity, parse_scene, parse_switch
from chalicelib.rewards.models import (
    ActivityBody,
    ActivityView,
    ActivityWithScenes,
    SceneBody,
    SceneView,
    SwitchBody,
    SwitchesView,
    SwitchView,
)
from chalicelib.rewards.namespace import refuse_internal

bp = Blueprint(__name__)

SWITCH_NAME = PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$",
                        problem="must be a switch name such as grants or grants:<activity>:<scene>")


def _given(body: Any) -> dict[str, Any]:
    # The fields the caller sent: the domain applies its own defaults to the others.
    return body.model_dump(exclude_unset=True)


@operation(bp, "PUT", "/v1/admin/activities/{activity_id}", summary="Create or replace an activity", access=ADMIN,
           body=ActivityBody, responses={200: ActivityView}, audit="activity.put",
           errors=(e.OverlappingWindows, e.StartedChildRemoved, e.ChildWindowMoved, e.ConfigConflict))
def put_activity(activity_id: str, body: ActivityBody) -> Any:
    """Create or replace an activity and its child windows (overlaps refused; never an internal activity).

    A started child cannot be removed or renamed, and no open time a grant or its retry may still name (the
    retry horizon behind, the open-time lead ahead) may move to another child: both are 409, nothing written."""
    refuse_internal(activity_id)
    activity = parse_activity(activity_id, _given(body))
    return json_response(config_store.put_activity(activity).to_body())


@operation(bp, "GET", "/v1/admin/activities/{activity_id}", summary="An activity with its scenes", access=READ,
           responses={200: ActivityWithScenes}, errors=(e.ActivityNotFound,))
def get_activity(activity_id: str) -> Any:
    """An activity with its scenes (each with its version)."""
    activity = config_store.get_activity_uncached(activity_id)
    scenes = [{**s.to_body(), "version": s.version} for s in config_store.list_scenes(activity_id)]
    return json_response({**activity.to_body(), "scenes": scenes})


@operation(bp, "PUT", "/v1/admin/activities/{activity_id}/scenes/{scene_id}", summary="Create or replace a scene",
           access=ADMIN, body=SceneBody, responses={200: SceneView}, audit="scene.put",
           errors=(e.ActivityNotFound, e.AwardTypeImmutable, e.TotalBelowConsumed, e.ConfigConflict))
def put_scene(activity_id: str, scene_id: str, body: SceneBody) -> Any:
    """Create or replace a scene; its stock/budget shards are re-spread in every child activity (never in an
    internal activity). An existing scene's award type cannot change (409 award_type_immutable)."""
    refuse_internal(activity_id)
    given = {k: v for k, v in _given(body).items() if v is not None}
    saved = config_store.put_scene(parse_scene(activity_id, scene_id, given))
    return json_response({**saved.to_body(), "version": saved.version})


@operation(bp, "PUT", "/v1/admin/switches/{name}", summary="Set a degradation switch", access=ADMIN,
           body=SwitchBody, responses={200: SwitchView}, path_params={"name": SWITCH_NAME}, audit="switch.put",
           errors=(e.SwitchNameRetired,))
def put_switch(name: str, body: SwitchBody) -> Any:
    """Set a degradation switch: `{"enabled": bool}`, or `{"percent": 0-100}` for withdrawal_gray_percent.

    A scene's grants switch is `grants:{activity_id}:{scene_id}`; the retired `grants.{activity_id}.{scene_id}`
    (ambiguous when ids contain '.') is refused with 422 naming the switches it could mean."""
    value = parse_switch(name, {k: v for k, v in _given(body).items() if v is not None})
    return json_response({"name": name, **config_store.put_switch(name, value)})


@operation(bp, "GET", "/v1/admin/switches", summary="Every switch that has been set", access=READ,
           responses={200: SwitchesView})
def get_switches() -> Any:
    """Every switch that has been set (an absent switch is on)."""
    return json_response({"switches": dict(config_store.get_switches().values)})
