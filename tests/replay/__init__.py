"""Replay of real captured exchange websocket frames to unmodified ccxt.pro (see server.py)."""
