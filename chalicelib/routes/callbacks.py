"""Callback gateway routes (placeholder until the gateway lands)."""

from chalice import Blueprint

bp = Blueprint(__name__)
