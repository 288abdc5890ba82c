"""Realistic plaintext callback events, one per event type the gateway knows, for tests and the CLI.

Shapes follow the open platform's pushes: `Event` names the type, `EventTime` (or `CreateTime` for
ticket pushes) is `yyyy-MM-dd HH:mm:ss` in UTC+8. `sample_event(name, **overrides)` returns a fresh
dict; overrides replace top-level fields (e.g. `AppId=`, `TpAppId=`, `EventTime=`). Times default to
now, so a simulated event is inside the gateway's timestamp window and newer than earlier ones.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from chalicelib.callbacks.events import format_platform_time

SAMPLE_APP_ID = "tt07e3715e98c9aac0"
SAMPLE_TP_APP_ID = "tt9b8d7c6a5f4e3d2c"


def _authorized() -> dict[str, Any]:
    return {
        "Event": "AUTHORIZED",
        "AuthorizationCode": "a8e3f0c2d9b14c6e8f7a5b3c1d2e4f60",
        "AuthorizationCodeExpiresIn": 3600,
        "AppName": "星河答题",
        "AppIcon": "https://p3-developer-sign.bytemaimg.com/tos-cn-i-ke512zj2cu/icon-xinghe.png",
        "CompanyName": "杭州星河互动科技有限公司",
        "AppSuperAdminEmail": "z***@xinghe-games.com",
        "AppSuperAdminMobile": "138****5678",
    }


_BODIES: dict[str, Any] = {
    "PUSH": lambda: {
        "Ticket": "8c0da4968b0d1e28acbc1d738a56607d",
        "FromUserName": "ByteDanceMicroApp",
        "MsgType": "Ticket",
        "Event": "PUSH",
    },
    "AUTHORIZED": _authorized,
    "UPDATE_AUTHORIZED": lambda: {
        "Event": "UPDATE_AUTHORIZED",
        "AuthorizationCode": "f1c9e2b7a6d54e3f9a8b7c6d5e4f3a21",
        "AuthorizationCodeExpiresIn": 3600,
    },
    "UNAUTHORIZED": lambda: {"Event": "UNAUTHORIZED"},
    "MODIFY_APP_NAME": lambda: {
        "Event": "MODIFY_APP_NAME",
        "ModifyAppNameResults": {"status": 2, "reason": "", "advice": ""},
    },
    "APP_NAME_RESET_NOTIFICATION": lambda: {
        "Event": "APP_NAME_RESET_NOTIFICATION",
        "AppNameResetNotification": "小程序名称因涉嫌侵权已被重置,请重新设置名称",
    },
    "MODIFY_APP_CATEGORY": lambda: {
        "Event": "MODIFY_APP_CATEGORY",
        "ModifyAppCategoryResults": [
            {"category": "188,189,190", "categoryName": "工具-实用工具-记账", "status": 2, "reason": ""},
            {"category": "158,159,259", "categoryName": "社交-社交-直播", "status": 3,
             "reason": "请补充《网络文化经营许可证》"},
        ],
    },
    "MODIFY_APP_INTRO": lambda: {
        "Event": "MODIFY_APP_INTRO",
        "ModifyAppIntroResults": {"status": 2, "reason": ""},
    },
    "MODIFY_APP_ICON": lambda: {
        "Event": "MODIFY_APP_ICON",
        "ModifyAppIconResults": {"status": 3, "reason": "图标包含二维码,请修改后重新提交"},
    },
    "PACKAGE_AUDIT": lambda: {
        "Event": "PACKAGE_AUDIT",
        "AuditResults": [
            {"hostName": "douyin", "status": 1, "reason": [], "auditDetail": []},
            {"hostName": "toutiao", "status": 0, "reason": ["页面存在诱导分享"],
             "auditDetail": [{"reason": "页面存在诱导分享", "detailFile": None,
                              "modifyGuide": {"name": "诱导分享规范", "link": "https://developer.open-douyin.com/"}}]},
        ],
    },
    "APPLY_VIDEO_CAPABILITY": lambda: {
        "Event": "APPLY_VIDEO_CAPABILITY",
        "ApplyVideoCapabilityResults": {"status": 1, "reason": ""},
    },
    "APPLY_LIVE_CAPABILITY": lambda: {
        "Event": "APPLY_LIVE_CAPABILITY",
        "ApplyLiveCapabilityResults": {"status": 2, "reason": "直播内容与小程序服务类目不符"},
    },
    "APPLY_PHONE_NUMBER_CAPABILITY": lambda: {
        "Event": "APPLY_PHONE_NUMBER_CAPABILITY",
        "ApplyPhoneNumberCapabilityResults": {"status": 1, "reason": ""},
    },
    "APPLY_SHARE_TEMPLATE": lambda: {
        "Event": "APPLY_SHARE_TEMPLATE",
        "ApplyShareTemplateResults": {"templateId": "tpl7b2e4c9d1a", "status": 1, "reason": ""},
    },
    "APPLY_CAPACITY": lambda: {
        "Event": "APPLY_CAPACITY",
        "EventContent": {"capacity_key": "video_self_mount", "status": 1, "reason": ""},
    },
    "SELT_MOUNT_BIND": lambda: {
        "Event": "SELT_MOUNT_BIND",
        "EventContent": {"capacity_key": "video_self_mount", "aweme_id": "xinghe_official",
                         "user_name": "星河答题官方号", "bind_status": 1},
    },
}

EVENT_NAMES: tuple[str, ...] = tuple(_BODIES)
AUTH_EVENT_NAMES = ("PUSH", "AUTHORIZED", "UPDATE_AUTHORIZED", "UNAUTHORIZED")


def platform_now() -> str:
    """The current time as the platform writes it (`yyyy-MM-dd HH:mm:ss`, UTC+8)."""
    return format_platform_time(time.time_ns() // 1_000_000)


def channel_of(name: str) -> str:
    """Which endpoint the platform posts an event to: "auth" or "events"."""
    return "auth" if name in AUTH_EVENT_NAMES else "events"


def sample_event(name: str, **overrides: Any) -> dict[str, Any]:
    """A realistic plaintext event of type `name`, with top-level fields replaced by `overrides`."""
    try:
        body = copy.deepcopy(_BODIES[name]())
    except KeyError:
        raise ValueError(f"unknown event {name!r}; known: {', '.join(EVENT_NAMES)}") from None
    now = platform_now()
    if name == "PUSH":
        body = {**body, "CreateTime": now}
    else:
        body = {"AppId": SAMPLE_APP_ID, "TpAppId": SAMPLE_TP_APP_ID, "EventTime": now, **body}
    body.update(overrides)
    return body
